"""``engage score`` and ``engage serve`` (engage/serve_commands.py): ranking, fees,
backtests, CSV/Excel/HTML outputs, bad input and the server's options, through
``engage.cli.main``."""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engage.cli import EXIT_BAD_INPUT, main
from engage.serve_commands import SERVE_PORT
from serving.predictor import STATUS_COLD, STATUS_NO_PROFILE, STATUS_ZERO_FOLLOWERS
from tests.serving_fixtures import ServingModel, shortlist

REPO = Path(__file__).resolve().parents[2]


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def files(served: ServingModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A shortlist as CSV files: candidates with posts,
    without posts, and one with zero followers."""
    profiles, posts = shortlist(served.data)
    profiles.loc[len(profiles)] = profiles.iloc[0].to_dict() | {
        "influencer": "zero_hero",
        "followers": "0",
    }
    folder = tmp_path_factory.mktemp("shortlist")
    profiles.to_csv(folder / "profiles.csv", index=False)
    posts.to_csv(folder / "posts.csv", index=False)
    return folder / "profiles.csv", folder / "posts.csv"


def score(served: ServingModel, files: tuple[Path, Path], out: Path, *extra: str) -> int:
    return main(
        [
            "score",
            "--model",
            str(served.model_dir),
            "--profiles",
            str(files[0]),
            "--posts",
            str(files[1]),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_csv_ranks_by_expected_engagements_and_keeps_every_candidate(
    served, files, tmp_path, capsys
):
    out = tmp_path / "ranked.csv"
    assert score(served, files, out, "--show", "5") == 0
    table = pd.read_csv(out)
    profiles = pd.read_csv(files[0], dtype=str)
    assert sorted(table["influencer"]) == sorted(profiles["influencer"])
    ranked = table[table["rank"].notna()]
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["expected_engagements"].is_monotonic_decreasing
    zero = table.set_index("influencer").loc["zero_hero"]
    assert zero["status"] == STATUS_ZERO_FOLLOWERS and np.isnan(zero["rank"])
    assert (table["status"] == STATUS_COLD).sum() == 4
    captured = capsys.readouterr()
    # Set aside by the contract, a handled problem (not fatal), named with its row.
    row = profiles.index[profiles["influencer"] == "zero_hero"][0] + 1
    assert (
        f"NOTE  {files[0]}, column 'followers', rows {row}: zero followers: engagement "
        f"rate is undefined -> not scored; listed with status '{STATUS_ZERO_FOLLOWERS}'"
        in captured.err
    )
    printed = captured.out
    assert "rank" in printed and "predicted ER" in printed and f"wrote {len(table)} rows" in printed
    assert printed.count("\n   ") >= 5  # five table rows printed (right-aligned ranks)


def test_on_a_terminal_the_top_of_the_shortlist_is_a_rich_table(
    served, files, tmp_path, capsys, monkeypatch
):
    import engage.serve_commands
    from serving.planner import console_rows

    monkeypatch.setattr(engage.serve_commands, "rich_stdout", lambda: True)
    monkeypatch.setenv("COLUMNS", "300")  # the width rich gives a console that is not a tty
    out = tmp_path / "ranked.csv"
    assert score(served, files, out, "--show", "3") == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out, keep_default_na=False, dtype=str)
    rows = console_rows(pd.read_csv(out), 3)
    header = next(line for line in printed.splitlines() if "┃" in line)
    assert "predicted ER" in header and "influencer" in header
    lines = [line for line in printed.splitlines() if "│" in line]
    for name, er in zip(rows["influencer"], rows["predicted ER"], strict=True):
        assert any(name in line and er in line for line in lines), (name, er)
    assert table["influencer"].iloc[3] not in printed  # --show 3: three rows
    assert f"wrote {len(table)} rows" in printed


def test_on_a_terminal_every_step_of_scoring_moves_a_progress_bar(
    served, files, tmp_path, monkeypatch
):
    from contextlib import nullcontext

    import engage.serve_commands
    from engage.console import ProgressBars
    from serving.predictor import CHECKING_STEP, FEATURES_STEP

    class Drawn:  # stands for rich's Progress: records what the bars are moved to
        def __init__(self) -> None:
            self.moves: list[tuple[str, int, int]] = []

        def add_task(self, task: str, total: int) -> str:
            return task

        def update(self, task: str, completed: int, total: int) -> None:
            self.moves.append((task, completed, total))

    drawn = Drawn()
    bars = ProgressBars(drawn)  # type: ignore[arg-type]
    monkeypatch.setattr(engage.serve_commands, "progress_bars", lambda: nullcontext(bars))
    fees = tmp_path / "fees.csv"
    first = pd.read_csv(files[0], dtype=str)["influencer"].iloc[0]
    pd.DataFrame({"influencer": [first], "fee": [100]}).to_csv(fees, index=False)
    assert score(served, files, tmp_path / "ranked.csv", "--fees", str(fees)) == 0
    tables = engage.serve_commands.TABLES_READ
    assert drawn.moves == [
        (tables, 0, 3),  # profiles, posts, the fee table
        (tables, 1, 3),
        (tables, 2, 3),
        (tables, 3, 3),
        (CHECKING_STEP, 0, 1),
        (CHECKING_STEP, 1, 1),
        (FEATURES_STEP, 0, 1),
        (FEATURES_STEP, 1, 1),
        ("candidates scored", 0, 1),  # the one the fee table names
        ("candidates scored", 1, 1),
    ]


def test_excel_output_has_the_ranking_and_an_about_sheet(served, files, tmp_path):
    out = tmp_path / "ranked.xlsx"
    assert score(served, files, out, "--top", "0") == 0
    sheets = pd.read_excel(out, sheet_name=None)
    assert set(sheets) == {
        "ranking",
        "about",
        "data checks",
    }  # the technical validation lines apart
    assert {
        "Rank",
        "Influencer",
        "Predicted engagement rate",
        "Rate, low end of range",
        "Rate, high end of range",
        "Peer percentile",
        "Reasons",
        "Status",
    } <= set(sheets["ranking"].columns)
    assert "zero followers" in " ".join(sheets["data checks"].iloc[:, 0])
    assert "interactions" in " ".join(sheets["about"]["value"].astype(str))


def test_html_report_is_self_contained(served, files, tmp_path):
    out = tmp_path / "report.html"
    assert score(served, files, out, "--top", "0") == 0
    text = out.read_text()
    assert "data:image/png;base64," in text
    assert "How to read this" in text and "interactions / followers" in text
    assert "zero_hero" in text and STATUS_ZERO_FOLLOWERS in text
    # One file: the chart inline, the sorting script inline, nothing fetched.
    assert 'src="http' not in text and "<script src" not in text and "<link" not in text
    assert text.count("<script>") == 1


def test_fees_add_cost_per_engagement_and_report_unknown_and_missing_fees(
    served, files, tmp_path, capsys
):
    profiles = pd.read_csv(files[0], dtype=str)
    names = profiles["influencer"].tolist()
    fees = pd.DataFrame(
        {
            "influencer": [*names[:5], "ghost_account", names[5]],
            "fee": ["500", "1200", "800", "50", "3000", "700", ""],
            "currency": "EUR",
        }
    )
    fees.to_csv(tmp_path / "fees.csv", index=False)
    out = tmp_path / "ranked.csv"
    assert score(served, files, out, "--fees", str(tmp_path / "fees.csv")) == 0
    table = pd.read_csv(out).set_index("influencer")
    # The fee table is the shortlist: its names only, unknown ones kept with their fee.
    assert set(table.index) == set(fees["influencer"])
    assert (
        table.loc["ghost_account", "status"] == STATUS_NO_PROFILE
        and table.loc["ghost_account", "fee"] == 700
    )
    assert np.isnan(table.loc[names[5], "fee"]) and np.isnan(
        table.loc[names[5], "cost_per_engagement"]
    )
    with_fee = table.loc[names[:5]]
    np.testing.assert_allclose(
        with_fee["cost_per_engagement"],
        with_fee["fee"] / with_fee["expected_engagements"],
        rtol=1e-9,
    )
    ranked = table[table["rank"].notna()].sort_values("rank")
    assert ranked["cost_per_engagement"].is_monotonic_increasing and len(ranked) == 5
    printed = capsys.readouterr().out
    assert "ghost_account" in printed and "without a profile" in printed
    assert "no fee in rows 7" in printed


@pytest.mark.parametrize(
    "fees, match",
    [
        (
            {"influencer": ["a", "b"], "fee": ["100", "lots"]},
            r"column 'fee', rows 2: not a number",
        ),  # text fee
        ({"influencer": ["a", "b"], "fee": ["100", "-5"]}, "negative fee"),  # negative fee
        (
            {"influencer": ["a", "a"], "fee": ["100", "200"]},
            "different fees for the same influencer",
        ),  # conflicting rows
        (
            {"influencer": ["a", "b"], "fee": ["1", "2"], "currency": ["EUR", "USD"]},
            "several currencies",
        ),  # mixed currencies
        ({"name": ["a"], "fee": ["1"]}, "required column"),  # no influencer column
        (
            {"influencer": ["a", "b"], "fee": ["100", "1.500,00"]},
            r"column 'fee', rows 2: ambiguous decimal or thousands "
            r"separator \('1\.500,00'\); write plain digits",
        ),  # European format
    ],
)
def test_bad_fee_tables_exit_2_with_the_reason(served, files, tmp_path, capsys, fees, match):
    pd.DataFrame(fees).to_csv(tmp_path / "fees.csv", index=False)
    assert (
        score(served, files, tmp_path / "out.csv", "--fees", str(tmp_path / "fees.csv"))
        == EXIT_BAD_INPUT
    )
    assert pd.Series([capsys.readouterr().err]).str.contains(match).iloc[0]


def test_as_of_backtest_uses_only_earlier_posts(served, tmp_path):
    posts = served.data.posts
    counts = posts.groupby("influencer").size()
    names = counts[counts >= 3].index[:3]
    profiles = served.data.profiles[served.data.profiles["influencer"].isin(names)]
    own = posts[posts["influencer"].isin(names)]
    profiles.to_csv(tmp_path / "p.csv", index=False)
    own.to_csv(tmp_path / "q.csv", index=False)
    # One cutoff for all: the earliest of their last
    # posts, so every one loses at least its last post.
    cutoff = own.groupby("influencer")["posted_at"].apply(lambda s: sorted(s)[-1]).min()
    files = (tmp_path / "p.csv", tmp_path / "q.csv")
    assert score(served, files, tmp_path / "now.csv") == 0
    assert score(served, files, tmp_path / "back.csv", "--as-of", cutoff) == 0
    now = pd.read_csv(tmp_path / "now.csv").set_index("influencer")
    back = pd.read_csv(tmp_path / "back.csv").set_index("influencer")
    assert not np.allclose(now.loc[names, "predicted_er"], back.loc[names, "predicted_er"])
    earlier = own[pd.to_datetime(own["posted_at"], utc=True) < pd.Timestamp(cutoff)]
    earlier.to_csv(tmp_path / "q_earlier.csv", index=False)
    assert (
        score(
            served,
            (tmp_path / "p.csv", tmp_path / "q_earlier.csv"),
            tmp_path / "trunc.csv",
            "--as-of",
            cutoff,
        )
        == 0
    )
    trunc = pd.read_csv(tmp_path / "trunc.csv").set_index("influencer")
    np.testing.assert_allclose(
        back.loc[names, "predicted_er"], trunc.loc[names, "predicted_er"], rtol=1e-12
    )


def test_embedded_data_is_the_default(served, tmp_path):
    shortlist_file = tmp_path / "shortlist.csv"
    embedded = pd.read_csv(REPO / "data" / "instagram" / "profiles.csv.gz", dtype=str, nrows=3)
    pd.DataFrame({"influencer": [*embedded["influencer"], "not_in_the_data"]}).to_csv(
        shortlist_file, index=False
    )
    out = tmp_path / "ranked.csv"
    assert (
        main(
            [
                "score",
                "--model",
                str(served.model_dir),
                "--shortlist",
                str(shortlist_file),
                "--out",
                str(out),
                "--top",
                "0",
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert len(table) == 4 and (table["status"] == STATUS_NO_PROFILE).sum() == 1


@pytest.mark.parametrize(
    "args, match",
    [
        (["--out", "ranked.pdf"], "unknown output type"),  # output ending we cannot write
        (["--as-of", "someday"], "--as-of: 'someday' is not an ISO 8601 time"),  # unreadable cutoff
        (["--model", "no/such/folder"], "no such model folder"),  # bad model reference
    ],
)
def test_bad_arguments_exit_2(served, files, tmp_path, capsys, args, match):
    base = {"--model": str(served.model_dir), "--out": str(tmp_path / "ranked.csv")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value if flag != "--out" else str(tmp_path / value)
    argv = ["score", "--profiles", str(files[0]), "--posts", str(files[1])] + [
        x for kv in base.items() for x in kv
    ]
    assert main(argv) == EXIT_BAD_INPUT
    assert match in capsys.readouterr().err


def test_contract_break_exits_2_with_the_report(served, files, tmp_path, capsys):
    posts = pd.read_csv(files[1], dtype=str)
    posts.loc[2, "likes"] = "many"
    posts.to_csv(tmp_path / "bad_posts.csv", index=False)
    assert (
        score(served, (files[0], tmp_path / "bad_posts.csv"), tmp_path / "out.csv")
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    assert "bad_posts.csv, column 'likes', rows 3: not a number" in err
    assert not (tmp_path / "out.csv").exists()


def fee_table(files: tuple[Path, Path], folder: Path) -> Path:
    names = pd.read_csv(files[0], dtype=str)["influencer"]
    path = folder / "fees.csv"
    pd.DataFrame(
        {
            "influencer": names,
            "fee": [str(100 * (i + 1)) for i in range(len(names))],
            "currency": "EUR",
        }
    ).to_csv(path, index=False)
    return path


def test_target_engagements_add_p_reach_and_rank_by_it(served, files, tmp_path, capsys):
    out = tmp_path / "ranked.csv"
    assert score(served, files, out, "--target-engagements", "200", "--rank-by", "p_reach") == 0
    table = pd.read_csv(out)
    ranked = table[table["rank"].notna()]
    assert ranked["p_reach"].is_monotonic_decreasing and ranked["p_reach"].between(0, 1).all()
    assert (ranked["target_engagements"] == 200).all()
    # More engagements expected at the median means a better chance of reaching the target.
    both = ranked[["engagements_p50", "p_reach"]].astype(float)
    assert both.corr(method="spearman").iloc[0, 1] > 0.8
    printed = capsys.readouterr().out
    assert (
        "ranked by chance of reaching the target" in printed
        and "p_reach" in printed
        and "expected to reach the target" in printed
    )


def test_fees_give_cost_percentiles_and_a_summary_with_blended_cost(
    served, files, tmp_path, capsys
):
    fees = fee_table(files, tmp_path)
    out = tmp_path / "ranked.csv"
    assert score(served, files, out, "--fees", str(fees)) == 0
    table = pd.read_csv(out)
    ok = table[table["status"].str.startswith("ok")]
    np.testing.assert_allclose(
        ok["cost_per_engagement_p10"], ok["fee"] / ok["engagements_p90"], rtol=1e-9
    )
    np.testing.assert_allclose(
        ok["cost_per_engagement_p90"], ok["fee"] / ok["engagements_p10"], rtol=1e-9
    )
    printed = capsys.readouterr().out
    blended = ok["fee"].sum() / ok["expected_engagements"].sum()
    assert f"blended cost per engagement: {blended:.3g} EUR" in printed
    assert f"total fee: {ok['fee'].sum():,.0f} EUR for {len(ok)} candidates with a fee" in printed


def test_top_n_writes_the_top_n_and_says_how_many_were_left_out(served, files, tmp_path, capsys):
    for name in ("top.csv", "top.xlsx", "top.html"):
        assert score(served, files, tmp_path / name, "--top", "3") == 0
    assert pd.read_csv(tmp_path / "top.csv")["rank"].tolist() == [1, 2, 3]
    assert pd.read_excel(tmp_path / "top.xlsx", sheet_name="ranking")["Rank"].tolist() == [1, 2, 3]
    assert (tmp_path / "top.html").read_text().count("<tr class=") == 3
    printed = capsys.readouterr().out
    assert (
        "wrote 3 rows to" in printed
        and "(the top 3 of 17 candidates; leave out --top for all)" in printed
    )


@pytest.mark.parametrize(
    "args, match",
    [
        (["--rank-by", "cost"], "--rank-by cost needs --fees"),  # nothing to rank by
        (["--rank-by", "p_reach"], "--rank-by p_reach needs --target-engagements"),
        (["--target-engagements", "-5"], "--target-engagements must be a positive number"),
        (["--target-engagements", "nan"], "--target-engagements must be a positive number"),
        (["--top", "-1"], "--top must be 0"),
    ],
)
def test_planner_options_that_cannot_work_exit_2(served, files, tmp_path, capsys, args, match):
    assert score(served, files, tmp_path / "out.csv", *args) == EXIT_BAD_INPUT
    assert match in capsys.readouterr().err and not (tmp_path / "out.csv").exists()


def test_the_champion_is_the_default_and_every_output_names_the_model(
    served, files, tmp_path, capsys
):
    out = tmp_path / "ranked.xlsx"
    argv = [
        "score",
        "--tracking-uri",
        served.tracking_uri,
        "--profiles",
        str(files[0]),
        "--posts",
        str(files[1]),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    registry = __import__("json").loads((served.model_dir / "registry.json").read_text())
    label = (
        f"engagement v{registry['model_version']} @champion "
        f"({served.model_dir.name}, trained on posts"
    )
    assert (
        printed.startswith(f"model {label}") and "chosen as models:/engagement@champion" in printed
    )
    about = dict(pd.read_excel(out, sheet_name="about").to_numpy())
    assert about["model"].startswith(label)
    # A local folder reports what training registered it as.
    assert score(served, files, tmp_path / "r.html", "--top", "0") == 0
    assert f"@{registry['alias']} (at registration)" in (tmp_path / "r.html").read_text()


def test_the_default_champion_without_a_tracking_store_says_how_to_fix_it(
    files, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert (
        main(
            [
                "score",
                "--profiles",
                str(files[0]),
                "--posts",
                str(files[1]),
                "--out",
                str(tmp_path / "x.csv"),
            ]
        )
        == EXIT_BAD_INPUT
    )
    assert (
        "no MLflow tracking store" in capsys.readouterr().err
        and not (tmp_path / "mlflow.db").exists()
    )


def test_stale_data_and_missing_optional_columns_are_said(served, files, tmp_path, capsys):
    profiles = pd.read_csv(files[0], dtype=str).drop(columns=["posts_count"])
    profiles.to_csv(tmp_path / "p.csv", index=False)
    out = tmp_path / "r.html"
    assert (
        score(served, (tmp_path / "p.csv", files[1]), out) == 0
    )  # scored now: the data end in 2019
    printed = capsys.readouterr().out
    assert "warning: Stale data: the newest post is from 2019" in printed
    assert "Columns left out of the data: posts_count (total post count)" in printed
    text = out.read_text()
    assert "Stale data" in text and "posts_count" in text
    assert str(files[0].parent) not in text  # no server paths in what planners read
    newest = pd.to_datetime(pd.read_csv(files[1])["posted_at"], utc=True).max()
    assert (
        score(
            served,
            (tmp_path / "p.csv", files[1]),
            tmp_path / "b.csv",
            "--as-of",
            str((newest + pd.Timedelta(days=1)).date()),
        )
        == 0
    )
    assert "Stale data" not in capsys.readouterr().out


def test_report_says_why_ranges_are_wide(served, files, tmp_path):
    out = tmp_path / "ranked.csv"
    assert score(served, files, out) == 0
    table = pd.read_csv(out)
    cold = table[table["status"] == STATUS_COLD]
    assert cold["range_note"].str.startswith("no post history").all()
    with_history = table[table["status"] == "ok"]
    assert (
        with_history["range_note"].str.contains("earlier post").all()
        and (with_history["history_posts"] > 0).all()
    )


PHONE_PROBE = """<script>window.addEventListener("load", function () {
  var cells = document.querySelector("table.ranking tr").cells, right = 0;
  for (var i = 0; i < cells.length; i++) {
    var r = cells[i].getBoundingClientRect();
    if (r.width > 0) right = Math.max(right, r.right);
  }
  document.title = "probe " + window.innerWidth + " "
    + document.documentElement.scrollWidth + " " + Math.round(right);
});</script>"""


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium not installed (apt-get install -y chromium)"
)
def test_report_fits_a_phone_screen(served, files, tmp_path):
    # A copy with a probe: the page's width and the right edge of the ranking's last visible column.
    out = tmp_path / "report.html"
    assert (
        score(
            served,
            files,
            out,
            "--fees",
            str(fee_table(files, tmp_path)),
            "--target-engagements",
            "300",
        )
        == 0
    )
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", PHONE_PROBE + "</body>"))
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=390,1200",
            "--virtual-time-budget=3000",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    title = done.stdout.split("<title>probe ", 1)[1].split("</title>", 1)[0]
    # Headless Chromium's window is at least ~500 px wide whatever --window-size says; the phone
    # layout (under 700 px) is what is checked, against the width the page really had.
    screen, page_width, table_right = (int(v) for v in title.split())
    assert screen < 700
    assert (
        page_width <= screen and table_right <= screen
    )  # rate, fee and cost on screen without scrolling


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium not installed (apt-get install -y chromium)"
)
def test_report_renders_in_a_browser(served, files, tmp_path):
    from matplotlib.image import imread

    out = tmp_path / "report.html"
    assert score(served, files, out, "--top", "0") == 0
    shot = tmp_path / "report.png"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "report_check.sh"), str(out), str(shot), "1400x1800"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    pixels = imread(shot)
    assert pixels.shape[0] == 1800 and pixels.shape[1] == 1400
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05  # not a blank page
    # The chart (an inline PNG) rendered: many distinct colours, not only text on white.
    assert len(np.unique((rgb * 255).astype(int), axis=0)) > 200


def test_report_check_skips_without_chromium(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash not available")
    env = {"PATH": str(tmp_path)}  # no browser on this PATH
    done = subprocess.run(
        [shutil.which("bash"), str(REPO / "scripts" / "report_check.sh"), str(tmp_path / "x.html")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.returncode == 0 and "skipping" in done.stderr


# ---------------------------------------------------------------------------
# the planned post: --post-type, --sponsored and the shortlist's columns


def plan_table(files: tuple[Path, Path], folder: Path, **columns: list[str]) -> Path:
    names = pd.read_csv(files[0], dtype=str)["influencer"].head(4).tolist()
    path = folder / "plan.csv"
    pd.DataFrame({"influencer": names, **columns}).to_csv(path, index=False)
    return path


def test_the_planned_post_from_the_command_line_is_what_every_forecast_is_for(
    served, files, tmp_path
):
    out = tmp_path / "ranked.csv"
    assert score(served, files, out, "--post-type", "reel", "--sponsored") == 0
    table = pd.read_csv(out)
    scored = table[table["status"].str.startswith("ok")]
    assert scored["planned_post"].str.startswith("video, sponsored").all()


def test_the_shortlist_sets_the_planned_post_and_target_per_candidate(served, files, tmp_path):
    plan = plan_table(
        files,
        tmp_path,
        post_type=["carousel", "", "Video", "image"],
        sponsored=["yes", "no", "", "1"],
        target_engagements=["100", "", "5000", "250"],
    )
    out = tmp_path / "ranked.csv"
    # The command line fills the cells the shortlist leaves empty.
    assert score(served, files, out, "--shortlist", str(plan), "--target-engagements", "999") == 0
    table = pd.read_csv(out).set_index("influencer")
    names = pd.read_csv(plan, dtype=str, keep_default_na=False)["influencer"]
    planned = table.loc[names, "planned_post"].str.split(";").str[0].tolist()
    # Row 2 states nothing: the creator's usual format (image in this data), organic.
    assert planned == [
        "carousel, sponsored",
        "image, organic",
        "video, organic",
        "image, sponsored",
    ]
    assert table.loc[names, "target_engagements"].tolist() == [100, 999, 5000, 250]
    assert table.loc[names, "p_reach"].between(0, 1).all()


@pytest.mark.parametrize(
    "columns, match",
    [
        ({"post_type": ["vidoe", "image", "", "story"]}, "column 'post_type', rows 1, 4"),
        ({"sponsored": ["maybe", "yes", "", ""]}, "column 'sponsored', rows 1: not yes or no"),
        (
            {"target_engagements": ["5,000", "-3", "", "100"]},
            "column 'target_engagements', rows 1, 2",
        ),
    ],
)
def test_a_shortlist_with_a_bad_planned_post_exits_2_naming_the_rows(
    served, files, tmp_path, capsys, columns, match
):
    plan = plan_table(files, tmp_path, **columns)
    out = tmp_path / "out.csv"
    assert score(served, files, out, "--shortlist", str(plan)) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(plan) in err and match in err and not out.exists()


def test_the_dask_engine_refuses_what_it_cannot_add(served, files, tmp_path, capsys):
    for extra in (["--post-type", "video"], ["--target-engagements", "100"], ["--sponsored"]):
        code = score(served, files, tmp_path / "parts", "--engine", "dask", *extra)
        assert code == EXIT_BAD_INPUT
        assert "not available with --engine dask" in capsys.readouterr().err


# --------------------------------------------------------------------------- engage serve


def test_serve_and_the_mlflow_ui_do_not_share_a_default_port():
    from engage.serve_commands import serve

    assert inspect.signature(serve).parameters["port"].default == SERVE_PORT
    makefile = (REPO / "Makefile").read_text()
    ui_port = int(re.search(r"^MLFLOW_UI_PORT \?= (\d+)$", makefile, re.M).group(1))
    assert "--port $(MLFLOW_UI_PORT)" in makefile
    assert ui_port != SERVE_PORT


@pytest.mark.parametrize("args", [["--workers", "0"], ["--timeout", "0"], ["--heavy-queue", "-1"]])
def test_serve_refuses_limits_that_cannot_work(served, args, capsys):
    assert main(["serve", "--model", str(served.model_dir), *args]) == EXIT_BAD_INPUT
    assert "must be" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "70000 is not a port number; use 0 to 65535"),
        (["--port", "-1"], "-1 is not a port number"),
        (["--port", "http"], "'http' is not a port number"),
        (["--timeout", "nan"], "--timeout nan: must be a positive number"),
        (["--max-body-mb", "inf"], "--max-body-mb inf: must be a positive number"),
        (["--timeout", "1e308"], "at most 86400"),
        (["--workers", "100000"], "--workers 100000: at most"),
    ],
)
def test_serve_refuses_options_out_of_range_before_loading(args, message, capsys):
    assert main(["serve", "--model", "no-such-model", *args]) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_serve_refuses_a_port_in_use_before_loading_the_model(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", "no-such-model", "--port", str(port)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"--port {port}: cannot listen there" in err and "no-such-model" not in err
