"""The HTML report (serving/report.py): structure, escaping and chances, from a synthetic
scored table."""

from __future__ import annotations

import numpy as np
import pytest

from serving.planner import range_notes, rank, write_output
from tests.serving_fixtures import context, scored_table, with_fees

# --------------------------------------------------------------------------- HTML


def test_html_puts_summary_and_chart_before_a_sortable_table(tmp_path):
    table = rank(with_fees(scored_table()), by="cost")
    table["range_note"] = range_notes(table)
    out = tmp_path / "report.html"
    write_output(table, out, context(table, top=10, notes=["3 posts rows: duplicates dropped"]))
    text = out.read_text()
    assert (
        text.index('class="cards"')
        < text.index('class="chart"')
        < text.index('<table class="ranking"')
    )
    assert text.count("<tr class=") == 10  # the top 10 only
    assert "Blended cost per engagement" in text and "Total fee" in text and "80% range" in text
    assert "engagement v3 @champion" in text and "trained on posts 2012-08-20 to 2019-05-15" in text
    assert (
        "<script>" in text
        and "addEventListener" in text
        and 'src="http' not in text
        and "<link" not in text
    )
    assert "@media (max-width: 700px)" in text  # phones: optional columns hidden, short headers
    assert "(x1.52)" in text and "(+0.42)" not in text  # contributions as factors a planner reads
    assert "Data notes" in text and "duplicates dropped" in text


def test_html_escapes_every_text_cell(tmp_path):
    table = scored_table(5)
    table.loc[0, "influencer"] = "<img src=x onerror=alert(1)>"
    write_output(rank(table), tmp_path / "r.html", context(rank(table)))
    text = (tmp_path / "r.html").read_text()
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.9996, ">99%"), (0.995, ">99%"), (0.99, "99%"), (0.42, "42%"), (0.004, "<1%"), (np.nan, "")],
)
def test_a_chance_is_never_written_as_certain(p, text):
    from serving.report import chance_text

    assert chance_text(p) == text
