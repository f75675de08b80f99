"""The training run: examples, evaluation against baselines, final fit, saved artifact, MLflow.

``run_training`` is what ``engage train`` calls; it returns everything it measured so the
CLI only has to print it.
"""

from __future__ import annotations

import glob
import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.aggregate import MIN_POST_AGE
from features.artifact import load_artifact, model_key, redact, sign_folder, stage_artifact
from features.contract import ValidatedData, read_table
from features.engagement import ER_DEFINITION
from features.registry import resolve_tracking_uri
from training import plots
from training.checks import MIN_CHECKED, review
from training.config import TrainConfig
from training.evaluation import cross_validate, fit_model, time_holdout
from training.examples import (
    ExampleSet,
    campaign_examples,
    post_examples,
    validate_campaigns,
)
from training.forward import COVERAGE_KEY_FORWARD, forward_evaluation
from training.gate import GateResult, compare_on_unseen, save_training_creators, training_creators
from training.signals import StopSignals
from training.tracking import (
    ModelPackager,
    TrainingRun,
    log_run,
    require_packager,
    run_name,
    version_description,
)


@dataclass
class TrainingResult:
    metrics: dict[str, Any]
    model_dir: Path
    tracking: dict[str, Any]
    oof: pd.DataFrame


@dataclass
class InputSummary:
    """What a training run records about its input tables besides their files' fingerprint.

    Attributes
    ----------
    rows
        Rows kept by validation, per table (``profiles``, ``posts``).
    date_range
        Earliest and latest post time, or None without posts.
    """

    rows: dict[str, int]
    date_range: tuple[pd.Timestamp, pd.Timestamp] | None

    @classmethod
    def of(cls, data: ValidatedData) -> InputSummary:
        """The summary of validated data held in memory (the pandas engine)."""
        times = data.posts["posted_at"]
        return cls(
            {"profiles": len(data.profiles), "posts": len(data.posts)},
            (times.min(), times.max()) if len(times) else None,
        )


class ProgressPrinter:
    """Step messages with elapsed time on stderr, so long runs show where they are.

    ``steps(task, done, total)``, if given, gets the counts of the long loops
    (:func:`training.evaluation.report_step`): the ``engage`` command's progress bars.
    """

    def __init__(
        self, stream: Any = None, steps: Callable[[str, int, int], None] | None = None
    ) -> None:
        self.start = time.perf_counter()
        self.stream = stream  # None: sys.stderr as it is when a message is printed
        self.steps = steps

    def __call__(self, message: str) -> None:
        print(
            f"[{time.perf_counter() - self.start:6.1f}s] {message}",
            file=self.stream or sys.stderr,
            flush=True,
        )

    def step(self, task: str, done: int, total: int) -> None:
        if self.steps is not None:
            self.steps(task, done, total)


def file_fingerprint(paths: list[Path | str]) -> str:
    """SHA-256 over the input files' names and bytes; folders and globs over every file in them.

    Remote URLs (s3://, gs://, ...) are not read twice just to hash them: their address stands in.
    """
    digest = hashlib.sha256()
    for path in paths:
        text = str(path)
        if "://" in text:
            digest.update(text.encode())
            continue
        candidates = (
            [Path(path)]
            if Path(path).is_file()
            else sorted(Path(path).rglob("*"))
            if Path(path).is_dir()
            else sorted(Path(p) for p in glob.glob(text))
        )
        for file in (c for c in candidates if c.is_file()):
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def read_campaigns(campaigns_path: Path | str, data: ValidatedData) -> pd.DataFrame:
    """The campaigns table, checked against the profiles
    (DataValidationError names file, column, rows)."""
    return validate_campaigns(
        read_table(campaigns_path), str(campaigns_path), data.profiles["influencer"]
    )


def build_examples(
    data: ValidatedData,
    config: TrainConfig,
    campaigns_path: Path | str | None,
    campaigns: pd.DataFrame | None = None,
) -> ExampleSet:
    if campaigns_path is not None:
        campaigns = read_campaigns(campaigns_path, data) if campaigns is None else campaigns
        return campaign_examples(data.profiles, data.posts, campaigns)
    return post_examples(data.profiles, data.posts, config.targets_per_influencer)


def run_training(
    data: ValidatedData,
    input_paths: dict[str, Path | str | None],
    config: TrainConfig,
    *,
    package: ModelPackager,
    campaigns_path: Path | str | None = None,
    progress: Any = None,
    examples: ExampleSet | None = None,
    fit_final: Any = None,
    summary: InputSummary | None = None,
    campaigns: pd.DataFrame | None = None,
) -> TrainingResult:
    """Build examples, evaluate, fit, save and log one model.

    ``package`` says how the saved model is logged to MLflow (a
    :data:`training.tracking.ModelPackager`: ``engage train`` passes
    :func:`serving.schema.package_model`); without one this raises TypeError before any work.

    The MLflow run starts first, so it spans the whole training, and ends ``FAILED`` if anything
    on the way fails. The model is signed and staged, logged to MLflow and registered, and only
    then published under ``config.models_dir`` (see :mod:`features.artifact`); SIGTERM or SIGINT
    on the way ends the run ``FAILED`` and leaves no model (:mod:`training.signals`).

    ``examples`` (built elsewhere), ``fit_final(examples, config)`` (instead of :func:`fit_model`)
    and ``summary`` are for :func:`training.distributed.run_training_dask`: there ``data`` holds
    only validated rows of a few influencers (for the input example and the datasets' schema)
    and ``summary`` the row counts and date range of the whole input, computed on the cluster;
    ``campaigns`` is the campaigns table the cluster already checked against every profile.
    """
    require_packager(package)
    with StopSignals() as signals:
        progress = progress or ProgressPrinter()
        model_key(create=True)  # a missing or unreadable key fails now, not after the fit
        # Checked before the MLflow run starts: a bad campaigns table is bad input, not a failed
        # run.
        if campaigns_path is not None and campaigns is None:
            campaigns = read_campaigns(campaigns_path, data)
        paths = [p for p in input_paths.values() if p is not None] + (
            [campaigns_path] if campaigns_path is not None else []
        )
        fingerprint = file_fingerprint(paths)
        facts = summary or InputSummary.of(data)
        datasets = input_datasets(
            data, input_paths, facts, campaigns_path, campaigns, sampled=summary is not None
        )
        params = config.as_params() | {
            "data_fingerprint": fingerprint,
            "training_mode": "campaigns" if campaigns_path is not None else "posts",
        }
        if campaigns_path is not None:
            params |= {
                "campaigns": str(campaigns_path),
                "campaigns_fingerprint": file_fingerprint([campaigns_path]),
            }
        uri = resolve_tracking_uri(config.tracking_uri)
        name = run_name(_platforms(data), campaigns_path is not None, datetime.now(UTC))
        progress(f"MLflow run '{name}' at {redact(uri)}")
        with TrainingRun(uri, config.experiment, name, params, datasets):
            return _train_in_run(
                data,
                config,
                campaigns_path,
                campaigns,
                package,
                progress,
                examples,
                fit_final,
                summary,
                signals,
                fingerprint,
                facts,
                datasets,
                uri,
            )


def input_datasets(
    data: ValidatedData,
    input_paths: dict[str, Path | str | None],
    facts: InputSummary,
    campaigns_path: Path | str | None,
    campaigns: pd.DataFrame | None,
    sampled: bool,
) -> list[dict[str, Any]]:
    """What MLflow's dataset inputs, the run's tags and the model's metadata record of each input
    table: name, path, fingerprint of its files, rows kept (and the posts' date range).

    ``sampled``: ``data`` is a sample of the input (Dask), so MLflow gets its schema only.
    """
    tables = [
        ("profiles", input_paths["profiles"], data.profiles),
        ("posts", input_paths["posts"], data.posts),
    ]
    datasets = [
        {
            "name": name,
            "path": str(path),
            "frame": None if sampled else frame,
            "sample": frame,
            "fingerprint": file_fingerprint([path]),
            "rows": facts.rows[name],
        }
        for name, path, frame in tables
        if path is not None
    ]
    dates = facts.date_range
    if dates and any(d["name"] == "posts" for d in datasets):
        next(d for d in datasets if d["name"] == "posts")["date_range"] = (
            f"{dates[0]} .. {dates[1]}"
        )
    if campaigns_path is not None and campaigns is not None:
        # The table whose rows are this run's examples: it must show as much as the others.
        datasets.append(
            {
                "name": "campaigns",
                "path": str(campaigns_path),
                "frame": campaigns,
                "sample": campaigns,
                "fingerprint": file_fingerprint([campaigns_path]),
                "rows": len(campaigns),
            }
        )
    return datasets


def _platforms(data: ValidatedData) -> list[str]:
    if "platform" not in data.profiles or not len(data.profiles):
        return ["instagram"] if len(data.profiles) else []
    return sorted(str(p) for p in data.profiles["platform"].dropna().unique())


def _train_in_run(
    data: ValidatedData,
    config: TrainConfig,
    campaigns_path: Path | str | None,
    campaigns: pd.DataFrame | None,
    package: ModelPackager,
    progress: Any,
    examples: ExampleSet | None,
    fit_final: Any,
    summary: InputSummary | None,
    signals: StopSignals,
    fingerprint: str,
    facts: InputSummary,
    datasets: list[dict[str, Any]],
    uri: str,
) -> TrainingResult:
    import mlflow

    if examples is None:
        progress(
            f"building examples from {len(data.profiles)} profiles and {len(data.posts)} posts"
        )
        examples = build_examples(data, config, campaigns_path, campaigns)
    if len(examples) < 50:
        raise ValueError(
            f"only {len(examples)} training examples; at least 50 are needed to train and evaluate"
        )
    progress(
        f"{len(examples)} examples ({int(examples.has_history.sum())} "
        f"with history, {int((~examples.has_history).sum())} cold start)"
    )
    mlflow.log_param("n_examples", len(examples))

    metrics, oof = cross_validate(examples, config, progress)
    holdout_metrics, holdout_model, holdout_set = time_holdout(examples, config, progress)
    metrics["time_holdout"] = holdout_metrics
    if summary is None and campaigns_path is None:  # needs every post in memory (pandas engine)
        metrics["forward"] = forward_evaluation(data, config, progress)
    review(metrics, config.interval_level)
    for warning in metrics["warnings"]:
        progress(f"warning: {warning}")

    progress("fitting the final model on all examples")
    model = (
        fit_final(examples, config) if fit_final else fit_model(examples, config, progress=progress)
    )
    dates = facts.date_range
    model.metadata.update(
        {
            "engagement_rate_definition": ER_DEFINITION,
            "target": "log ER of the influencer's next post (see engagement_rate_definition)"
            if campaigns_path is None
            else "log ER of each campaign post (see engagement_rate_definition)",
            "feature_names": model.feature_names_,
            "data_fingerprint": fingerprint,
            "data_date_range": [str(dates[0]), str(dates[1])] if dates else [],
            "training_mode": "campaigns" if campaigns_path is not None else "posts",
            "inputs": {
                d["name"]: {k: d[k] for k in ("path", "fingerprint", "rows")} for d in datasets
            },
            # Which optional columns training had: scoring notes a missing one only if so.
            "input_columns": {
                "profiles": [str(c) for c in data.profiles.columns],
                "posts": [str(c) for c in data.posts.columns],
            },
            "n_examples": len(examples),
            "n_creators": int(examples.base["influencer"].nunique()),
            "metrics": metrics,
            "git_commit": git_commit(),
            "config": config.as_params(),
            "peer_reference": peer_reference(examples),
        }
    )
    staged = stage_artifact(model, config.models_dir, model.metadata)
    try:
        # Which creators the model saw, so a later champion gate can compare on others (signed too).
        save_training_creators(staged.folder, examples.base["influencer"])
        sign_folder(staged.folder, staged.key)
        plot_files = plots.all_plots(
            model,
            oof,
            metrics,
            config.models_dir / ".plots" / staged.final.name,
            config.interval_level,
        )
        new_pred = holdout_model.predict_log(holdout_set.base)

        def champion_gate(champion_dir: Path, champion_name: str) -> GateResult | None:
            try:
                champion = load_artifact(champion_dir)
                champion_pred = champion.predict_log(holdout_set.base)
            except Exception:  # an unloadable champion cannot defend its title
                return None
            label = holdout_set.label
            return compare_on_unseen(
                lambda m: float(np.mean(np.abs(new_pred[m] - label[m]))),
                lambda m: float(np.mean(np.abs(champion_pred[m] - label[m]))),
                holdout_set.base["influencer"],
                training_creators(champion_dir),
                champion_name,
            )

        progress(f"logging the run to MLflow at {redact(uri)}")
        described = ", ".join(
            f"{d['name']} {Path(d['path']).name} ({str(d['fingerprint'])[:8]}, {d['rows']} rows)"
            for d in datasets
        )
        tracking = log_run(
            uri=uri,
            experiment=config.experiment,
            registered_model=config.registered_model,
            params={},
            datasets=[],
            metrics=metrics,
            plots=plot_files,
            staged=staged,
            package=package,
            profiles=data.profiles,
            posts=data.posts,
            holdout_score=holdout_metrics["model"]["mae_log_er"],
            promote=config.promote,
            champion_gate=champion_gate,
            description=version_description(metrics, described),
            hold=signals.hold,
        )
    finally:
        staged.discard()  # the staging folder goes, with the model unless it was published
    progress(
        f"registered {config.registered_model} v{tracking['model_version']} as "
        f"@{tracking['alias']} ({tracking['alias_reason']}); saved to {staged.final}"
    )
    return TrainingResult(metrics=metrics, model_dir=staged.final, tracking=tracking, oof=oof)


def peer_reference(examples: ExampleSet) -> dict[str, list[float]]:
    """Label quantiles per tier x niche, so serving can place a prediction among its peers."""
    frame = pd.DataFrame(
        {
            "tier": examples.base["tier"].astype(str),
            "category": examples.base["category"].astype(str),
            "label": examples.label,
        }
    )
    grid = np.linspace(0, 1, 101)
    out = {
        f"{t}/{c}": np.quantile(g["label"], grid).round(5).tolist()
        for (t, c), g in frame.groupby(["tier", "category"])
        if len(g) >= 20
    }
    out["*"] = np.quantile(frame["label"], grid).round(5).tolist()
    return out


# The figures of every block of comparison_table, in its column order.
COMPARISON_KEYS = ("mae_log_er", "spearman", "ndcg_at_10", "coverage_80", "interval_width_80")


@dataclass(frozen=True)
class ComparisonBlock:
    """One evaluation of :func:`comparison_table`: the model and each baseline on the same
    ``n`` examples (``rows`` maps a name to its metrics)."""

    name: str
    n: int
    rows: dict[str, dict[str, Any]]


def comparison_blocks(metrics: dict[str, Any]) -> list[ComparisonBlock]:
    """The evaluations of :func:`comparison_table`, each with the model beside the baselines.

    Blocks of fewer than :data:`training.checks.MIN_CHECKED` examples (TikTok has 5 creators
    whose latest target is a cold start) say nothing and are left out: their figures stay in
    ``--metrics-out``.
    """
    found = []
    if "model" in metrics:
        rows = {"model": metrics["model"], **metrics.get("baselines", {})}
        found.append(("grouped CV, all examples", rows))
    for subset, rows in (metrics.get("subsets") or {}).items():
        found.append((f"grouped CV, {subset.replace('_', ' ')}", rows))
    if "time_holdout" in metrics:
        th = metrics["time_holdout"]
        found.append(
            (
                f"time-ordered holdout (targets from {th.get('holdout_from', '?')[:10]})",
                {"model": th["model"], **th["baselines"]},
            )
        )
    blocks = []
    for name, rows in found:
        n = next(iter(rows.values())).get("n", 0)
        if n and n >= MIN_CHECKED:
            blocks.append(ComparisonBlock(name, int(n), rows))
    return blocks


def spread_coverage_lines(label: str, model: dict[str, Any]) -> list[str]:
    """The model's coverage with its creator-bootstrap interval, and by history spread
    (:func:`training.metrics.coverage_by_spread`), for one evaluation; none for metrics of
    runs from before they were measured."""
    if "coverage_80_90ci" not in model:
        return []
    lo, hi = model["coverage_80_90ci"]
    line = (
        f"\ninterval coverage ({label}): {model['coverage_80']:.3f} "
        f"(90 % interval over creators {lo:.3f} .. {hi:.3f})"
    )
    thirds = {k: v for k, v in model.get("coverage_by_spread", {}).items() if v["n"] >= MIN_CHECKED}
    if thirds:
        line += "; by history spread " + ", ".join(
            f"{name} {v['coverage_80']:.3f} (n={v['n']})" for name, v in thirds.items()
        )
    return [line]


def comparison_notes(metrics: dict[str, Any]) -> list[str]:
    """What :func:`comparison_table` says after the blocks: the forward protocol, interval
    coverage by tier, subsets without examples and the run's quality warnings."""
    lines = forward_lines(metrics["forward"]) if "forward" in metrics else []
    cov = {
        t: v
        for t, v in (metrics.get("model") or {}).get("by_tier", {}).items()
        if v.get("n", 0) >= MIN_CHECKED
    }
    if cov:
        lines.append(
            "\ninterval coverage by tier (model, grouped CV): "
            + ", ".join(f"{t} {v['coverage_80']:.3f} (n={v['n']})" for t, v in cov.items())
        )
    for label, block in (("grouped CV", metrics), ("time holdout", metrics.get("time_holdout"))):
        lines.extend(spread_coverage_lines(label, (block or {}).get("model") or {}))
    if metrics.get("dropped_subsets"):
        lines.append(f"\nno examples (left out): {', '.join(metrics['dropped_subsets'])}")
    warnings = metrics.get("warnings")
    if warnings is not None:
        lines.append(
            f"\n{len(warnings)} warning(s)"
            + (
                ":"
                if warnings
                else ": the model beats every baseline and its interval holds in every tier checked"
            )
        )
        lines.extend(f"  WARNING  {w}" for w in warnings)
    return lines


def comparison_table(metrics: dict[str, Any], title: str | None = None) -> str:
    """Model against baselines as plain text, one block per evaluation
    (:func:`comparison_blocks`), then :func:`comparison_notes`.

    ``title`` names what was evaluated (``engagement v3 @champion``).
    """
    lines = [title] if title else []
    for block in comparison_blocks(metrics):
        lines.append(f"\n{block.name} (n={block.n})")
        lines.append(f"  {'':20s}" + "".join(f"{k:>18s}" for k in COMPARISON_KEYS))
        for label, m in block.rows.items():
            lines.append(
                f"  {label:20s}"
                + "".join(f"{m.get(k, float('nan')):18.3f}" for k in COMPARISON_KEYS)
            )
    return "\n".join(lines + comparison_notes(metrics))


def forward_lines(forward: dict[str, Any]) -> list[str]:
    """The forward protocol's block of :func:`comparison_table`."""
    if "skipped" in forward:
        return [f"\nforward protocol: skipped ({forward['skipped']})"]
    lines = [
        "\nforward protocol: unseen creators, first 70 % of posts as "
        f"history, label the median of the rest (n={forward['n_creators']})",
        f"  {'':20s}{'mae_log_er':>18s}{'spearman':>18s}{'coverage_80':>18s}",
    ]
    for name in ("model", "persistence"):
        m = forward[name]
        cov = COVERAGE_KEY_FORWARD
        coverage = f"{m[cov]:18.3f}" if cov in m else f"{'':>18s}"
        lines.append(f"  {name:20s}{m['mae_log_er']:18.3f}{m['spearman']:18.3f}{coverage}")
    lo, hi = forward["mae_gain_90ci"]
    lines.append(
        f"  MAE gain over persistence {forward['mae_gain']:+.3f} "
        f"(paired bootstrap 90 % interval {lo:+.3f} .. {hi:+.3f})"
    )
    model = forward["model"]
    if f"{COVERAGE_KEY_FORWARD}_90ci" in model:
        c_lo, c_hi = model[f"{COVERAGE_KEY_FORWARD}_90ci"]
        lines.append(
            f"  coverage_80 {model[COVERAGE_KEY_FORWARD]:.3f}: of each later post at least "
            f"{MIN_POST_AGE.days} days old at the scrape (90 % interval {c_lo:.3f} .. "
            f"{c_hi:.3f}); of every later post {model['coverage_80_posts']:.3f}, younger posts "
            "still collecting engagement"
        )
    return lines
