"""Training speed: the engage pipeline's fit beside raw ``lightgbm.train`` on the same matrix.

For each size (synthetic examples: every post a target, the first ``n`` examples kept):

* ``features``: point-in-time base features for all examples (reported, not in the ratio);
* ``engage fit``: EngagementModel.fit on the base features: learned feature steps (priors,
  hashtag niche and topics, categories) + LightGBM, a fixed number of rounds;
* ``raw lightgbm``: lightgbm.train with the same parameters and rounds on the finished matrix.

The ratio engage/raw is the pipeline's overhead (target <= 1.3x; 1M examples under 2 minutes).
Synthetic data is for speed only: the metrics of models trained here mean nothing.

Usage: python benchmarks/training.py [--sizes 100000 1000000] [--rounds 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, this folder is first on sys.path and benchmarks/features.py would shadow
# the features package: put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402

from engage.cli import embedded_posts, embedded_profiles  # noqa: E402
from features.contract import load_and_validate, validate  # noqa: E402
from features.pipeline import EngagementModel  # noqa: E402
from features.synth import fit_synth_params, generate  # noqa: E402
from training.config import DEFAULT_LGBM_PARAMS  # noqa: E402
from training.examples import post_examples  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench(n_examples: int, rounds: int, seed: int) -> dict[str, float]:
    reference = load_and_validate(embedded_profiles(), embedded_posts())
    params = fit_synth_params(reference.profiles, reference.posts)
    # ~1/3 of synthetic profiles have no posts (as in the real data): draw enough to reach n.
    profiles, posts = generate(
        params, n_influencers=int(n_examples * 1.6), seed=seed, posts_per_influencer=3.0
    )
    data = validate(profiles, posts)
    examples, t_features = timed(lambda: post_examples(data.profiles, data.posts))
    take = np.arange(min(n_examples, len(examples)))
    ex = examples.subset(np.isin(np.arange(len(examples)), take))

    lgb_params = {
        **DEFAULT_LGBM_PARAMS,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
    }
    model, t_engage = timed(
        lambda: EngagementModel(DEFAULT_LGBM_PARAMS, seed=seed).fit(
            ex.base, ex.label, num_boost_round=rounds
        )
    )
    matrix = model.booster_matrix(ex.base)

    def raw() -> lgb.Booster:
        # The same start as engage's booster: its init_score is the shrunk own level.
        start = model.baseline_log(matrix)
        return lgb.train(
            lgb_params,
            lgb.Dataset(
                matrix,
                label=ex.label,
                init_score=start,
                categorical_feature=model.categorical_columns(),
            ),
            num_boost_round=rounds,
        )

    booster, t_raw = timed(raw)
    same = np.allclose(booster.predict(matrix), model.booster_.predict(matrix))
    return {
        "examples": len(ex),
        "posts": len(data.posts),
        "features_s": t_features,
        "engage_fit_s": t_engage,
        "raw_lgbm_s": t_raw,
        "ratio": t_engage / t_raw,
        "same_predictions": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"{'examples':>10s} {'posts':>10s} {'features s':>11s} "
        f"{'engage fit s':>13s} {'raw lgbm s':>11s} {'ratio':>7s}  same predictions"
    )
    for size in args.sizes:
        r = bench(size, args.rounds, args.seed)
        print(
            f"{r['examples']:>10d} {r['posts']:>10d} {r['features_s']:>11.1f} "
            f"{r['engage_fit_s']:>13.1f} {r['raw_lgbm_s']:>11.1f} "
            f"{r['ratio']:>7.2f}  {r['same_predictions']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
