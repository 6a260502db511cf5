"""The AST as plain JSON values and back, so that parsed text can be kept in the cache
(``circuitql.cache``) without pickle: a node is an object tagged with its class's name,
which must be one of this package's AST classes; a tuple is a list.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from circuitql.cache import content_key
from circuitql.grammar import ast, parser
from circuitql.graph import Activation

_NODES: dict[str, type] = {
    name: cls
    for name, cls in vars(ast).items()
    if isinstance(cls, type) and dataclasses.is_dataclass(cls)
}
_TAG = "@"


def to_json(node: Any) -> Any:
    """``node`` as JSON values, positions and source text included; TypeError for a value that
    has no place in a query AST."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {
            _TAG: type(node).__name__,
            **{f.name: to_json(getattr(node, f.name)) for f in dataclasses.fields(node)},
        }
    if isinstance(node, Activation):
        return {_TAG: "Activation", "value": node.value}
    if isinstance(node, tuple):
        return [to_json(item) for item in node]
    if node is None or isinstance(node, bool | int | float | str):
        return node
    raise TypeError(f"no JSON form for {type(node).__name__} in a query AST")


def from_json(data: Any) -> Any:
    """The AST ``to_json`` gave ``data`` for; ValueError for anything else."""
    if isinstance(data, list):
        return tuple(from_json(item) for item in data)
    if isinstance(data, dict):
        fields = dict(data)
        tag = fields.pop(_TAG, None)
        if tag == "Activation":
            return Activation(fields["value"])
        if tag not in _NODES:
            raise ValueError(f"not an AST node: {tag!r}")
        try:
            return _NODES[tag](**{name: from_json(value) for name, value in fields.items()})
        except TypeError as err:  # fields the class does not have, or lacks
            raise ValueError(str(err)) from None
    return data


def parser_fingerprint() -> str:
    """A key for what parsing a text gives: the grammar, the parser and the AST classes.
    A value derived from parsed text is derived from these too."""
    grammar = resources.files("circuitql.grammar").joinpath("query.lark").read_text("utf-8")
    code = [Path(module.__file__ or "").read_text("utf-8") for module in (ast, parser)]
    return content_key(grammar, *code)
