"""A finished picture, written as SVG or PNG: shared by match drawings and census plots.

Kept apart from the drawing code so a census plot (which draws its own bars) saves PNG the same
way a match picture does, without importing the match layout. PNG goes through cairosvg, the
``render`` extra; SVG needs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from circuitql.errors import CircuitQLError

FORMATS = (".svg", ".png")


@dataclass(frozen=True)
class Svg:
    """A finished picture. Jupyter shows it inline through ``_repr_svg_``."""

    text: str

    def _repr_svg_(self) -> str:
        return self.text

    def save(self, path: str | Path) -> Path:
        """Write SVG or PNG, chosen by the suffix of ``path``."""
        path = Path(path)
        suffix = check_format(path)
        data = self.text.encode("utf-8") if suffix == ".svg" else _png(self.text)
        try:
            path.write_bytes(data)
        except OSError as err:
            raise CircuitQLError(
                f"cannot write the picture: {err.strerror or err}",
                where=str(path),
                fix="write to a folder that exists and is writable",
            ) from err
        return path


def check_format(path: Path) -> str:
    """The picture format named by ``path``'s suffix, checked before any drawing is done."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise CircuitQLError(
            f"cannot draw a picture as {suffix or 'a file without suffix'!r}",
            where=str(path),
            fix="name the file .svg or .png",
        )
    return suffix


def _png(svg: str) -> bytes:
    try:
        import cairosvg
    except (ImportError, OSError) as err:  # OSError: the cairo library itself is missing
        raise CircuitQLError(
            f"PNG output needs cairosvg and the cairo library ({err})",
            fix="pip install 'circuitql[render]' (and the cairo system library, e.g. "
            "apt-get install libcairo2), or save as .svg",
        ) from err
    png: bytes = cairosvg.svg2png(bytestring=svg.encode("utf-8"), scale=2.0)
    return png
