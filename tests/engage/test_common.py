"""The checks every command shares (engage/common.py): an output is never an input."""

from __future__ import annotations

import pytest

from engage.cli import EXIT_BAD_INPUT, main


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
