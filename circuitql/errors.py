"""User-facing errors: each says what went wrong, where, and how to fix it.

Everything a user can cause (a bad file, a bad query, an unreachable store) raises a
``CircuitQLError``; the CLI prints its message and exits with code 2, never a traceback.
Anything else escaping is a bug in circuitql.
"""

from __future__ import annotations


def shown(text: str) -> str:
    """``text`` as a terminal may print it: control characters (a newline that would forge a
    table row, an escape sequence that would retitle the terminal) written as ``\\xNN``.
    Names and metadata come from users' files; what a table or an error shows of them is
    passed through here."""
    return text.translate(_CONTROL)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


class CircuitQLError(Exception):
    """Base of all user errors. ``str(err)`` is the full one-paragraph message."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{shown(self.where)}: {self.what}" if self.where else self.what
        return f"{head}\n  fix: {self.fix}" if self.fix else head


class ModelLoadError(CircuitQLError):
    """A model file or module could not be turned into a neuron graph."""


class StoreError(CircuitQLError):
    """The store cannot be opened, written or read."""


class NameTaken(StoreError):
    """Another network is stored under the name a model would be written under: an error
    about that one model, not the store, so a batch goes on without it."""
