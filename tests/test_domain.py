"""Input domains: read from the command line and from JSON, checked against a model."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from circuitql.domain import Domain, DomainError

finite = st.floats(-1e6, 1e6, allow_nan=False)


def test_one_interval_stands_for_every_input() -> None:
    domain = Domain.parse("-2:2")
    assert domain.box == ((-2.0, 2.0),)
    assert domain.for_inputs(3).box == ((-2.0, 2.0),) * 3
    assert domain.for_inputs(3).text() == "[-2, 2] for each of 3 inputs"


def test_one_interval_per_input() -> None:
    domain = Domain.parse(" -2:2, 0:1 ")
    assert domain.box == ((-2.0, 2.0), (0.0, 1.0))
    assert domain.for_inputs(2) is domain
    assert domain.text() == "[-2, 2] x [0, 1]"
    with pytest.raises(DomainError, match="2 intervals but the model has 3 inputs"):
        domain.for_inputs(3)


@pytest.mark.parametrize("text", ["", "2", "1:2:3", "a:b", "1:", "nan:1", "3:2", "1:2,,"])
def test_bad_domains_are_refused_with_the_format(text: str) -> None:
    with pytest.raises(DomainError) as err:
        Domain.parse(text)
    assert err.value.fix is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "0:1",
        [1],
        [1, 2, 3],
        [[0, 1], "x"],
        [True, 2],
        [0, 10**400],
        [[0, 1], [2, 1]],
        [],
        {"lo": 0},
    ],
)
def test_bad_json_domains_are_refused(value: object) -> None:
    with pytest.raises(DomainError):
        Domain.from_json(value)


@pytest.mark.parametrize("value", [[0, math.inf], [-math.inf, 0], [-1e308, 1e308]])
def test_unbounded_intervals_are_refused(value: list[float]) -> None:
    """Probes are drawn from a domain, and JSON cannot write an infinite end: unbounded
    inputs are what no domain means."""
    with pytest.raises(DomainError, match="unbounded") as err:
        Domain.from_json(value)
    assert "give no domain" in (err.value.fix or "")


@given(st.lists(st.tuples(finite, finite).map(sorted).map(tuple), min_size=1, max_size=5))
def test_json_round_trips(box: list[tuple[float, float]]) -> None:
    domain = Domain(tuple(box))  # type: ignore[arg-type]
    again = Domain.from_json(domain.to_json()).for_inputs(len(box))
    assert again.box == domain.for_inputs(len(box)).box
