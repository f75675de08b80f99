"""The champion gate (training/gate.py): compared on creators the champion did not see."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.gate import MIN_GATE_CREATORS, compare_on_unseen, creator_hashes

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the gate


def _gate_case(n_seen: int = 50, n_unseen: int = 50):
    """A champion that memorised its training creators (perfect on them, poor elsewhere), and a
    candidate that is fair everywhere: on all rows the champion looks better."""
    seen = [f"seen{i}" for i in range(n_seen)]
    unseen = [f"new{i}" for i in range(n_unseen)]
    influencers = pd.Series(seen + unseen)
    label = np.zeros(len(influencers))
    champion_pred = np.where(influencers.str.startswith("seen"), 0.0, 1.0)
    candidate_pred = np.full(len(influencers), 0.6)
    return influencers, label, champion_pred, candidate_pred, creator_hashes(pd.Series(seen))


def test_the_gate_compares_on_creators_the_champion_did_not_train_on():
    influencers, label, champion_pred, candidate_pred, champion_creators = _gate_case()
    # On every row, the champion's own creators included, it would look better (0.5 vs 0.6).
    assert np.mean(np.abs(champion_pred - label)) < np.mean(np.abs(candidate_pred - label))
    result = compare_on_unseen(
        lambda m: float(np.mean(np.abs(candidate_pred[m] - label[m]))),
        lambda m: float(np.mean(np.abs(champion_pred[m] - label[m]))),
        influencers,
        champion_creators,
        "champion v1",
    )
    assert result.compared and result.wins
    assert (result.n_creators, result.n_examples) == (50, 50)
    assert result.candidate_mae == pytest.approx(0.6) and result.champion_mae == pytest.approx(1.0)
    assert "on 50 examples of 50 creators champion v1 did not train on" in result.reason


@pytest.mark.parametrize(
    ("n_unseen", "record", "match"),
    [
        (
            MIN_GATE_CREATORS - 1,
            True,
            rf"only {MIN_GATE_CREATORS - 1} of the \d+ creators here are unseen by champion v1",
        ),  # champion trained on nearly all
        (
            50,
            False,
            "does not record which creators it was trained on",
        ),  # a champion saved before the gate
    ],
)
def test_the_gate_says_when_it_cannot_compare(n_unseen, record, match):
    influencers, label, champion_pred, candidate_pred, champion_creators = _gate_case(
        n_unseen=n_unseen
    )
    result = compare_on_unseen(
        lambda m: 0.1,
        lambda m: 0.9,
        influencers,
        champion_creators if record else None,
        "champion v1",
    )
    assert not result.compared and not result.wins
    assert re.search(match, result.reason)


def test_creator_hashes_are_stable_across_processes():
    # Saved in one process, compared in another: the hash must not depend on Python's hash seed.
    import os
    import subprocess
    import sys

    code = (
        "import pandas as pd; from training.gate import creator_hashes; "
        "print(list(creator_hashes(pd.Series(['ana', 'ben']))))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1 and runs == {str(list(creator_hashes(pd.Series(["ana", "ben"])))) + "\n"}
