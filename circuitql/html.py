"""HTML tables for Jupyter's rich display (``_repr_html_``).

Every result that a notebook shows as a table is built here, so all of them escape their cells
the same way: model and unit names come from users' files and may hold any character.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

MAX_ROWS = 50  # a notebook cell, not a report: the rest is in to_records() / --json


def table(
    head: Sequence[str], rows: Iterable[Sequence[object]], caption: str = "", footer: str = ""
) -> str:
    """An HTML table; ``footer`` says what was left out, if anything."""
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    tail = (
        f"<tfoot><tr><td colspan='{len(head)}'>{escape(footer)}</td></tr></tfoot>" if footer else ""
    )
    return f"<table>{title}<thead><tr>{cells}</tr></thead><tbody>{body}</tbody>{tail}</table>"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
