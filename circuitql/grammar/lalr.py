"""LALR parsers for the grammars in this folder, their tables kept between runs.

Building the query grammar's tables takes 0.3 s, most of a short command's run; loading
them back from the cache (``circuitql.cache``) takes 0.04 s. The tables are keyed by the
grammar's text, the parser's options and lark's version, so editing a grammar, or upgrading
lark, builds them again.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import lark
from lark import Lark, Transformer
from lark.grammar import Rule
from lark.lexer import TerminalDef

from circuitql.cache import cached, content_key

# Bump when what is kept changes shape.
TABLES_FORMAT = "1"


def lalr_parser(
    grammar_file: str, transformer: Transformer[Any, Any] | None = None, **options: Any
) -> Lark:
    """A LALR parser for ``grammar_file`` (in this package), built or loaded from its cached
    tables. ``transformer`` is not part of the tables: it is code, and is attached on load."""
    grammar = resources.files("circuitql.grammar").joinpath(grammar_file).read_text("utf-8")
    options = {"parser": "lalr", **options}
    key = content_key(TABLES_FORMAT, lark.__version__, repr(sorted(options.items())), grammar)

    def build() -> dict[str, Any]:
        data, memo = Lark(grammar, **options).memo_serialize([TerminalDef, Rule])
        return {"data": data, "memo": memo}

    def use(tables: dict[str, Any]) -> Lark:
        return Lark._load_from_dict(tables["data"], tables["memo"], transformer=transformer)

    return cached(f"{grammar_file}-tables", key, build, use)
