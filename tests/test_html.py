"""Tables for Jupyter: every cell escaped, long results cut with a word of what is left."""

from __future__ import annotations

from circuitql.engine.results import Match, Results
from circuitql.html import MAX_ROWS, table


def test_cells_are_escaped_whatever_the_names_hold() -> None:
    html = table(("name", "<b>"), [("<script>alert(1)</script>", 0.123456)], caption="a&b")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<th>&lt;b&gt;</th>" in html
    assert "<caption>a&amp;b</caption>" in html and "<td>0.1235</td>" in html


def test_results_show_the_first_rows_and_keep_the_rest_to_iterate() -> None:
    matches = (
        Match(model=f"m{i}", circuit="abs", bindings={"x": "input:0"}, error=0.0)
        for i in range(MAX_ROWS + 10)
    )
    results = Results(matches)
    html = results._repr_html_()
    assert html.count("<tr>") == 1 + MAX_ROWS + 1 and "and more" in html  # head, rows, footer
    assert f"the first {MAX_ROWS} matches" in html
    assert len(list(results)) == 10 - 1  # one past the shown rows was read to know there is more
    assert len(results.read) == MAX_ROWS + 10


def test_a_short_result_has_no_footer() -> None:
    results = Results(iter([Match(model="m", circuit="abs", bindings={}, error=0.5)]))
    html = results._repr_html_()
    assert "<tfoot>" not in html and "<td>m</td>" in html and "1 match(es)" in html
