"""``engage validate``, ``features`` and ``synth`` (engage/data_commands.py), called in
process through ``engage.cli.main``."""

from __future__ import annotations

import pandas as pd
import pytest

from engage.cli import EXIT_BAD_INPUT, main
from features.contract import load_and_validate
from tests.conftest import raw_posts_frame, raw_profiles_frame


def test_cli_synth_writes_valid_parquet(tmp_path, capsys):
    out_dir = tmp_path / "synth"
    assert main(["synth", "--influencers", "200", "--out-dir", str(out_dir), "--seed", "1"]) == 0
    assert "wrote 200 profiles" in capsys.readouterr().out
    data = load_and_validate(out_dir / "profiles.parquet", out_dir / "posts.parquet")
    assert len(data.profiles) == 200
    assert not data.report.fatal


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
