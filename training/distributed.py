"""Training on a Dask cluster: examples built on the workers, the final booster trained there too.

What runs where (and why):

* **Examples and base features** (the heavy part: every post is read and aggregated) run on
  the workers, per influencer bucket, with the same :func:`training.examples.latest_post_examples`
  as the pandas engine (see :mod:`features.distributed`).
* **Evaluation** (grouped CV, time-ordered holdout, baselines) runs on the driver, on the
  examples *collected from the cluster*: one row per example, far smaller than the posts, but
  it must fit in the driver's memory. The metrics are then the pandas engine's, on the same
  rows in the same order.
* **The final model**: the learned feature steps (priors, hashtag niches and topics) and the
  early-stopping probe that picks the number of rounds are fitted on the driver on the
  training rows (at most ``max_driver_rows``, a random sample of influencers beyond that); the
  booster is then trained with ``lightgbm.dask.DaskLGBMRegressor`` on the model matrix built
  on the workers, with that fixed number of rounds (LightGBM's Dask interface has no
  cluster-wide early stopping). The conformal interval is calibrated from residuals computed
  on the workers. ``to_local()`` turns the booster into an ordinary one inside the same
  :class:`~features.pipeline.EngagementModel`, so the saved artifact loads and serves like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import ValidatedData, ValidationReport, validate
from features.distributed import _now, collect, features_meta, map_by_influencer
from features.pipeline import ConformalInterval, EngagementModel, interval_group
from training.config import TrainConfig
from training.evaluation import boosting_rounds, influencer_holdout, new_model
from training.examples import ExampleSet, latest_post_examples

LABEL, TARGET_ER, TARGET_TIME, FIRST_POST = "_label", "_target_er", "_target_time", "_first_post"
EXTRA_COLUMNS = [LABEL, TARGET_ER, TARGET_TIME, FIRST_POST]
# Training rows the driver fits the feature steps and the early-stopping probe on.
MAX_DRIVER_ROWS = 500_000


def _examples_part(profiles: pd.DataFrame, posts: pd.DataFrame | None, targets: int, now: pd.Timestamp, files: tuple[str, str]) -> tuple[pd.DataFrame, ValidationReport]:
    data = validate(profiles, posts, profiles_file=files[0], posts_file=files[1], now=now)
    ex = latest_post_examples(data.profiles, data.posts, targets)
    first = ex.base["influencer"].map(data.posts.groupby("influencer")["posted_at"].min())
    frame = ex.base.assign(**{LABEL: ex.label, TARGET_ER: ex.target_er, TARGET_TIME: ex.target_time.to_numpy(), FIRST_POST: first.to_numpy()})
    return frame, data.report


def _examples_meta() -> pd.DataFrame:
    meta = features_meta()
    return meta.assign(**{LABEL: pd.Series(dtype="float64"), TARGET_ER: pd.Series(dtype="float64"), TARGET_TIME: pd.Series(dtype="datetime64[ns, UTC]"), FIRST_POST: pd.Series(dtype="datetime64[ns, UTC]")})


def examples_dask(profiles: Any, posts: Any, *, targets_per_influencer: int = 1, now: pd.Timestamp | None = None, npartitions: int | None = None, files: tuple[str, str] = ("profiles", "posts")) -> tuple[Any, ValidationReport]:
    """Training examples of raw Dask tables, persisted on the cluster: base features + label columns."""
    parts = map_by_influencer(_examples_part, profiles, posts, npartitions=npartitions, args=(targets_per_influencer, _now(now), files))
    return collect(parts, _examples_meta())


def to_example_set(frame: pd.DataFrame) -> ExampleSet:
    """Collected examples in the pandas engine's order (influencer, then cutoff)."""
    frame = frame.sort_values(["influencer", "cutoff"], kind="stable").reset_index(drop=True)
    return ExampleSet(
        base=frame.drop(columns=EXTRA_COLUMNS),
        label=frame[LABEL].to_numpy(dtype="float64"),
        target_er=frame[TARGET_ER].to_numpy(dtype="float64"),
        target_time=frame[TARGET_TIME].reset_index(drop=True),
    )


def _model_matrix(part: pd.DataFrame, model: EngagementModel) -> pd.DataFrame:
    return model.model_matrix(part.drop(columns=EXTRA_COLUMNS))


def _residual_groups(part: pd.DataFrame, model: EngagementModel) -> pd.DataFrame:
    residual = part[LABEL].to_numpy(dtype="float64") - model.predict_log(part.drop(columns=EXTRA_COLUMNS)) if len(part) else np.array([], dtype="float64")
    return pd.DataFrame({"residual": residual, "group": interval_group(part).to_numpy(dtype=object)}, index=part.index)


def fit_model_dask(examples: Any, config: TrainConfig, *, client: Any, params: dict[str, Any] | None = None, max_driver_rows: int = MAX_DRIVER_ROWS) -> EngagementModel:
    """:func:`training.evaluation.fit_model`, with the booster trained by ``DaskLGBMRegressor``.

    ``examples`` is the persisted Dask frame of :func:`examples_dask` (base features and the
    label columns). The split into calibration, validation and training influencers is
    :func:`training.evaluation.fit_model`'s, with the same seeds.
    """
    from lightgbm.dask import DaskLGBMRegressor

    params = dict(params or config.lgbm_params)
    influencers = examples["influencer"].compute().sort_values(kind="stable").reset_index(drop=True)
    calib_keys = set(influencers[influencer_holdout(influencers, config.calibration_share, config.seed)])
    train_keys = influencers[~influencers.isin(calib_keys)].reset_index(drop=True)
    valid_keys = set(train_keys[influencer_holdout(train_keys, config.validation_share, config.seed + 1)])

    is_calib = examples["influencer"].isin(list(calib_keys))
    train_dd, calib_dd = examples[~is_calib], examples[is_calib]

    # Driver side: the training rows (or a sample of their influencers) for the probe and steps.
    unique_train = pd.unique(train_keys)
    if len(train_keys) > max_driver_rows:
        rng = np.random.default_rng(config.seed)
        share = max_driver_rows / len(train_keys)
        unique_train = rng.choice(unique_train, size=max(1, int(len(unique_train) * share)), replace=False)
        local = to_example_set(train_dd[train_dd["influencer"].isin(list(unique_train))].compute())
    else:
        local = to_example_set(train_dd.compute())
    valid = local.base["influencer"].isin(valid_keys).to_numpy()
    rounds = boosting_rounds(local, valid, config, params)

    model = new_model(config, params)
    head = model.fit_steps(local.base)
    meta = head.iloc[:0]
    X = train_dd.map_partitions(_model_matrix, model, meta=meta)
    y = train_dd[LABEL]
    lgb_params = {"verbosity": -1, "random_state": config.seed, "deterministic": True, "force_col_wise": True, **params}
    booster = DaskLGBMRegressor(client=client, n_estimators=rounds, **lgb_params).fit(X, y).to_local().booster_
    model.booster_ = booster
    model.best_iteration_ = int(booster.current_iteration())

    res = calib_dd.map_partitions(_residual_groups, model, meta=pd.DataFrame({"residual": pd.Series(dtype="float64"), "group": pd.Series(dtype=object)})).compute()
    model.interval_ = ConformalInterval(model.interval_level).fit(res["residual"].to_numpy(), res["group"].reset_index(drop=True))
    model.metadata.update(
        {
            "n_boost_rounds": rounds,
            "lgbm_params": dict(params),
            "training_engine": "dask",
            "dask_workers": len(client.scheduler_info().get("workers", {})),
            "driver_rows_for_steps_and_probe": int(len(local)),
        }
    )
    return model


def run_training_dask(
    profiles_path: str | Path,
    posts_path: str | Path,
    config: TrainConfig,
    *,
    client: Any,
    npartitions: int | None = None,
    progress: Any = None,
) -> Any:
    """``engage train --engine dask``: examples on the cluster, evaluation on the driver, final booster on the cluster.

    Returns :class:`training.train.TrainingResult`, the same as the pandas engine. The rest of
    the run (metadata, saved artifact, plots, MLflow, champion alias) is
    :func:`training.train.run_training` itself, given the collected examples and this module's
    final fit. MLflow does not get the input files as datasets (they may be folders, globs or
    URLs); their paths and row counts go into the model metadata (``dask_inputs``) instead,
    and ``data_fingerprint`` is then that of no file.
    """
    from features.distributed import read_any
    from training.train import ProgressPrinter, run_training

    progress = progress or ProgressPrinter()
    profiles = read_any(profiles_path, engine="dask")
    posts = read_any(posts_path, engine="dask")
    progress(f"building examples on the cluster ({len(client.scheduler_info().get('workers', {}))} workers)")
    frame, report = examples_dask(profiles, posts, targets_per_influencer=config.targets_per_influencer, npartitions=npartitions, files=(str(profiles_path), str(posts_path)))
    if report.handled:
        progress(report.format())
    examples = to_example_set(frame.compute())
    progress(f"collected {len(examples)} examples to the driver for evaluation")
    # What run_training reads from the posts: the date range and a few rows for the input example.
    data = _driver_data(profiles, posts, frame, examples, report)
    facts = {"profiles": str(profiles_path), "posts": str(posts_path), "rows_read": report.rows_in, "rows_kept": report.rows_out}

    def fit_final(ex: ExampleSet, cfg: TrainConfig) -> EngagementModel:
        model = fit_model_dask(frame, cfg, client=client)
        model.metadata["dask_inputs"] = facts
        return model

    return run_training(data, {"profiles": None, "posts": None}, config, progress=progress, examples=examples, fit_final=fit_final)


def _driver_data(profiles: Any, posts: Any, frame: Any, examples: ExampleSet, report: ValidationReport) -> ValidatedData:
    """All that run_training reads of the data: validated rows of three influencers (input example)
    and two rows carrying the earliest and latest post time (date range), not the posts themselves."""
    import dask

    chosen = examples.base["influencer"].drop_duplicates().head(3).tolist()
    pkey = next(c for c in profiles.columns if str(c).strip() == "influencer")
    qkey = next(c for c in posts.columns if str(c).strip() == "influencer")
    few_profiles, few_posts, lo, hi = dask.compute(
        profiles[profiles[pkey].astype(str).str.strip().isin(chosen)],
        posts[posts[qkey].astype(str).str.strip().isin(chosen)],
        frame[FIRST_POST].min(),
        frame[TARGET_TIME].max(),
    )
    data = validate(few_profiles, few_posts)
    ends = data.posts.iloc[:0].reindex(range(2))
    ends["influencer"] = "_date_range"
    ends["posted_at"] = pd.to_datetime(pd.Series([lo, hi]), utc=True).to_numpy()
    return ValidatedData(data.profiles, pd.concat([data.posts, ends], ignore_index=True), report)


__all__ = ["examples_dask", "fit_model_dask", "run_training_dask", "to_example_set"]
