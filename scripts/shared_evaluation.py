"""Evaluate the model on every real data set in ../shared/data, alone and trained together.

For each set: grouped CV, the time holdout and the forward protocol beside the baselines (what
``engage train`` prints, without saving or logging a model). Then one model trained on the
training creators of every set together, scored on each set's forward creators and by grouped
CV per platform, so a gain on one platform cannot hide a loss on another.

    .venv/bin/python scripts/shared_evaluation.py [--shared ../shared/data] [--out m.json]

Handles are prefixed with the set's name when sets are combined: the same handle can exist on
several platforms. Takes ~15 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.contract import ValidatedData, read_table, validate  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.evaluation import cross_validate, fit_model, time_holdout  # noqa: E402
from training.examples import post_examples  # noqa: E402
from training.forward import (  # noqa: E402
    creator_errors,
    evaluate_forward,
    forward_set,
    forward_split,
    paired_bootstrap,
    subset,
)
from training.metrics import point_metrics  # noqa: E402
from training.train import comparison_table  # noqa: E402

# (profiles, posts) file names of each shared set.
SETS = {
    "instagram": ("influencers.csv", "posts.csv"),
    "tiktok": ("profiles.csv", "posts.csv"),
}


def load(shared: Path, names: list[str], prefix: bool) -> ValidatedData:
    profiles, posts = [], []
    for name in names:
        p, q = (read_table(shared / name / file) for file in SETS[name])
        if prefix:
            p = p.assign(influencer=f"{name}:" + p["influencer"].astype(str))
            q = q.assign(influencer=f"{name}:" + q["influencer"].astype(str))
        profiles.append(p)
        posts.append(q)
    return validate(pd.concat(profiles, ignore_index=True), pd.concat(posts, ignore_index=True))


def short(block: dict) -> list[float]:
    return [round(block["mae_log_er"], 4), round(block["spearman"], 4)]


def paired_cv_gain(
    alone: pd.DataFrame, together: pd.DataFrame, name: str, seed: int
) -> dict[str, float | list[float] | int]:
    """MAE gain of training together over training alone on the same out-of-fold examples
    (matched by creator, cutoff and label), each creator's mean error counted once, with a
    paired bootstrap 90 % interval over creators."""
    keys = ["influencer", "cutoff", "label", "occurrence"]

    def keyed(frame: pd.DataFrame, strip: str) -> pd.DataFrame:
        out = pd.DataFrame(
            {
                "influencer": frame["influencer"].astype(str).str.removeprefix(strip).to_numpy(),
                "cutoff": frame["cutoff"].to_numpy(),
                "label": frame["actual_log_er"].round(9).to_numpy(),
                "error": (frame["model_pred"] - frame["actual_log_er"]).abs().to_numpy(),
            }
        )
        out["occurrence"] = out.groupby(keys[:3]).cumcount()
        return out

    both = keyed(alone, "").merge(keyed(together, f"{name}:"), on=keys, suffixes=("_a", "_t"))
    gain = (both["error_a"] - both["error_t"]).groupby(both["influencer"]).mean()
    return {
        "mae_gain": float(gain.mean()),
        "mae_gain_90ci": paired_bootstrap(gain.to_numpy(), seed),
        "n_examples": int(len(both)),
        "n_creators": int(len(gain)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--out", type=Path, help="write every figure as JSON here (after each set)")
    parser.add_argument("--sets", help="comma-separated sets to evaluate alone (default: all)")
    parser.add_argument(
        "--no-together", action="store_true", help="skip the model trained on every set"
    )
    args = parser.parse_args()
    config = TrainConfig()
    names = [n for n in SETS if (args.shared / n).is_dir()]
    alone = names if not args.sets else [n for n in names if n in args.sets.split(",")]
    results: dict[str, dict] = {}
    alone_errors: dict[str, pd.Series] = {}
    alone_oof: dict[str, pd.DataFrame] = {}
    for name in alone:
        data = load(args.shared, [name], prefix=False)
        examples = post_examples(data.profiles, data.posts)
        metrics, oof = cross_validate(examples, config, print)
        alone_oof[name] = oof
        metrics["time_holdout"] = time_holdout(examples, config, print)[0]
        # The forward protocol by its parts, keeping the model: the model trained on every set
        # is compared with it creator by creator below.
        split = forward_split(data.posts, config.seed)
        train = subset(data, split.train)
        print(f"forward protocol: fitting on {len(split.train)} creators")
        forward_model = fit_model(post_examples(train.profiles, train.posts), config)
        metrics["forward"] = evaluate_forward(forward_model, data, split.evaluate, config.seed)
        alone_errors[name] = creator_errors(forward_model, forward_set(data, split.evaluate))
        print(f"\n=== {name} ===\n{comparison_table(metrics)}\n")
        for label, block in (("grouped CV", metrics), ("time holdout", metrics["time_holdout"])):
            reach = block["reach_calibration"]
            bins = ", ".join(f"{b['p_reach']:.2f}->{b['reached']:.2f}" for b in reach["bins"])
            tiers = ", ".join(
                f"{t} {v['calibration_error']:.3f}" for t, v in reach["by_tier"].items()
            )
            print(
                f"p_reach calibration, {label} (targets {reach['targets']}): "
                f"error {reach['calibration_error']:.3f}, Brier "
                f"{reach['brier']:.3f}; by tenths {bins}; by tier {tiers}"
            )
        results[name] = metrics
        if args.out:
            args.out.write_text(json.dumps(results, indent=2, default=str))
    if args.no_together:
        return 0

    # One model for every platform.
    together = load(args.shared, names, prefix=True)
    splits = {}
    for name in names:
        posts = together.posts[together.posts["influencer"].str.startswith(f"{name}:")]
        splits[name] = forward_split(
            posts.assign(influencer=posts["influencer"].str[len(name) + 1 :]), config.seed
        )
    train_keys = np.concatenate([f"{n}:" + splits[n].train.astype(str) for n in names])
    train = subset(together, train_keys)
    model = fit_model(post_examples(train.profiles, train.posts), config)
    combined: dict[str, dict] = {}
    for name in names:
        own = subset(
            together,
            together.profiles["influencer"][
                together.profiles["influencer"].str.startswith(f"{name}:")
            ].to_numpy(),
        )
        forward = evaluate_forward(
            model, own, f"{name}:" + splits[name].evaluate.astype(str), config.seed
        )
        combined[name] = {"forward": forward}
        if name in alone_errors:
            # Same creators, same history and label: the gain of training together, paired.
            own_creators = f"{name}:" + splits[name].evaluate.astype(str)
            together_errors = creator_errors(model, forward_set(own, own_creators))
            together_errors.index = together_errors.index.str[len(name) + 1 :]
            gain = alone_errors[name] - together_errors.reindex(alone_errors[name].index)
            combined[name]["forward_gain_over_alone"] = {
                "mae_gain": float(gain.mean()),
                "mae_gain_90ci": paired_bootstrap(gain.to_numpy(), config.seed),
                "n_creators": int(gain.notna().sum()),
            }
    examples = post_examples(together.profiles, together.posts)
    _, oof = cross_validate(examples, config, print)
    platform_of = examples.base["influencer"].str.split(":").str[0].to_numpy()
    for name in names:
        for label, mask in (
            ("with_history", examples.has_history),
            ("cold_start", ~examples.has_history),
        ):
            rows = (platform_of == name) & mask
            combined[name][f"cv_{label}"] = point_metrics(
                oof["actual_log_er"].to_numpy()[rows],
                oof["model_pred"].to_numpy()[rows],
                oof["category"].astype(str).to_numpy()[rows],
            )
            if name in alone_oof:
                combined[name][f"cv_{label}_gain_over_alone"] = paired_cv_gain(
                    alone_oof[name], oof[rows], name, config.seed
                )
    results["trained_together"] = combined

    print("\n=== trained on every set together vs on one set alone (MAE, Spearman) ===")
    for name in names:
        if name not in results:
            continue
        own = results[name]
        print(
            f"{name} forward: together {short(combined[name]['forward']['model'])}, "
            f"alone {short(own['forward']['model'])}"
        )
        paired = combined[name].get("forward_gain_over_alone")
        if paired:
            lo, hi = paired["mae_gain_90ci"]
            print(
                f"{name} forward, same {paired['n_creators']} creators: MAE gain of training "
                f"together {paired['mae_gain']:+.3f} (paired bootstrap 90 % interval "
                f"{lo:+.3f} .. {hi:+.3f})"
            )
        for label in ("with_history", "cold_start"):
            paired_cv = combined[name].get(f"cv_{label}_gain_over_alone") or {}
            ci = paired_cv.get("mae_gain_90ci") or [float("nan")] * 2
            print(
                f"{name} CV {label}: together {short(combined[name][f'cv_{label}'])}, "
                f"alone {short(own['subsets'][label]['model'])}; paired MAE gain of training "
                f"together {paired_cv.get('mae_gain', float('nan')):+.3f} "
                f"(90 % interval {ci[0]:+.3f} .. {ci[1]:+.3f}, "
                f"{paired_cv.get('n_creators', 0)} creators)"
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
