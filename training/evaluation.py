"""Fitting the model with honest splits, and evaluating it beside the baselines.

Splits are always by influencer (no one on both sides). Within any training set, a share of
influencers is held out to calibrate the interval, and a share of the rest for early stopping;
the booster is then refitted on everything but the calibration rows with the chosen number of
rounds. Evaluation runs grouped K-fold cross-validation and a time-ordered holdout, and reports
every metric for the model and each baseline on identical rows, overall and for influencers
with history and cold-start ones separately.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from features.pipeline import EngagementModel
from training.baselines import Baseline, all_baselines
from training.config import TrainConfig
from training.examples import ExampleSet, example_weights
from training.fitting import creator_folds, influencer_holdout, new_model
from training.metrics import (
    all_metrics,
    coverage_by_spread,
    creator_coverage_interval,
    reach_calibration,
    reach_targets,
)
from training.tuning import tune_params

Progress = Callable[[str], None]


@runtime_checkable
class StepProgress(Protocol):
    """A progress hook that also counts steps: ``step(task, done, total)`` after each one of a
    long loop (the ``engage`` command draws a bar per task; :class:`training.train.
    ProgressPrinter` hands them on to its ``steps``). Training never draws anything itself."""

    def __call__(self, message: str) -> None: ...

    def step(self, task: str, done: int, total: int) -> None: ...


def report_step(progress: Progress, task: str, done: int, total: int) -> None:
    """``progress.step(task, done, total)`` if the hook counts steps; a plain one is left be."""
    if isinstance(progress, StepProgress):
        progress.step(task, done, total)


def _quiet(_: str) -> None:
    return None


# The loops report_step counts, by the name a progress bar shows.
CV_FOLDS = "cross-validation folds"
BASELINE_FOLDS = "baseline folds"
DASK_EXAMPLES = "Dask buckets: examples"


def boosting_rounds(
    train: ExampleSet, valid: np.ndarray, config: TrainConfig, params: dict[str, Any]
) -> tuple[int, dict[str, int]]:
    """Rounds for the final refit: early stopping on the ``valid`` rows of ``train``, plus 10 %
    because the refit on all of ``train`` has a bit more data. Returns the shared trees' rounds
    and each platform stage's (none when ``train`` holds one platform)."""
    probe = new_model(config, params).fit(
        train.base[~valid].reset_index(drop=True),
        train.label[~valid],
        sample_weight=example_weights(train.base[~valid]),
        valid=(train.base[valid].reset_index(drop=True), train.label[valid]),
        valid_weight=example_weights(train.base[valid]),
        num_boost_round=config.num_boost_round,
        early_stopping_rounds=config.early_stopping_rounds,
    )
    stages = {name: round(n * 1.1) for name, n in probe.platform_rounds_.items() if n >= 1}
    return max(10, int(round(probe.best_iteration_ * 1.1))), stages


# How far ahead the interval must hold, as a share of the history it is built on: a forecast
# from n posts is scored against the next post and the creator's posts up to 0.43 n further
# on (the forward protocol's last 30 % of posts after a 70 % history).
HORIZON_SHARE = 0.43


def _creator_time_order(examples: ExampleSet) -> pd.DataFrame:
    """Examples sorted by creator, then target time (stable); the index holds their rows."""
    return pd.DataFrame(
        {"influencer": examples.base["influencer"].to_numpy(), "t": examples.target_time.to_numpy()}
    ).sort_values(["influencer", "t"], kind="stable")


def horizon_pairs(examples: ExampleSet) -> tuple[np.ndarray, np.ndarray]:
    """(forecast rows, target rows) for calibration: each example's forecast against its own
    target and its creator's later targets up to ``HORIZON_SHARE`` x its history length ahead."""
    order = _creator_time_order(examples)
    rows = order.index.to_numpy()
    run_end = order.groupby("influencer", sort=False)["t"].transform("size").to_numpy()
    position = order.groupby("influencer", sort=False).cumcount().to_numpy()
    n_history = examples.base["n_history_posts"].to_numpy(dtype="float64")[rows]
    reach = np.minimum(np.floor(HORIZON_SHARE * n_history).astype("int64"), run_end - 1 - position)
    count = reach + 1
    forecast_sorted = np.repeat(np.arange(len(rows)), count)
    step = np.arange(len(forecast_sorted)) - np.repeat(np.cumsum(count) - count, count)
    return rows[forecast_sorted], rows[forecast_sorted + step]


def fit_model(
    examples: ExampleSet,
    config: TrainConfig,
    params: dict[str, Any] | None = None,
    progress: Progress = _quiet,
) -> EngagementModel:
    """Fit one model on ``examples`` with early stopping and a held-out conformal calibration.

    With ``config.tune_trials``, the Optuna trials are counted to ``progress``
    (:func:`report_step`, task :data:`training.tuning.TUNING_TRIALS`)."""
    influencers = examples.base["influencer"]
    calib = influencer_holdout(
        influencers, config.calibration_share, config.seed, examples.base["platform"]
    )
    train = examples.subset(~calib)
    valid = influencer_holdout(
        train.base["influencer"], config.validation_share, config.seed + 1, train.base["platform"]
    )
    params = params or config.lgbm_params
    if config.tune_trials > 0 and params is config.lgbm_params:
        params = tune_params(train, config, partial(report_step, progress))
    rounds, stage_rounds = boosting_rounds(train, valid, config, params)
    model = new_model(config, params).fit(
        train.base,
        train.label,
        sample_weight=train.weight,
        num_boost_round=rounds,
        platform_rounds=stage_rounds,
    )
    held = examples.subset(calib)
    model.calibrate(held.base, held.label, pairs=horizon_pairs(held))
    spread = model.interval_.spread_
    model.metadata["interval_spread_exponent"] = 0.0 if spread is None else spread.exponent
    model.metadata["planned_post_support"] = planned_post_support(train.base)
    model.metadata["n_boost_rounds"] = rounds
    model.metadata["platform_stage_rounds"] = model.platform_rounds_
    model.metadata["lgbm_params"] = dict(params)
    return model


def planned_post_support(base: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Training target posts per platform by kind (video, carousel, image, sponsored): what
    serving checks before it claims a forecast for a planned post of that kind."""
    out: dict[str, dict[str, int]] = {}
    platform = (
        base["platform"].astype(str) if "platform" in base else pd.Series("", index=base.index)
    )
    for name, rows in base.groupby(platform.to_numpy()).groups.items():
        part = base.loc[rows]
        video = part.get("planned_video", pd.Series(np.nan, index=part.index)) == 1
        carousel = part.get("planned_carousel", pd.Series(np.nan, index=part.index)) == 1
        sponsored = part.get("planned_sponsored", pd.Series(np.nan, index=part.index)) == 1
        out[str(name)] = {
            "video": int(video.sum()),
            "carousel": int(carousel.sum()),
            "image": int((~video & ~carousel).sum()),
            "sponsored": int(sponsored.sum()),
            "organic": int((~sponsored).sum()),
        }
    return out


def fit_baselines(examples: ExampleSet, config: TrainConfig) -> list[Baseline]:
    base = examples.base
    calib = influencer_holdout(
        base["influencer"], config.calibration_share, config.seed, base["platform"]
    )
    train, held = examples.subset(~calib), examples.subset(calib)
    return [
        b.fit(train.base, train.label).calibrate(
            held.base, held.label, config.interval_level, pairs=horizon_pairs(held)
        )
        for b in all_baselines()
    ]


def _predict_all(
    model: EngagementModel, baselines: list[Baseline], test: ExampleSet
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    out = {}
    pred = model.predict_log(test.base)
    out["model"] = (pred, *model.predict_log_interval(test.base, pred))
    for b in baselines:
        p = b.predict_log(test.base)
        out[b.name] = (p, *b.predict_log_interval(test.base, p))
    return out


def latest_targets(examples: ExampleSet) -> np.ndarray:
    """True for each influencer's latest example (by target time, the last row on ties)."""
    order = _creator_time_order(examples)
    last = ~order["influencer"].duplicated(keep="last").to_numpy()
    mask = np.zeros(len(examples), dtype=bool)
    mask[order.index.to_numpy()[last]] = True
    return mask


def _report(
    test: ExampleSet, predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], seed: int
) -> dict[str, Any]:
    """Metrics in the shape of ``--metrics-out`` for one set of test predictions."""
    niche = test.base["category"].astype(str).to_numpy()
    tier = test.base["tier"].astype(str).to_numpy()

    def metrics_on(mask: np.ndarray, name: str) -> dict[str, Any]:
        p, lo, hi = predictions[name]
        return all_metrics(
            test.label[mask], p[mask], lo[mask], hi[mask], niche[mask], tier[mask], seed
        )

    everyone = np.ones(len(test), dtype=bool)
    history = test.has_history
    latest = latest_targets(test)
    names = [n for n in predictions if n != "model"]
    model = metrics_on(everyone, "model")
    _, lo, hi = predictions["model"]
    model["coverage_80_90ci"] = creator_coverage_interval(
        (test.label >= lo) & (test.label <= hi), test.base["influencer"].to_numpy(), seed
    )
    model["coverage_by_spread"] = coverage_by_spread(
        test.label,
        lo,
        hi,
        test.base["log_er_mad"].to_numpy(),
        test.base["n_history_posts"].to_numpy(),
    )
    return {
        "model": model,
        "baselines": {n: metrics_on(everyone, n) for n in names},
        "subsets": {
            "with_history": {n: metrics_on(history, n) for n in ["model", *names]},
            # Persistence is the tier x niche median when there is no history: not repeated here.
            "cold_start": {
                n: metrics_on(~history, n) for n in ["model", *names] if n != "persistence"
            },
            # Each influencer's latest target only: the examples of the one-target-per-influencer
            # evaluation, comparable with figures from before rolling cutoffs.
            "latest_with_history": {n: metrics_on(latest & history, n) for n in ["model", *names]},
            "latest_cold_start": {
                n: metrics_on(latest & ~history, n) for n in ["model", *names] if n != "persistence"
            },
        },
        "n_examples": int(len(test)),
    }


def _engagements(examples: ExampleSet) -> np.ndarray:
    """Each example's engagement count (interactions), from its label."""
    followers = np.exp(examples.base["log_followers"].to_numpy(dtype="float64"))
    return np.exp(examples.label) * followers - 1.0


def _reach_pairs(
    model: EngagementModel, test: ExampleSet, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_reach, reached, tier) for every (test example, target) pair: the model's probability
    that the post reaches ``target`` engagements, and whether it did."""
    predicted = model.predict_log(test.base)
    followers = np.exp(test.base["log_followers"].to_numpy(dtype="float64"))
    tier = test.base["tier"].astype(str).to_numpy()
    p, hit, tiers = [], [], []
    for target in targets:
        threshold = np.log((target + 1.0) / followers)  # log ER of exactly `target` interactions
        p.append(model.prob_at_least(test.base, threshold, predicted))
        hit.append(test.label >= threshold)
        tiers.append(tier)
    return np.concatenate(p), np.concatenate(hit), np.concatenate(tiers)


def cross_validate(
    examples: ExampleSet, config: TrainConfig, progress: Progress = _quiet
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Grouped K-fold by influencer; returns the metrics and the out-of-fold predictions."""
    collected: dict[str, list[np.ndarray]] = {}
    order: list[np.ndarray] = []
    reach: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    targets = reach_targets(_engagements(examples))
    report_step(progress, CV_FOLDS, 0, config.n_folds)
    folds = creator_folds(examples.base, config.n_folds, config.seed)
    for k, (train_idx, _) in enumerate(folds, start=1):
        progress(
            f"cross-validation fold {k}/{config.n_folds}: fitting on {len(train_idx)} examples"
        )
        train_mask = np.zeros(len(examples), dtype=bool)
        train_mask[train_idx] = True
        train, test = examples.subset(train_mask), examples.subset(~train_mask)
        model = fit_model(train, config, progress=progress)
        preds = _predict_all(model, fit_baselines(train, config), test)
        reach.append(_reach_pairs(model, test, targets))
        for name, (p, lo, hi) in preds.items():
            collected.setdefault(name, []).append(np.vstack([p, lo, hi]))
        order.append(np.flatnonzero(~train_mask))
        report_step(progress, CV_FOLDS, k, config.n_folds)
    index = np.concatenate(order)
    oof = examples.subset(np.ones(len(examples), dtype=bool))
    inverse = np.argsort(index)
    predictions = {name: tuple(np.hstack(parts)[:, inverse]) for name, parts in collected.items()}
    report = _report(oof, predictions, config.seed)
    report["reach_calibration"] = {
        "targets": targets.tolist(),
        **reach_calibration(*(np.concatenate(part) for part in zip(*reach, strict=True))),
    }
    frame = oof.base[
        ["influencer", "cutoff", "tier", "category", "n_history_posts", "log_followers"]
    ].copy()
    frame["actual_log_er"] = oof.label
    for name, (p, lo, hi) in predictions.items():
        frame[f"{name}_pred"], frame[f"{name}_low"], frame[f"{name}_high"] = p, lo, hi
    return report, frame


def time_split(examples: ExampleSet, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Train on targets before a time T, test on the latest ``share`` of targets.

    Influencers with a test target are removed from the training side, so the holdout is both
    later in time and made of unseen influencers.
    """
    times = examples.target_time
    threshold = times.quantile(1.0 - share)
    test = (times >= threshold).to_numpy()
    test_influencers = examples.base["influencer"][test]
    train = ~test & ~examples.base["influencer"].isin(test_influencers).to_numpy()
    return train, test


def time_holdout(
    examples: ExampleSet, config: TrainConfig, progress: Progress = _quiet
) -> tuple[dict[str, Any], EngagementModel, ExampleSet]:
    train_mask, test_mask = time_split(examples, config.holdout_share)
    train, test = examples.subset(train_mask), examples.subset(test_mask)
    progress(
        f"time-ordered holdout: fitting on {len(train)} "
        f"earlier examples, testing on {len(test)} later ones"
    )
    model = fit_model(train, config, progress=progress)
    report = _report(test, _predict_all(model, fit_baselines(train, config), test), config.seed)
    report["holdout_from"] = str(test.target_time.min())
    targets = reach_targets(_engagements(test))
    report["reach_calibration"] = {
        "targets": targets.tolist(),
        **reach_calibration(*_reach_pairs(model, test, targets)),
    }
    return report, model, test


def evaluate_model(
    model: EngagementModel, examples: ExampleSet, config: TrainConfig, progress: Progress = _quiet
) -> dict[str, Any]:
    """Score a saved model on new examples beside the baselines.

    The model is applied as saved. Baselines need fitting, so they are fitted out of fold on
    the new examples (grouped K-fold by influencer), which gives them the advantage of
    in-distribution data: a conservative comparison for the model.
    """
    pred = model.predict_log(examples.base)
    predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
        "model": (pred, *model.predict_log_interval(examples.base, pred))
    }
    n_folds = min(config.n_folds, examples.base["influencer"].nunique())
    folds = GroupKFold(n_splits=n_folds, shuffle=True, random_state=config.seed)
    parts: dict[str, np.ndarray] = {}
    report_step(progress, BASELINE_FOLDS, 0, n_folds)
    for k, (train_idx, test_idx) in enumerate(
        folds.split(np.zeros(len(examples)), groups=examples.base["influencer"].to_numpy()), start=1
    ):
        progress(f"baselines fold {k}/{n_folds}")
        mask = np.zeros(len(examples), dtype=bool)
        mask[train_idx] = True
        test = examples.subset(~mask)
        for b in fit_baselines(examples.subset(mask), config):
            p = b.predict_log(test.base)
            lo, hi = b.predict_log_interval(test.base, p)
            block = parts.setdefault(b.name, np.full((3, len(examples)), np.nan))
            block[:, test_idx] = np.vstack([p, lo, hi])
        report_step(progress, BASELINE_FOLDS, k, n_folds)
    for name, block in parts.items():
        predictions[name] = (block[0], block[1], block[2])
    return _report(examples, predictions, config.seed)
