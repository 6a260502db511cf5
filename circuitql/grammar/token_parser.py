"""Parse the token language back into coarse signatures.

The indexer writes tokens with plain string formatting (fast); this parser is the check that
what it writes is a word of the documented regular language, and the way other tools (and the
query planner) read network strings without re-deriving signatures.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError

from circuitql.errors import CircuitQLError
from circuitql.grammar.lalr import lalr_parser
from circuitql.graph import UnitKind
from circuitql.records import ACTIVATION_CODES, BiasClass, Signature

ACTIVATION_BY_CODE = {code: act for act, code in ACTIVATION_CODES.items()}

Layer = list[tuple[int, Signature]]


class TokenSyntaxError(CircuitQLError):
    """A string that is not a word of the token language."""


@cache
def _parser() -> Lark:
    return lalr_parser("tokens.lark", start=["network", "item"])


class _ToSignatures(Transformer[Token, object]):
    def COUNT(self, tok: Token) -> int:
        return int(tok)

    def fan_in(self, children: list[int]) -> tuple[int, int]:
        return children[0], children[1]

    fan_out = fan_in

    def bias(self, children: list[Token]) -> BiasClass:
        return BiasClass(str(children[0]))

    def input_token(self, children: list[tuple[int, int]]) -> Signature:
        out_pos, out_neg = children[0]
        return Signature(
            UnitKind.INPUT, ACTIVATION_BY_CODE["lin"], 0, 0, BiasClass.ZERO, out_pos, out_neg
        )

    def hidden_token(self, children: list[Any]) -> Signature:
        act, (n_pos, n_neg), bias, (out_pos, out_neg) = children
        return Signature(
            UnitKind.HIDDEN, ACTIVATION_BY_CODE[str(act)], n_pos, n_neg, bias, out_pos, out_neg
        )

    def output_token(self, children: list[Any]) -> Signature:
        (n_pos, n_neg), bias = children
        return Signature(UnitKind.OUTPUT, ACTIVATION_BY_CODE["lin"], n_pos, n_neg, bias, 0, 0)

    def item(self, children: list[Any]) -> tuple[int, Signature]:
        if len(children) == 2:
            return children[0], children[1]
        return 1, children[0]

    def layer(self, children: list[tuple[int, Signature]]) -> Layer:
        return list(children)

    def network(self, children: list[Layer]) -> list[Layer]:
        return list(children)


def _parse(text: str, start: str) -> Any:
    try:
        tree = _parser().parse(text, start=start)
    except LarkError as exc:
        raise TokenSyntaxError(
            f"not a word of the token language: {exc}".splitlines()[0],
            where=repr(text[:60]),
            fix="tokens look like relu(+1-1)b0>(+1-0); see circuitql/grammar/tokens.lark",
        ) from exc
    return _ToSignatures().transform(tree)


def parse_network(text: str) -> list[Layer]:
    """``[x>(+1-0) ...] [...]`` -> per layer, (count, coarse signature) items."""
    layers: list[Layer] = _parse(text, "network")
    return layers


def parse_token(text: str) -> Signature:
    """One token's coarse signature; a counted item (``N*token``) is a ``TokenSyntaxError``."""
    count, signature = _parse(text, "item")
    assert isinstance(signature, Signature)
    if count != 1:
        raise TokenSyntaxError(
            "expected one token, got a counted item", where=repr(text), fix="drop the 'N*' prefix"
        )
    return signature


def split_layers(text: str) -> list[str]:
    """A network string's layer words, in order (checked against the grammar first)."""
    parse_network(text)
    return layer_words(text)


def layer_words(text: str) -> list[str]:
    """The layer words of a network string as the indexer wrote it, unchecked: parsing a
    768-wide network's string takes a third of a second, which comparing two stored models
    should not pay on every call."""
    return re.findall(r"\[[^\]]*\]", text)
