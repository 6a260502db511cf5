"""JSON Schemas (draft 2020-12) of every JSON document the ``circuitql`` command prints.

Whatever reads ``--json`` output (a notebook, a pipeline, another tool) can validate it
against the schema of the installed version before trusting its fields, and so learns of a
change when it happens rather than through a ``KeyError`` later. The schemas are package data
(``circuitql/schemas/*.schema.json``), so they ship with the wheel and match the code that
prints the documents; docs/json.md describes each document field by field and says what is
promised about them.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from circuitql.errors import CircuitQLError

SUFFIX = ".schema.json"
NAMES: tuple[str, ...] = (
    "index",
    "models",
    "tokens",
    "match",
    "census",
    "library",
    "library-circuit",
    "show-circuits-explained",
    "compare",
    "check",
    "doctor",
    "degeneracy",
    "basis",
    "show",
)


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the document ``name`` (one of ``NAMES``), as a fresh dict.

    Validate with any draft 2020-12 validator, e.g.
    ``jsonschema.Draft202012Validator(schema("match")).validate(json.loads(out))``.
    """
    if name not in NAMES:
        raise CircuitQLError(
            f"no JSON schema named {name!r}",
            where="circuitql.schemas",
            fix=f"use one of: {', '.join(NAMES)}",
        )
    text = resources.files(__name__).joinpath(name + SUFFIX).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
