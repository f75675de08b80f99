"""Training on a Dask cluster: examples built on the workers, the final booster trained there too.

What runs where (and why):

* **Examples and base features** (the heavy part: every post is read and aggregated) run on
  the workers, per influencer bucket, with the same :func:`training.examples.post_examples`
  as the pandas engine (see :mod:`features.distributed`). With a campaigns table, it is read
  and checked on the driver (:func:`training.examples.validate_campaigns`, against the
  profiles' keys), cut by influencer bucket, and each worker builds its bucket's examples with
  :func:`training.examples.campaign_examples`.
* **Evaluation** (grouped CV, time-ordered holdout, baselines) runs on the driver, on the
  examples *collected from the cluster*: one row per example, far smaller than the posts, but
  it must fit in the driver's memory. The metrics are then the pandas engine's, on the same
  rows in the same order.
* **The final model**: the learned feature steps (priors, hashtag niches and topics) and the
  early-stopping probe that picks the number of rounds are fitted on the driver on the
  training rows (at most ``max_driver_rows``, a random sample of influencers beyond that); the
  booster is then trained with ``lightgbm.dask.DaskLGBMRegressor`` on the booster matrix built
  on the workers (:meth:`~features.pipeline.EngagementModel.booster_matrix`, as every fit and
  prediction), with that fixed number of rounds (LightGBM's Dask interface has no
  cluster-wide early stopping). The conformal interval is calibrated from residuals computed
  on the workers. ``to_local()`` turns the booster into an ordinary one inside the same
  :class:`~features.pipeline.EngagementModel`, so the
  saved artifact loads and serves like any other.
* **Tracking**: what the pandas engine records about its inputs (fingerprint of the files,
  rows kept, date range of the posts) is recorded for the same files, with the row counts and
  dates computed on the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import ValidatedData, ValidationReport, as_text, read_table, validate
from features.distributed import (
    PartsProgress,
    bucket_count,
    collect,
    features_meta,
    map_by_influencer,
    split_by_bucket,
    utc_now,
)
from features.pipeline import (
    BASELINE_FEATURE,
    ConformalInterval,
    EngagementModel,
    creator_cell_weights,
    interval_group,
)
from training.config import TrainConfig
from training.evaluation import DASK_EXAMPLES, boosting_rounds, horizon_pairs, report_step
from training.examples import (
    ExampleSet,
    campaign_examples,
    example_weights,
    post_examples,
    post_platform,
    validate_campaigns,
)
from training.fitting import influencer_holdout, new_model

LABEL, TARGET_ER, TARGET_TIME, FIRST_POST, LAST_POST = (
    "_label",
    "_target_er",
    "_target_time",
    "_first_post",
    "_last_post",
)
# The example's place in the pandas engine's order: its row in the campaigns table (campaign
# mode, where that table sets the order), else 0 (latest-post mode: influencer, then cutoff).
ORDER = "_order"
EXTRA_COLUMNS = [LABEL, TARGET_ER, TARGET_TIME, FIRST_POST, LAST_POST, ORDER]
# Training rows the driver fits the feature steps and the early-stopping probe on.
MAX_DRIVER_ROWS = 500_000

if TYPE_CHECKING:  # run_training's module is imported when training runs (it brings MLflow)
    from training.tracking import ModelPackager
    from training.train import InputSummary


def _example_frame(
    ex: ExampleSet, data: ValidatedData, order: np.ndarray | int = 0
) -> pd.DataFrame:
    """Examples as one frame: base features plus the label columns (:data:`EXTRA_COLUMNS`)."""
    times = data.posts.groupby("influencer")["posted_at"]
    first, last = ex.base["influencer"].map(times.min()), ex.base["influencer"].map(times.max())
    order = (
        np.full(len(ex), order, dtype="int64")
        if np.isscalar(order)
        else np.asarray(order, dtype="int64")
    )
    return ex.base.assign(
        **{
            LABEL: ex.label,
            TARGET_ER: ex.target_er,
            TARGET_TIME: ex.target_time.to_numpy(),
            FIRST_POST: first.to_numpy(),
            LAST_POST: last.to_numpy(),
            ORDER: order,
        }
    )


def _examples_part(
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    targets: int,
    now: pd.Timestamp,
    files: tuple[str, str],
    scraped: dict[str, pd.Timestamp],
) -> tuple[pd.DataFrame, ValidationReport]:
    data = validate(profiles, posts, profiles_file=files[0], posts_file=files[1], now=now)
    return _example_frame(
        post_examples(data.profiles, data.posts, targets, scraped), data
    ), data.report


def _post_times_part(
    profiles: pd.DataFrame, posts: pd.DataFrame | None, now: pd.Timestamp, files: tuple[str, str]
) -> tuple[pd.DataFrame, ValidationReport]:
    """One bucket's first and newest validated post per platform."""
    data = validate(profiles, posts, profiles_file=files[0], posts_file=files[1], now=now)
    times = (
        data.posts["posted_at"]
        .groupby(post_platform(data.profiles, data.posts))
        .agg(["min", "max"])
    )
    frame = pd.DataFrame(
        {
            "platform": times.index.astype(str),
            "first": times["min"].to_numpy(),
            "newest": times["max"].to_numpy(),
        }
    )
    return frame, data.report


_POST_TIMES_META = pd.DataFrame(
    {
        "platform": pd.Series(dtype=object),
        "first": pd.Series(dtype="datetime64[ns, UTC]"),
        "newest": pd.Series(dtype="datetime64[ns, UTC]"),
    }
)


def _post_times(
    profiles: Any,
    posts: Any,
    now: pd.Timestamp,
    files: tuple[str, str],
    npartitions: int | None = None,
) -> pd.DataFrame:
    """First and newest validated post per platform and bucket, one validation pass per bucket."""
    parts = map_by_influencer(
        _post_times_part, profiles, posts, npartitions=npartitions, args=(now, files)
    )
    return collect(parts, _POST_TIMES_META, files)[0].compute()


def whole_scrape_times(
    profiles: Any, posts: Any, now: pd.Timestamp, files: tuple[str, str], npartitions: int | None
) -> dict[str, pd.Timestamp]:
    """:func:`training.examples.scrape_times` of the
    whole input: each bucket sees only its own posts."""
    frame = _post_times(profiles, posts, now, files, npartitions)
    return {str(k): pd.Timestamp(v) for k, v in frame.groupby("platform")["newest"].max().items()}


def _campaigns_part(
    profiles: pd.DataFrame,
    posts: pd.DataFrame | None,
    now: pd.Timestamp,
    files: tuple[str, str],
    scraped: dict[str, pd.Timestamp],
    campaigns: pd.DataFrame,
) -> tuple[pd.DataFrame, ValidationReport]:
    """One bucket's campaign examples; ``campaigns`` are its
    rows of the validated campaigns table (with ORDER); ``scraped`` is the whole input's."""
    data = validate(profiles, posts, profiles_file=files[0], posts_file=files[1], now=now)
    ex = campaign_examples(data.profiles, data.posts, campaigns.drop(columns=ORDER), scraped)
    return _example_frame(ex, data, campaigns[ORDER].to_numpy()), data.report


def _examples_meta() -> pd.DataFrame:
    meta = features_meta()
    return meta.assign(
        **{
            LABEL: pd.Series(dtype="float64"),
            TARGET_ER: pd.Series(dtype="float64"),
            TARGET_TIME: pd.Series(dtype="datetime64[ns, UTC]"),
            FIRST_POST: pd.Series(dtype="datetime64[ns, UTC]"),
            LAST_POST: pd.Series(dtype="datetime64[ns, UTC]"),
            ORDER: pd.Series(dtype="int64"),
        }
    )


def examples_dask(
    profiles: Any,
    posts: Any,
    *,
    targets_per_influencer: int = 0,
    campaigns: pd.DataFrame | None = None,
    now: pd.Timestamp | None = None,
    npartitions: int | None = None,
    files: tuple[str, str] = ("profiles", "posts"),
    progress: PartsProgress | None = None,
) -> tuple[Any, ValidationReport]:
    """Training examples of raw Dask tables, persisted
    on the cluster: base features + label columns.

    Parameters
    ----------
    profiles, posts
        Raw Dask tables in the data contract.
    targets_per_influencer
        Latest-post mode: each influencer's latest N posts are targets.
    campaigns
        Campaign mode instead: a campaigns table already checked by
        :func:`training.examples.validate_campaigns` (on the driver: it is small). It is cut by
        influencer bucket and each worker runs :func:`training.examples.campaign_examples` on
        its part, so the examples are the pandas engine's.
    now, npartitions, files
        As for :func:`features.distributed.compute_features_dask`.
    progress
        ``progress(done, total)``: buckets done (:func:`features.distributed.wait_counted`).
    """
    now = utc_now(now)
    scraped = whole_scrape_times(profiles, posts, now, files, npartitions)
    if campaigns is None:
        parts = map_by_influencer(
            _examples_part,
            profiles,
            posts,
            npartitions=npartitions,
            args=(targets_per_influencer, now, files, scraped),
        )
    else:
        n = bucket_count(profiles, posts, npartitions)
        numbered = campaigns.assign(**{ORDER: np.arange(len(campaigns), dtype="int64")})
        parts = map_by_influencer(
            _campaigns_part,
            profiles,
            posts,
            npartitions=n,
            args=(now, files, scraped),
            part_args=[(part,) for part in split_by_bucket(numbered, n)],
        )
    return collect(parts, _examples_meta(), files, progress)


def known_influencers(profiles: Any) -> pd.Series:
    """The profiles' influencer keys, as validation reads them
    (text, surrounding space removed), computed on the cluster."""
    key = next(c for c in profiles.columns if str(c).strip() == "influencer")
    # The contract's own key cleaning, per partition; empty keys come back missing.
    keys = profiles[key].map_partitions(as_text, meta=(key, "string")).drop_duplicates().compute()
    return keys.dropna().reset_index(drop=True)


def read_campaigns(path: str | Path, profiles: Any) -> pd.DataFrame:
    """Read and check a campaigns table on the driver, against the keys of the (Dask) profiles.

    The same checks as the pandas engine (:func:`training.examples.validate_campaigns`); a
    break raises :class:`~features.contract.DataValidationError` naming file, column and rows.
    """
    return validate_campaigns(read_table(path), str(path), known_influencers(profiles))


def to_example_set(frame: pd.DataFrame) -> ExampleSet:
    """Collected examples in the pandas engine's order:
    campaign rows' order, else influencer then cutoff."""
    frame = frame.sort_values([ORDER, "influencer", "cutoff"], kind="stable").reset_index(drop=True)
    return ExampleSet(
        base=frame.drop(columns=EXTRA_COLUMNS),
        label=frame[LABEL].to_numpy(dtype="float64"),
        target_er=frame[TARGET_ER].to_numpy(dtype="float64"),
        target_time=frame[TARGET_TIME].reset_index(drop=True),
    )


def _model_matrix(part: pd.DataFrame, model: EngagementModel) -> pd.DataFrame:
    return model.model_matrix(part.drop(columns=EXTRA_COLUMNS))


def _residual_groups(part: pd.DataFrame, model: EngagementModel) -> pd.DataFrame:
    """Calibration residuals of one bucket, paired as :func:`training.evaluation.horizon_pairs`
    pairs them (a creator's examples are all in one bucket)."""
    if not len(part):
        return _RESIDUAL_META.copy()
    ex = to_example_set(part)
    predicted = model.predict_log(ex.base)
    forecast, target = horizon_pairs(ex)
    return pd.DataFrame(
        {
            "residual": ex.label[target] - predicted[forecast],
            "group": interval_group(ex.base).to_numpy(dtype=object)[forecast],
            "creator": ex.base["influencer"].to_numpy(dtype=object)[forecast],
        }
    )


_RESIDUAL_META = pd.DataFrame(
    {
        "residual": pd.Series(dtype="float64"),
        "group": pd.Series(dtype=object),
        "creator": pd.Series(dtype=object),
    }
)


def fit_model_dask(
    examples: Any,
    config: TrainConfig,
    *,
    client: Any,
    params: dict[str, Any] | None = None,
    max_driver_rows: int = MAX_DRIVER_ROWS,
) -> EngagementModel:
    """:func:`training.evaluation.fit_model`, with the booster trained by ``DaskLGBMRegressor``.

    ``examples`` is the persisted Dask frame of :func:`examples_dask` (base features and the
    label columns). The split into calibration, validation and training influencers is
    :func:`training.evaluation.fit_model`'s, with the same seeds.
    """
    from lightgbm.dask import DaskLGBMRegressor

    params = dict(params or config.lgbm_params)
    keys = (
        examples[["influencer", "platform"]]
        .compute()
        .sort_values("influencer", kind="stable")
        .reset_index(drop=True)
    )
    influencers, platforms = keys["influencer"], keys["platform"]
    calib_keys = set(
        influencers[
            influencer_holdout(influencers, config.calibration_share, config.seed, platforms)
        ]
    )
    in_train = ~influencers.isin(calib_keys).to_numpy()
    train_keys = influencers[in_train].reset_index(drop=True)
    train_platforms = platforms[in_train].reset_index(drop=True)
    valid_keys = set(
        train_keys[
            influencer_holdout(
                train_keys, config.validation_share, config.seed + 1, train_platforms
            )
        ]
    )

    is_calib = examples["influencer"].isin(list(calib_keys))
    train_dd, calib_dd = examples[~is_calib], examples[is_calib]

    # Driver side: the training rows (or a sample of their influencers) for the probe and steps.
    unique_train = pd.unique(train_keys)
    if len(train_keys) > max_driver_rows:
        rng = np.random.default_rng(config.seed)
        share = max_driver_rows / len(train_keys)
        unique_train = rng.choice(
            unique_train, size=max(1, int(len(unique_train) * share)), replace=False
        )
        local = to_example_set(train_dd[train_dd["influencer"].isin(list(unique_train))].compute())
    else:
        local = to_example_set(train_dd.compute())
    valid = local.base["influencer"].isin(valid_keys).to_numpy()
    # The Dask booster is built piece by piece and has no platform stages.
    rounds, _ = boosting_rounds(local, valid, config, params)

    model = new_model(config, params)
    model.fit_steps(local.base)
    meta = pd.DataFrame({name: pd.Series(dtype="float64") for name in model.feature_names_})
    X = train_dd.map_partitions(_model_matrix, model, meta=meta)
    y = train_dd[LABEL]
    # As the pandas engine: each creator weighs 1 (a creator's examples are all in one bucket),
    # and the booster starts from the shrunk own level.
    weight = train_dd.map_partitions(
        lambda part: pd.Series(example_weights(part), index=part.index), meta=(LABEL, "float64")
    )
    start = X[BASELINE_FEATURE].astype("float64")
    model.baseline_mean_ = float((start * weight).sum().compute() / weight.sum().compute())
    lgb_params = {
        "verbosity": -1,
        "random_state": config.seed,
        "deterministic": True,
        "force_col_wise": True,
        **params,
    }
    booster = (
        DaskLGBMRegressor(client=client, n_estimators=rounds, **lgb_params)
        .fit(
            X,
            y,
            sample_weight=weight,
            init_score=start,
            categorical_feature=model.categorical_columns(),
        )
        .to_local()
        .booster_
    )
    model.booster_ = booster
    model.best_iteration_ = int(booster.current_iteration())

    res = calib_dd.map_partitions(_residual_groups, model, meta=_RESIDUAL_META).compute()
    weight = creator_cell_weights(res["creator"].to_numpy(), res["group"].to_numpy())
    model.interval_ = ConformalInterval(model.interval_level).fit(
        res["residual"].to_numpy(), res["group"].reset_index(drop=True), weight
    )
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
    package: ModelPackager,
    campaigns_path: str | Path | None = None,
    npartitions: int | None = None,
    progress: Any = None,
) -> Any:
    """``engage train --engine dask``: examples on the cluster,
    evaluation on the driver, final booster on the cluster.

    Returns :class:`training.train.TrainingResult`, the same as the pandas engine. The rest of
    the run (metadata, saved artifact, plots, MLflow, champion alias) is
    :func:`training.train.run_training` itself, given the collected examples, this module's
    final fit and the inputs' summary (rows kept and date range, computed on the cluster), so
    the model metadata and MLflow record the inputs as for the pandas engine: the files'
    fingerprint (:func:`training.train.file_fingerprint`, which reads folders and globs too),
    rows and date range. The model metadata also gets ``dask_inputs`` (paths, rows read and kept).

    Parameters
    ----------
    profiles_path, posts_path
        Parquet files, folders, globs or URLs, or CSV files.
    config
        The training configuration.
    client
        A ``distributed.Client``.
    package
        How the saved model is logged to MLflow (:data:`training.tracking.ModelPackager`); a
        missing one is a TypeError before the cluster is asked for anything.
    campaigns_path
        A campaigns table (small: read and checked on the driver); its rows are the examples.
    npartitions
        Influencer buckets (default: the inputs' partitions).
    progress
        Called with step messages (default: :class:`training.train.ProgressPrinter`).
    """
    from features.distributed import read_any
    from training.tracking import require_packager
    from training.train import ProgressPrinter, run_training

    require_packager(package)
    progress = progress or ProgressPrinter()
    profiles = read_any(profiles_path, engine="dask")
    posts = read_any(posts_path, engine="dask")
    campaigns = None
    if campaigns_path is not None:
        progress(f"checking the campaigns table {campaigns_path} against the profiles")
        campaigns = read_campaigns(campaigns_path, profiles)
    progress(
        "building examples on the cluster "
        f"({len(client.scheduler_info().get('workers', {}))} workers)"
    )
    files = (str(profiles_path), str(posts_path))
    frame, report = examples_dask(
        profiles,
        posts,
        targets_per_influencer=config.targets_per_influencer,
        campaigns=campaigns,
        npartitions=npartitions,
        files=files,
        progress=lambda done, total: report_step(progress, DASK_EXAMPLES, done, total),
    )
    if report.handled:
        progress(report.format())
    examples = to_example_set(frame.compute())
    progress(f"collected {len(examples)} examples to the driver for evaluation")
    data, summary = _driver_data(
        profiles, posts, frame, examples, report, by_campaign=campaigns is not None
    )
    facts = {
        "profiles": files[0],
        "posts": files[1],
        "rows_read": report.rows_in,
        "rows_kept": report.rows_out,
    }
    if campaigns_path is not None:
        facts["campaigns"] = str(campaigns_path)

    def fit_final(ex: ExampleSet, cfg: TrainConfig) -> EngagementModel:
        model = fit_model_dask(frame, cfg, client=client)
        model.metadata["dask_inputs"] = facts
        return model

    return run_training(
        data,
        {"profiles": profiles_path, "posts": posts_path},
        config,
        package=package,
        campaigns_path=campaigns_path,
        progress=progress,
        examples=examples,
        fit_final=fit_final,
        summary=summary,
        campaigns=campaigns,
    )


def _driver_data(
    profiles: Any,
    posts: Any,
    frame: Any,
    examples: ExampleSet,
    report: ValidationReport,
    *,
    by_campaign: bool,
) -> tuple[ValidatedData, InputSummary]:
    """What run_training reads of the data: validated rows of three influencers (input example,
    datasets' schema), and the summary of the whole input: rows kept (from the merged report)
    and the posts' date range (computed on the cluster), not the posts themselves."""
    import dask

    from training.train import InputSummary

    # Influencers with post history, so the input example
    # has posts (campaign examples may have none).
    with_posts = examples.base.loc[examples.has_history, "influencer"]
    chosen = (
        (with_posts if len(with_posts) else examples.base["influencer"])
        .drop_duplicates()
        .head(3)
        .tolist()
    )
    pkey = next(c for c in profiles.columns if str(c).strip() == "influencer")
    qkey = next(c for c in posts.columns if str(c).strip() == "influencer")
    few_profiles, few_posts = dask.compute(
        profiles[profiles[pkey].astype(str).str.strip().isin(chosen)],
        posts[posts[qkey].astype(str).str.strip().isin(chosen)],
    )
    data = validate(few_profiles, few_posts)
    if not report.rows_out.get("posts"):
        dates = None
    elif by_campaign:
        dates = _posts_date_range(profiles, posts)
    else:
        # Every influencer with a mature post has examples, which carry its first and last post
        # time: no second pass over the posts is needed.
        lo, hi = dask.compute(frame[FIRST_POST].min(), frame[LAST_POST].max())
        dates = (pd.Timestamp(lo), pd.Timestamp(hi))
    return data, InputSummary(dict(report.rows_out), dates)


def _posts_date_range(profiles: Any, posts: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Earliest and latest validated post time (campaign mode, where examples cover only the
    campaigns' influencers): one more validation pass per bucket."""
    frame = _post_times(profiles, posts, utc_now(None), ("profiles", "posts"))
    return pd.Timestamp(frame["first"].min()), pd.Timestamp(frame["newest"].max())


__all__ = ["examples_dask", "fit_model_dask", "run_training_dask", "to_example_set"]
