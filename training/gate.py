"""The champion gate: a model takes the ``champion`` alias only by beating it on data neither saw.

Scoring the champion on examples it was trained on flatters it (or, for a model trained on the
same table, makes the comparison meaningless). Every saved model therefore carries the hashes of
the creators it was trained on (``training_creators.npy`` in its signed folder, written by
:func:`save_training_creators`), and the gate compares on examples of creators the champion never
saw, and for ``engage promote`` the candidate never saw either. With too few such creators it
says it cannot compare instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

CREATORS_FILE = "training_creators.npy"
# Fewer unseen creators than this: MAE differences are noise, the gate does not decide.
MIN_GATE_CREATORS = 20


def creator_hashes(influencers: pd.Series | np.ndarray) -> np.ndarray:
    """Stable 64-bit hashes of influencer keys (pandas'
    SipHash with its fixed key), sorted, unique."""
    keys = np.asarray(pd.Series(influencers).astype(str).to_numpy(), dtype=object)
    return np.unique(pd.util.hash_array(keys))


def save_training_creators(folder: Path, influencers: pd.Series) -> None:
    """Record which creators a model was trained on (hashes, not names) in its folder."""
    np.save(Path(folder) / CREATORS_FILE, creator_hashes(influencers), allow_pickle=False)


def training_creators(folder: Path) -> np.ndarray | None:
    """The creator hashes a saved model records, or None for a model saved before they were kept.

    Call on a verified folder only (:func:`features.artifact.load_artifact` checks every file).
    """
    path = Path(folder) / CREATORS_FILE
    return np.load(path, allow_pickle=False) if path.is_file() else None


@dataclass
class GateResult:
    """The comparison of a candidate with the champion on examples of unseen creators.

    ``compared`` is False when it could not be made; ``reason`` says why, or what it found.
    """

    compared: bool
    wins: bool
    reason: str
    candidate_mae: float = float("nan")
    champion_mae: float = float("nan")
    n_examples: int = 0
    n_creators: int = 0


def compare_on_unseen(
    candidate_mae: Callable[[np.ndarray], float],
    champion_mae: Callable[[np.ndarray], float],
    influencers: pd.Series,
    champion_creators: np.ndarray | None,
    champion_name: str,
    candidate_creators: np.ndarray | None = None,
) -> GateResult:
    """Compare MAE (log ER) on the examples whose creator the champion (and, if given, the
    candidate) was not trained on.

    ``candidate_mae(mask)`` and ``champion_mae(mask)`` give each model's MAE on the examples
    selected by ``mask`` (rows of ``influencers``); lower is better.
    """
    if champion_creators is None:
        return GateResult(
            False,
            False,
            f"cannot compare with {champion_name}: it does not record "
            "which creators it was trained on (saved before the gate did)",
        )
    hashes = pd.util.hash_array(
        np.asarray(pd.Series(influencers).astype(str).to_numpy(), dtype=object)
    )
    unseen = ~np.isin(hashes, champion_creators)
    if candidate_creators is not None:
        unseen &= ~np.isin(hashes, candidate_creators)
    n_creators = int(pd.Series(hashes[unseen]).nunique())
    total = int(pd.Series(hashes).nunique())
    if n_creators < MIN_GATE_CREATORS:
        who = f"{champion_name} and this model" if candidate_creators is not None else champion_name
        return GateResult(
            False,
            False,
            f"cannot compare with {champion_name}: only {n_creators} of the {total} "
            f"creators here are unseen by {who} (at least {MIN_GATE_CREATORS} needed)",
            n_creators=n_creators,
        )
    ours, theirs = float(candidate_mae(unseen)), float(champion_mae(unseen))
    n = int(unseen.sum())
    if not np.isfinite(theirs):
        return GateResult(
            False,
            False,
            f"cannot compare with {champion_name}: it gives no finite predictions here",
            n_examples=n,
            n_creators=n_creators,
        )
    if candidate_creators is None:
        where = f"on {n} examples of {n_creators} creators {champion_name} did not train on"
    else:
        where = f"on {n} examples of {n_creators} creators neither model trained on"
    verdict = "beats" if ours < theirs else "does not beat"
    return GateResult(
        True,
        ours < theirs,
        f"MAE {ours:.4f} {verdict} {champion_name} ({theirs:.4f}) {where}",
        ours,
        theirs,
        n,
        n_creators,
    )
