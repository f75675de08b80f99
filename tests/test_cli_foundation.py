"""The validate and features commands, called in-process through ``engage.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from engage.cli import EXIT_BAD_INPUT, main

from .conftest import raw_posts_frame, raw_profiles_frame


@pytest.fixture
def tiny_files(tmp_path) -> tuple[Path, Path]:
    """The tiny data set as CSV files, plus one orphan post (row 9) for an unknown influencer."""
    posts = raw_posts_frame()
    orphan = posts.iloc[[0]].assign(influencer="ghost", post_id="g1")
    profiles_path, posts_path = tmp_path / "profiles.csv", tmp_path / "posts.csv"
    raw_profiles_frame().to_csv(profiles_path, index=False)
    pd.concat([posts, orphan], ignore_index=True).to_csv(posts_path, index=False)
    return profiles_path, posts_path


def test_validate_embedded_data(capsys):
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "profiles: " in out and "rows read" in out
    assert "posts: " in out
    assert "fatal" not in out


def test_validate_bad_file_exits_2_naming_file_column_rows(tmp_path, capsys):
    profiles = raw_profiles_frame()
    profiles.loc[1, "followers"] = "lots"
    profiles.to_csv(tmp_path / "bad_profiles.csv", index=False)
    raw_posts_frame().to_csv(tmp_path / "posts.csv", index=False)
    code = main(
        [
            "validate",
            "--profiles",
            str(tmp_path / "bad_profiles.csv"),
            "--posts",
            str(tmp_path / "posts.csv"),
        ]
    )
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "bad_profiles.csv, column 'followers', rows 2: not a number" in err


def test_validate_unreadable_file_exits_2(tmp_path, capsys):
    (tmp_path / "profiles.csv").write_bytes(b"")
    code = main(["validate", "--profiles", str(tmp_path / "profiles.csv")])
    assert code == EXIT_BAD_INPUT
    assert "profiles.csv: the file is empty" in capsys.readouterr().err


def test_validate_writes_rejects_with_reasons(tiny_files, tmp_path, capsys):
    profiles, posts = tiny_files
    rejects_path = tmp_path / "out" / "rejects.csv"
    assert (
        main(
            [
                "validate",
                "--profiles",
                str(profiles),
                "--posts",
                str(posts),
                "--rejects",
                str(rejects_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "posts: 9 rows read, 8 kept" in out
    assert "column 'influencer', rows 9: posts whose influencer has no profile" in out
    rejects = pd.read_csv(rejects_path)
    assert rejects[["table", "row", "reject_reason", "influencer", "post_id"]].values.tolist() == [
        ["posts", 9, "no profile for this influencer", "ghost", "g1"]
    ]


def test_features_one_row_per_profile(tiny_files, tmp_path, capsys):
    profiles, posts = tiny_files
    out_path = tmp_path / "features.csv"
    assert (
        main(
            [
                "features",
                "--profiles",
                str(profiles),
                "--posts",
                str(posts),
                "--out",
                str(out_path),
                "--as-of",
                "2020-01-10",
            ]
        )
        == 0
    )
    table = pd.read_csv(out_path)
    assert table.columns[0] == "influencer"
    assert table["influencer"].tolist() == ["ana", "ben", "cara"]
    assert table["n_history_posts"].tolist() == [
        4,
        2,
        0,
    ]  # a5 at the cutoff and a6 after it excluded
    assert "hashtag_doc" not in table
    assert pd.to_datetime(table["cutoff"]).eq(pd.Timestamp("2020-01-10", tz="UTC")).all()
    assert "wrote 3 rows" in capsys.readouterr().out


def test_features_as_of_moves_the_cutoff(tiny_files, tmp_path):
    profiles, posts = tiny_files
    out_path = tmp_path / "features.parquet"
    args = ["features", "--profiles", str(profiles), "--posts", str(posts), "--out", str(out_path)]
    assert main([*args, "--as-of", "2020-01-04T00:00:00+00:00", "--keep-hashtag-docs"]) == 0
    table = pd.read_parquet(out_path).set_index("influencer")
    assert table.loc["ana", "n_history_posts"] == 2
    assert table.loc["ana", "hashtag_doc"] == "x y x"


def test_features_on_embedded_data(tmp_path, embedded_paths):
    out_path = tmp_path / "features.csv"
    assert main(["features", "--out", str(out_path), "--as-of", "2019-06-01"]) == 0
    table = pd.read_csv(out_path)
    profiles = pd.read_csv(embedded_paths[0], usecols=["influencer"])
    assert table.columns[0] == "influencer"
    assert len(table) == len(profiles)
    assert table["influencer"].is_unique


def test_features_profiles_only(tiny_files, tmp_path):
    # Candidates with no post history: profile features only.
    profiles, _ = tiny_files
    out_path = tmp_path / "features.csv"
    assert main(["features", "--profiles", str(profiles), "--out", str(out_path)]) == 0
    assert pd.read_csv(out_path)["n_history_posts"].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # --posts alone would silently pair them with the embedded profiles
        (["--posts", "posts.csv"], "--posts was given without --profiles"),
        # an --as-of that is not a time, or not written in ISO 8601
        (["--as-of", "next tuesday"], "--as-of: 'next tuesday' is not an ISO 8601 time"),
        (["--as-of", "now"], "--as-of: 'now' is not an ISO 8601 time"),
        (["--as-of", "01/02/2020"], "--as-of: '01/02/2020' is not an ISO 8601 time"),
        (["--as-of", "2020-13-01"], "--as-of: '2020-13-01' is not a valid time"),
        # out of range: before any post, after pandas' last timestamp, in the future
        (["--as-of", "1000-01-01"], "--as-of 1000-01-01: before 2000-01-01"),
        (["--as-of", "2263-01-01"], "--as-of 2263-01-01: in the future"),
        (["--as-of", "2099-01-01T00:00:00Z"], "in the future"),
        # an output that cannot be written, told before any work
        (["--out", "{tmp}/profiles.csv/f.csv"], "profiles.csv is a file, not a folder"),
        (["--out", "{tmp}"], "unknown output type; use .csv, .csv.gz, .parquet"),
        (["--out", "{tmp}/f.xlsx"], "--out {tmp}/f.xlsx: unknown output type"),
        (
            ["--rejects", "{tmp}/posts.csv/r.csv"],
            "--rejects {tmp}/posts.csv/r.csv: {tmp}/posts.csv is a file",
        ),
    ],
)
def test_features_usage_errors_exit_2(tiny_files, tmp_path, capsys, extra, message):
    profiles, posts = tiny_files
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    args = ["features", *([] if "--out" in extra else ["--out", str(tmp_path / "f.csv")]), *extra]
    if "--posts" not in extra:
        args += ["--profiles", str(profiles), "--posts", str(posts)]
    assert main(args) == EXIT_BAD_INPUT
    assert message.replace("{tmp}", str(tmp_path)) in capsys.readouterr().err
    assert not (tmp_path / "f.csv").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # the parser refuses numbers out of range with exit 2 and the option's name
        (
            ["synth", "--influencers", "0", "--out-dir", "x"],
            "'--influencers': 0 is too small; use 1 or more",
        ),
        (["train", "--folds", "1"], "'--folds': 1 is too small; use 2 or more"),
        (["train", "--folds", "two"], "'--folds': 'two' is not a whole number"),
        (
            ["train", "--targets-per-influencer", "-1"],
            "'--targets-per-influencer': -1 is too small; use 0 or more",
        ),
        (["train", "--tune", "-3"], "'--tune': -3 is too small"),
        (["train", "--seed", "-1"], "'--seed': -1 is too small; use 0 or more"),
        (["evaluate", "--model", "m", "--seed", str(2**32)], "'--seed': 4294967296 is too large"),
        (["synth", "--influencers", "5", "--out-dir", "x", "--seed", "x"], "not a whole number"),
        (
            ["features", "--engine", "dask", "--partitions", "0", "--out", "x"],
            "'--partitions': 0 is too small",
        ),
    ],
)
def test_numbers_out_of_range_exit_2_naming_the_option(argv, message, capsys):
    assert main(argv) == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["validate", "--rejects", "{profiles}"], "--rejects {profiles}: is the --profiles input"),
        (["features", "--out", "{posts}"], "--out {posts}: is the --posts input"),
        (
            ["features", "--out", "{folder}/f.csv", "--rejects", "{folder}/./f.csv"],
            "is also --out; one would replace the other",
        ),
        (["train", "--metrics-out", "{profiles}"], "--metrics-out {profiles}: is the --profiles"),
    ],
)
def test_an_output_that_is_an_input_is_refused_before_any_work(
    tiny_files, tmp_path, capsys, command, message
):
    """Nothing is lost: `--rejects profiles.csv` used to replace the input with its rejects."""
    profiles, posts = tiny_files
    before = profiles.read_bytes(), posts.read_bytes()
    names = {"profiles": profiles, "posts": posts, "folder": tmp_path}
    argv = [part.format(**names) for part in command]
    argv += ["--profiles", str(profiles), "--posts", str(posts)]
    assert main(argv) == EXIT_BAD_INPUT
    assert message.format(**names) in capsys.readouterr().err
    assert (profiles.read_bytes(), posts.read_bytes()) == before


def test_the_embedded_data_cannot_be_an_output(capsys):
    from engage.cli import embedded_posts

    before = embedded_posts().stat().st_mtime_ns
    assert main(["features", "--out", str(embedded_posts())]) == EXIT_BAD_INPUT
    assert "is the embedded data" in capsys.readouterr().err
    assert embedded_posts().stat().st_mtime_ns == before


def test_truncated_gzip_and_repeated_columns_exit_2(tiny_files, tmp_path, capsys):
    import gzip

    profiles, posts = tiny_files
    whole = gzip.compress(posts.read_bytes() * 200)
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    assert (
        main(["validate", "--profiles", str(profiles), "--posts", str(tmp_path / "cut.csv.gz")])
        == EXIT_BAD_INPUT
    )
    assert "cut.csv.gz: the compressed file is truncated or corrupt" in capsys.readouterr().err
    text = posts.read_text().splitlines()
    (tmp_path / "twice.csv").write_text(
        "\n".join([text[0].replace("comments", " Likes"), *text[1:]]) + "\n"
    )
    assert (
        main(["validate", "--profiles", str(profiles), "--posts", str(tmp_path / "twice.csv")])
        == EXIT_BAD_INPUT
    )
    assert (
        "twice.csv: the header names one column more than once ('likes' and ' Likes'"
        in capsys.readouterr().err
    )


def test_a_file_that_cannot_be_written_exits_2(tiny_files, tmp_path, capsys, monkeypatch):
    # Past the up-front checks (disk full, permissions changed mid-run): exit 2 with the reason.
    import engage.data_commands

    profiles, posts = tiny_files

    def full_disk(frame, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(engage.data_commands, "write_table", full_disk)
    code = main(
        [
            "features",
            "--profiles",
            str(profiles),
            "--posts",
            str(posts),
            "--out",
            str(tmp_path / "f.csv"),
        ]
    )
    assert code == EXIT_BAD_INPUT
    assert (
        "cannot read or write a file: [Errno 28] No space left on device" in capsys.readouterr().err
    )
