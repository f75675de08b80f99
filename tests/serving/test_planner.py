"""The planner's outputs without a model (serving/planner.py): ranking, the summary's total
range, Excel formats, fee tables, data notes and warnings (a synthetic scored table stands in
for a model)."""

from __future__ import annotations

import numpy as np
import openpyxl
import pandas as pd
import pytest

from features.contract import DataError
from serving.planner import (
    check_fees,
    check_planned_posts,
    missing_optional_columns,
    planner_notes,
    range_notes,
    rank,
    read_fees,
    read_shortlist,
    simulate_total,
    stale_data_notes,
    summarise,
    unseen_platform_notes,
    write_output,
)
from tests.serving_fixtures import context, scored_table, with_fees

# -------------------------------------------------------------- fee amounts and planned posts


@pytest.mark.parametrize(
    "cell, match",
    [
        (
            "1.500,00",
            r"rows 1: ambiguous decimal or thousands separator \('1\.500,00'\)",
        ),  # 1500 in Germany
        ("2,5", r"rows 1: ambiguous decimal or thousands separator \('2,5'\)"),  # 2.5 or 25?
        ("1,500", r"rows 1: ambiguous decimal or thousands separator \('1,500'\)"),  # 1500 or 1.5?
        (
            "$1500",
            r"rows 1: not a number; write plain digits with '\.' as the decimal point",
        ),  # currency sign
        ("1500 EUR", r"rows 1: not a number"),  # currency code in the cell
        ("1e3", r"rows 1: not a number"),  # scientific notation is no way to write a fee
        ("inf", r"rows 1: not a number"),
    ],
)
def test_fee_amounts_are_never_guessed(cell, match):
    with pytest.raises(DataError, match=match):
        check_fees(pd.DataFrame({"influencer": ["a", "b"], "fee": [cell, "10"]}), "fees.csv")


def test_fee_amounts_read_as_written():
    fees = check_fees(
        pd.DataFrame(
            {"influencer": ["a", "b", "c", "d"], "fee": ["1500", " 1500.50 ", "0.5", None]}
        )
    )
    assert fees.table["fee"].tolist()[:3] == [1500.0, 1500.5, 0.5] and np.isnan(
        fees.table["fee"].iloc[3]
    )
    # Typed amounts (Parquet) are taken as they are; true/false and infinities are refused.
    assert check_fees(pd.DataFrame({"influencer": ["a"], "fee": [1200.25]})).table[
        "fee"
    ].tolist() == [1200.25]
    with pytest.raises(DataError, match="true/false values, not amounts"):
        check_fees(pd.DataFrame({"influencer": ["a"], "fee": [True]}))
    with pytest.raises(DataError, match="rows 1: infinite amount"):
        check_fees(pd.DataFrame({"influencer": ["a"], "fee": [np.inf]}))
    with pytest.raises(
        DataError, match=r"the header names one column more than once \('fee' and 'Fee'"
    ):
        check_fees(pd.DataFrame([["a", 1, 2]], columns=["influencer", "fee", "Fee"]))


def test_conflicting_planned_posts_for_one_candidate_are_refused():
    frame = pd.DataFrame({"influencer": ["a", "a", "b", "b"], "sponsored": ["yes", "no", "1", "1"]})
    with pytest.raises(DataError, match=r"different planned posts for the same influencer \(a\)"):
        check_planned_posts(frame, "plan.csv")
    # The same plan written twice is one plan; a shortlist without plan columns has none.
    same = check_planned_posts(frame.iloc[2:], "plan.csv")
    assert same is not None and same["sponsored"].tolist() == [True]
    assert check_planned_posts(frame[["influencer"]], "plan.csv") is None


# --------------------------------------------------------------------------- ranking


@pytest.mark.parametrize(
    "by, column, descending",
    [
        ("engagements", "expected_engagements", True),  # the default without fees
        ("rate", "predicted_er", True),
        ("cost", "cost_per_engagement", False),  # the default with fees: cheapest first
        ("p_reach", "p_reach", True),
    ],
)
def test_rank_by_each_measure_keeps_every_row_and_puts_unranked_last(by, column, descending):
    table = rank(with_fees(scored_table()), by=by)
    ranked = table[table["rank"].notna()]
    values = ranked[column].to_numpy(float)
    assert (np.diff(values) <= 0).all() if descending else (np.diff(values) >= 0).all()
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert len(table) == 40 and table["rank"].isna().iloc[-1]  # the zero-follower row kept, last


def test_cost_percentiles_come_from_the_opposite_engagement_percentiles():
    table = with_fees(scored_table())
    row = table.iloc[0]
    assert row["cost_per_engagement_p10"] == pytest.approx(row["fee"] / row["engagements_p90"])
    assert row["cost_per_engagement_p90"] == pytest.approx(row["fee"] / row["engagements_p10"])
    assert (
        row["cost_per_engagement_p10"]
        < row["cost_per_engagement_p50"]
        < row["cost_per_engagement_p90"]
    )


# --------------------------------------------------------------------------- summary


def test_the_total_range_is_narrower_than_the_sum_of_ranges_and_covers_simulated_totals():
    rng = np.random.default_rng(1)
    p50 = rng.uniform(100, 5000, 30)
    p10, p90 = p50 * 0.4, p50 * 2.5
    draws = simulate_total(p10, p50, p90, draws=20_000)
    low, high = np.quantile(draws, [0.1, 0.9])
    # Independent misses partly cancel: the sum of the 10th percentiles is far below the total's;
    # skewed forecasts put the total's middle above the sum of the medians.
    assert p10.sum() < low < np.median(draws) < high < p90.sum() and p50.sum() < np.median(draws)
    assert high - low < 0.5 * (p90.sum() - p10.sum())
    # Each candidate's draws keep its own percentiles.
    one = simulate_total(p10[:1], p50[:1], p90[:1], draws=20_000)
    assert np.quantile(one, [0.1, 0.5, 0.9]) == pytest.approx([p10[0], p50[0], p90[0]], rel=0.05)


def test_summary_counts_fees_and_blends_cost_over_candidates_with_a_fee():
    table = with_fees(scored_table())
    table.loc[0, "fee"] = np.nan  # one candidate without a fee: out of both sides of the blend
    summary = summarise(table)
    scored = table["status"].astype(str).str.startswith("ok")
    paid = scored & table["fee"].notna()
    assert (
        summary.candidates == 40
        and summary.scored == int(scored.sum())
        and summary.with_fee == int(paid.sum())
    )
    assert summary.total_fee == pytest.approx(table.loc[paid, "fee"].sum())
    assert summary.blended_cost == pytest.approx(
        table.loc[paid, "fee"].sum() / table.loc[paid, "expected_engagements"].sum()
    )
    assert summary.engagements_low < summary.engagements_median < summary.engagements_high
    assert summary.expected_reaching == pytest.approx(table.loc[scored, "p_reach"].sum())


# --------------------------------------------------------------------------- Excel


def test_excel_has_plain_bold_headers_autofilter_number_formats_and_a_date(tmp_path):
    table = rank(with_fees(scored_table()), by="cost")
    table["range_note"] = range_notes(table)
    out = tmp_path / "ranked.xlsx"
    write_output(
        table,
        out,
        context(table, technical=["profiles.csv, column 'followers', rows 40: zero followers"]),
    )
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["ranking", "about", "data checks"]
    sheet = book["ranking"]
    headers = {c.value: c for c in sheet[1]}
    assert all(c.font.b for c in sheet[1])
    assert sheet.auto_filter.ref == sheet.dimensions
    assert "predicted_er" not in headers and "Predicted engagement rate" in headers

    def fmt(name: str) -> str:
        return sheet.cell(row=2, column=headers[name].column).number_format

    assert fmt("Followers") == "#,##0" and fmt("Expected engagements per post") == "#,##0"
    assert (
        fmt("Predicted engagement rate") == "0.00%" and fmt("Chance of reaching the target") == "0%"
    )
    assert fmt("Fee") == '#,##0.00 "EUR"' and fmt("Cost per engagement") == '#,##0.00## "EUR"'
    as_of = sheet.cell(row=2, column=headers["Scored as of (UTC)"].column)
    assert as_of.is_date and as_of.value == pd.Timestamp("2019-05-20").to_pydatetime()
    # Columns nobody has a value for (no views on this data) are left out.
    assert "Engagements per view" not in headers
    about = dict(book["about"].iter_rows(min_row=2, values_only=True))
    assert about["model"].startswith(
        "engagement v3 @champion (20261202T010000Z-abc123, "
        "trained on posts 2012-08-20 to 2019-05-15"
    )
    assert "80% range" in about["total engagements, one post each"]


def test_a_table_excel_cannot_hold_is_refused_not_cut(tmp_path, monkeypatch):
    """Excel keeps 32,767 characters a cell and 1,048,576 rows a sheet, and "repairs" (cuts) a
    file past them: refused before anything is written, with .csv as the way out."""
    import serving.planner
    from features.outputs import OutputError

    table = rank(scored_table(), by="engagements")
    table.loc[3, "influencer"] = "x" * 40_000
    out = tmp_path / "ranked.xlsx"
    with pytest.raises(OutputError, match=r"column 'influencer', row 4 holds 40000 characters"):
        write_output(table, out, context(table))
    monkeypatch.setattr(serving.planner, "EXCEL_MAX_ROWS", 10)
    table = rank(scored_table(), by="engagements")
    with pytest.raises(OutputError, match=r"40 rows, over the 9 an Excel sheet holds; write \.csv"):
        write_output(table, out, context(table))
    assert not list(tmp_path.iterdir())
    write_output(table, tmp_path / "ranked.csv", context(table))  # CSV has no such limits


def test_a_currency_code_cannot_break_the_number_format(tmp_path):
    table = rank(with_fees(scored_table(), currency='E"U;R'), by="cost")
    write_output(table, tmp_path / "x.xlsx", context(table))
    sheet = openpyxl.load_workbook(tmp_path / "x.xlsx")["ranking"]
    headers = {c.value: c.column for c in sheet[1]}
    assert sheet.cell(row=2, column=headers["Fee"]).number_format == '#,##0.00 "EUR"'


def test_top_n_keeps_the_first_n_rows_in_csv_and_excel(tmp_path):
    table = rank(scored_table())
    for name in ("top.csv", "top.xlsx"):
        write_output(table, tmp_path / name, context(table, top=5))
    csv = pd.read_csv(tmp_path / "top.csv")
    assert csv["rank"].tolist() == [1, 2, 3, 4, 5]
    assert set(csv["model"]) == {
        "engagement v3 @champion (20261202T010000Z-abc123, "
        "trained on posts 2012-08-20 to 2019-05-15)"
    }
    assert pd.read_excel(tmp_path / "top.xlsx", sheet_name="ranking")["Rank"].tolist() == [
        1,
        2,
        3,
        4,
        5,
    ]


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_fee_tables_and_shortlists_may_be_excel_or_csv(tmp_path, suffix):
    frame = pd.DataFrame({"influencer": ["a", "b"], "fee": ["1500", "200.5"], "currency": "eur"})
    path = tmp_path / f"fees{suffix}"
    frame.to_excel(path, index=False) if suffix == ".xlsx" else frame.to_csv(path, index=False)
    fees = read_fees(path)
    assert fees.table["fee"].tolist() == [1500.0, 200.5] and fees.currency == "EUR"
    assert read_shortlist(path) == ["a", "b"]


def test_a_bad_excel_fee_table_names_its_rows(tmp_path):
    path = tmp_path / "fees.xlsx"
    pd.DataFrame({"influencer": ["a", "b", "c"], "fee": ["100", "lots", "-5"]}).to_excel(
        path, index=False
    )
    with pytest.raises(
        DataError,
        match=r"fees.xlsx: the fee table cannot be used:\n  column 'fee', "
        r"rows 2: not a number.*\n  column 'fee', rows 3: negative fee",
    ):
        read_fees(path)
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"broken.xlsx: cannot be read as an Excel workbook"):
        read_shortlist(tmp_path / "broken.xlsx")


def test_an_excel_header_naming_a_column_twice_is_refused_not_renamed(tmp_path):
    """pandas would read the second 'fee' as 'fee.1' and the first would silently be the fee."""
    import openpyxl

    path = tmp_path / "fees.xlsx"
    book = openpyxl.Workbook()
    book.active.append(["influencer", "fee", "Fee "])
    book.active.append(["a", 100, 9000])
    book.save(path)
    message = r"fees\.xlsx: the header names one column more than once \('fee' and 'Fee '"
    with pytest.raises(DataError, match=message):
        read_fees(path)
    with pytest.raises(DataError, match=message):
        read_shortlist(path)
    openpyxl.Workbook().save(tmp_path / "empty.xlsx")
    with pytest.raises(DataError, match=r"empty\.xlsx: the first sheet is empty"):
        read_shortlist(tmp_path / "empty.xlsx")


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_handles_that_look_missing_are_names_in_excel_as_in_csv(tmp_path, suffix):
    """pandas reads "NA", "null", "None" as missing by default: the shortlist lost them."""
    names = ["NA", "null", "None", "n/a", "ana"]
    frame = pd.DataFrame({"influencer": names, "fee": ["1", "2", "3", "4", "5"]})
    path = tmp_path / f"fees{suffix}"
    frame.to_excel(path, index=False) if suffix == ".xlsx" else frame.to_csv(path, index=False)
    assert read_shortlist(path) == names
    assert read_fees(path).table["influencer"].tolist() == names


def test_excel_error_cells_are_named_not_read_as_empty(tmp_path):
    """A failed lookup (#N/A) or division (#DIV/0!) is an error cell, which pandas reads as
    empty: it was reported as a missing influencer, or kept as a candidate without a fee. Typing
    #N/A into Excel makes the same error value; typed as text ('#N/A) it is a name."""
    import openpyxl
    from openpyxl.cell.cell import TYPE_ERROR

    path = tmp_path / "fees.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["influencer", "fee"])
    for row in (["a", 100], ["#N/A", 200], ["c", "#DIV/0!"], ["d", 300]):
        sheet.append(row)
    for cell in (sheet["A3"], sheet["B4"]):
        cell.data_type = TYPE_ERROR
    book.save(path)
    message = (
        r"fees\.xlsx: cells hold Excel errors, not values:\n"
        r"  column 'influencer', rows 2: Excel error #N/A\n"
        r"  column 'fee', rows 3: Excel error #DIV/0!\n"
        r"  fix the formulas, or type a value that looks like an error as text"
    )
    with pytest.raises(DataError, match=message):
        read_fees(path)
    with pytest.raises(DataError, match=message):
        read_shortlist(path)
    header_error = openpyxl.Workbook()
    header_error.active.append(["influencer", "#REF!"])
    header_error.active.append(["a", 100])
    header_error.save(tmp_path / "header.xlsx")
    with pytest.raises(DataError, match=r"the header, column 2: Excel error #REF!"):
        read_fees(tmp_path / "header.xlsx")
    sheet["A3"].data_type, sheet["B4"].data_type = "s", "s"  # the same values, typed as text
    sheet["B4"] = 250
    book.save(path)
    assert read_fees(path).table["influencer"].tolist() == ["a", "#N/A", "c", "d"]


def test_blank_names_with_different_fees_are_reported_not_a_traceback(tmp_path):
    path = tmp_path / "fees.csv"
    path.write_text("influencer,fee\n,100\nana,5\n,200\n")
    with pytest.raises(DataError, match=r"column 'influencer', rows 1, 3: missing influencer"):
        read_fees(path)


def test_an_excel_zip_bomb_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    import serving.planner

    path = tmp_path / "fees.xlsx"
    pd.DataFrame({"influencer": ["a"], "fee": ["1"]}).to_excel(path, index=False)
    monkeypatch.setattr(serving.planner, "MAX_WORKBOOK_UNPACKED_BYTES", 1000)
    with pytest.raises(
        DataError, match=r"fees\.xlsx: the workbook unpacks to .* save the table as CSV"
    ):
        read_fees(path)


def test_a_csv_fee_table_from_excel_with_a_byte_order_mark_reads(tmp_path):
    # Excel's "CSV UTF-8" starts with a byte-order mark: stripped, never part of 'influencer'.
    path = tmp_path / "fees.csv"
    path.write_bytes("\ufeffinfluencer,fee\nana,1500\n".encode())
    assert read_fees(path).table["influencer"].tolist() == ["ana"]
    assert read_shortlist(path) == ["ana"]


# --------------------------------------------------------------------------- notes and warnings


def test_data_notes_for_planners_carry_counts_not_paths_or_rows():
    from features.contract import Problem, ValidationReport

    report = ValidationReport()
    report.add(
        Problem(
            "posts",
            "/srv/data/posts.csv",
            "post_id",
            [3, 9, 12],
            41,
            "exact duplicate rows",
            False,
            "extra copies dropped",
        )
    )
    planner, technical = planner_notes(report)
    assert planner == ["41 posts rows (post_id): exact duplicate rows: extra copies dropped"]
    assert "/srv/data" not in planner[0] and "3, 9, 12" not in planner[0]
    assert technical == [
        "/srv/data/posts.csv, column 'post_id', rows 3, 9, 12 (first "
        "3 of 41): exact duplicate rows -> extra copies dropped"
    ]


def test_stale_data_is_warned_about_with_a_backtest_date():
    notes = stale_data_notes(
        ("2012-01-01", "2019-05-15 05:47:25+00:00"),
        pd.Timestamp("2025-12-01", tz="UTC"),
        ("2012-08-20", "2019-05-15"),
    )
    assert (
        "Stale data: the newest post is from 2019-05-15, 2,391 days before" in notes[0]
        and "--as-of 2019-05-16" in notes[0]
    )
    assert "learned from posts up to 2019-05-15" in notes[1]
    assert (
        stale_data_notes(
            ("2019-01-01", "2019-05-15"),
            pd.Timestamp("2019-05-20", tz="UTC"),
            ("2012-08-20", "2019-05-15"),
        )
        == []
    )


def test_missing_optional_columns_are_named():
    profiles = pd.DataFrame(columns=["influencer", "followers", "category", "following"])
    posts = pd.DataFrame(
        columns=[
            "influencer",
            "post_id",
            "posted_at",
            "likes",
            "comments",
            "hashtags",
            "caption",
            "media_type",
            "is_sponsored",
            "shares",
            "saves",
            "views",
        ]
    )
    notes = missing_optional_columns(profiles, posts)
    assert (
        len(notes) == 1
        and "posts_count (total post count)" in notes[0]
        and "verified" in notes[0]
        and "hashtags" not in notes[0]
    )
    assert missing_optional_columns(profiles.assign(posts_count=1, verified=1), posts) == []
    # A model trained without a verified flag: its absence moves nothing and is not named;
    # per-view figures need views whatever the model had.
    trained_with = {"profiles": ["influencer", "followers", "posts_count"], "posts": ["likes"]}
    notes = missing_optional_columns(profiles, posts.drop(columns=["views"]), trained_with)
    assert len(notes) == 1 and "posts_count" in notes[0] and "verified" not in notes[0]
    assert "views (no per-view figures)" in notes[0]


def test_range_notes_say_how_much_history_the_forecast_stands_on():
    table = scored_table()
    notes = range_notes(table)
    by_history = dict(zip(table["history_posts"], notes, strict=True))
    assert (
        by_history[0.0].startswith("no post history")
        and by_history[2.0] == "only 2 earlier posts; micro tier"
    )
    assert (
        by_history[30.0] == "30 earlier posts (a long record); micro tier" and notes[-1] == ""
    )  # unscored: no note


def test_candidates_on_a_platform_the_model_never_saw_get_one_warning_per_platform():
    from serving.predictor import STATUS_COLD, STATUS_OK, UNSEEN_PLATFORM

    def unseen(status: str, platform: str) -> str:
        return f"{status}; {UNSEEN_PLATFORM.format(platform=platform, trained='instagram')}"

    table = pd.DataFrame(
        {
            "status": [
                STATUS_OK,
                unseen(STATUS_OK, "tiktok"),
                unseen(STATUS_COLD, "tiktok"),
                unseen(STATUS_OK, "youtube"),
            ]
        }
    )
    notes = unseen_platform_notes(table, ["instagram"])
    assert len(notes) == 2
    assert notes[0].startswith("2 candidates are on tiktok, which the model was not trained on")
    assert (
        notes[1].startswith("1 candidate is on youtube") and "calibrated on instagram" in notes[1]
    )
    assert unseen_platform_notes(table.iloc[:1], ["instagram"]) == []
