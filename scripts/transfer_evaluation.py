"""Forecasts for creators unlike the training ones: the forward protocol across populations.

The data sets kept back for rerunning are other populations (another market, another year), and
the model `make train` builds is applied to them as saved. This script asks the same question of
the shared data, each time with a model trained on one group and every creator of another group
forecast forward (history = first 70 % of posts, label = median rate of the rest), beside
persistence:

* ``population``: shared TikTok split by who the creators are (TikTok's top-250 against the
  suggested accounts; the bigger against the smaller half by followers), each way;
* ``short-history``: the TikTok training creators cut to their first 8 (or 4) posts, forecasting
  creators with all of theirs (the embedded model sees at most 8 posts per creator);
* ``platform``: a model of one shared set forecasting the other set's creators (a platform the
  model never saw: the creators' own level without the trees' corrections).

    .venv/bin/python scripts/transfer_evaluation.py [--shared ../shared/data] [--only population]

Seed 0; about a minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.contract import ValidatedData  # noqa: E402
from scripts.shared_evaluation import load  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.evaluation import fit_model  # noqa: E402
from training.examples import post_examples  # noqa: E402
from training.forward import (  # noqa: E402
    evaluate_forward,
    forward_split,
    long_creators,
    subset,
)

SEED = 0


def first_posts(data: ValidatedData, keep: int) -> ValidatedData:
    """Each creator's first ``keep`` posts (in time) only."""
    posts = data.posts.sort_values(["influencer", "posted_at", "post_id"], kind="stable")
    posts = posts[posts.groupby("influencer").cumcount() < keep].reset_index(drop=True)
    return ValidatedData(data.profiles, posts, data.report)


def forecast(train: ValidatedData, data: ValidatedData, creators: np.ndarray, label: str) -> None:
    """Train on ``train``, forecast ``creators`` of ``data`` forward, print beside persistence."""
    model = fit_model(post_examples(train.profiles, train.posts), TrainConfig(seed=SEED))
    evaluated = np.intersect1d(creators, long_creators(data.posts))
    report = evaluate_forward(model, data, evaluated, SEED)
    m, p = report["model"], report["persistence"]
    lo, hi = report["mae_gain_90ci"]
    print(
        f"{label} ({report['n_creators']} creators): model {m['mae_log_er']:.3f} / "
        f"{m['spearman']:.3f}, persistence {p['mae_log_er']:.3f} / {p['spearman']:.3f}, "
        f"gain {report['mae_gain']:+.3f} ({lo:+.3f} .. {hi:+.3f}), "
        f"coverage {m['coverage_80_mature_posts']:.3f}",
        flush=True,
    )


def population(shared: Path) -> None:
    data = load(shared, ["tiktok"], prefix=False)
    raw = pd.read_csv(shared / "tiktok" / "profiles.csv", dtype=str)
    # Genres are known for TikTok's top-250 list only (the data's README).
    top = set(raw.loc[raw["category"].notna(), "influencer"])
    names = data.profiles["influencer"]
    followers = data.profiles["followers"].to_numpy(dtype="float64")
    groups = {
        "top-250": names.isin(top).to_numpy(),
        "suggested accounts": ~names.isin(top).to_numpy(),
        "bigger half": followers >= np.median(followers),
        "smaller half": followers < np.median(followers),
    }
    for a, b in (
        ("suggested accounts", "top-250"),
        ("top-250", "suggested accounts"),
        ("smaller half", "bigger half"),
        ("bigger half", "smaller half"),
    ):
        train = subset(data, names[groups[a]].to_numpy())
        forecast(train, data, names[groups[b]].to_numpy(), f"TikTok {a} -> {b}")


def short_history(shared: Path) -> None:
    data = load(shared, ["tiktok"], prefix=False)
    split = forward_split(data.posts, SEED)
    for keep in (8, 4):
        train = first_posts(subset(data, split.train), keep)
        forecast(train, data, split.evaluate, f"TikTok trained on first {keep} posts per creator")


def platform(shared: Path) -> None:
    sets = {name: load(shared, [name], prefix=False) for name in ("instagram", "tiktok")}
    for a, b in (("instagram", "tiktok"), ("tiktok", "instagram")):
        target = sets[b]
        forecast(sets[a], target, long_creators(target.posts), f"{a} model -> {b} creators")


STUDIES = {"population": population, "short-history": short_history, "platform": platform}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--only", choices=sorted(STUDIES), help="run one study (default: all)")
    args = parser.parse_args()
    for name, study in STUDIES.items():
        if args.only in (None, name):
            study(args.shared)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
