"""The shared options (engage/options.py): choices from the libraries, numbers in range."""

from __future__ import annotations

from typing import get_args

import pytest

from engage.cli import EXIT_BAD_INPUT, main


def test_the_choices_are_the_libraries_own():
    from engage.options import Engine
    from engage.serve_commands import PostType, RankBy
    from features.datasets import ENGINES
    from serving.planner import POST_TYPES, RANK_BY

    assert get_args(get_args(Engine)[0]) == ENGINES
    assert set(get_args(RankBy)) == set(RANK_BY)
    assert set(get_args(PostType)) == set(POST_TYPES)


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
