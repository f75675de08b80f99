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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.artifact import load_artifact, model_key, redact, stage_artifact
from features.contract import ValidatedData, read_table
from features.engagement import ER_DEFINITION
from training import plots
from training.config import TrainConfig
from training.evaluation import cross_validate, fit_model, time_holdout
from training.examples import (
    ExampleSet,
    campaign_examples,
    post_examples,
    validate_campaigns,
)
from training.forward import forward_evaluation
from training.signals import StopSignals
from training.tracking import input_example, log_run, tracking_uri


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
        return cls({"profiles": len(data.profiles), "posts": len(data.posts)}, (times.min(), times.max()) if len(times) else None)


class ProgressPrinter:
    """Step messages with elapsed time on stderr, so long runs show where they are."""

    def __init__(self, stream: Any = sys.stderr):
        self.start = time.perf_counter()
        self.stream = stream

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=self.stream, flush=True)


def file_fingerprint(paths: list[Path]) -> str:
    """SHA-256 over the input files' names and bytes; folders and globs over every file in them.

    Remote URLs (s3://, gs://, ...) are not read twice just to hash them: their address stands in.
    """
    digest = hashlib.sha256()
    for path in paths:
        text = str(path)
        if "://" in text:
            digest.update(text.encode())
            continue
        candidates = [Path(path)] if Path(path).is_file() else sorted(Path(path).rglob("*")) if Path(path).is_dir() else sorted(Path(p) for p in glob.glob(text))
        for file in (c for c in candidates if c.is_file()):
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_examples(data: ValidatedData, config: TrainConfig, campaigns_path: Path | None) -> ExampleSet:
    if campaigns_path is not None:
        campaigns = validate_campaigns(read_table(campaigns_path), str(campaigns_path), data.profiles["influencer"])
        return campaign_examples(data.profiles, data.posts, campaigns)
    return post_examples(data.profiles, data.posts, config.targets_per_influencer)


def run_training(
    data: ValidatedData,
    input_paths: dict[str, Path | str | None],
    config: TrainConfig,
    *,
    campaigns_path: Path | None = None,
    progress: Any = None,
    examples: ExampleSet | None = None,
    fit_final: Any = None,
    summary: InputSummary | None = None,
) -> TrainingResult:
    """Build examples, evaluate, fit, save and log one model.

    The model is signed and staged, logged to MLflow and registered, and only then published
    under ``config.models_dir`` (see :mod:`features.artifact`); SIGTERM or SIGINT on the way ends
    the MLflow run ``FAILED`` and leaves no model (:mod:`training.signals`).

    ``examples`` (built elsewhere), ``fit_final(examples, config)`` (instead of :func:`fit_model`)
    and ``summary`` are for :func:`training.distributed.run_training_dask`: there ``data`` holds
    only validated rows of a few influencers (for the input example and the datasets' schema)
    and ``summary`` the row counts and date range of the whole input, computed on the cluster.
    """
    with StopSignals() as signals:
        return _run_training(data, input_paths, config, campaigns_path, progress, examples, fit_final, summary, signals)


def _run_training(
    data: ValidatedData,
    input_paths: dict[str, Path | str | None],
    config: TrainConfig,
    campaigns_path: Path | None,
    progress: Any,
    examples: ExampleSet | None,
    fit_final: Any,
    summary: InputSummary | None,
    signals: StopSignals,
) -> TrainingResult:
    progress = progress or ProgressPrinter()
    model_key(create=True)  # a missing or unreadable key fails now, not after the fit
    if examples is None:
        progress(f"building examples from {len(data.profiles)} profiles and {len(data.posts)} posts")
        examples = build_examples(data, config, campaigns_path)
    if len(examples) < 50:
        raise ValueError(f"only {len(examples)} training examples; at least 50 are needed to train and evaluate")
    progress(f"{len(examples)} examples ({int(examples.has_history.sum())} with history, {int((~examples.has_history).sum())} cold start)")

    metrics, oof = cross_validate(examples, config, progress)
    holdout_metrics, _, holdout_set = time_holdout(examples, config, progress)
    metrics["time_holdout"] = holdout_metrics
    if summary is None and campaigns_path is None:  # needs every post in memory (pandas engine)
        metrics["forward"] = forward_evaluation(data, config, progress)

    progress("fitting the final model on all examples")
    model = (fit_final or fit_model)(examples, config)
    paths = [p for p in input_paths.values() if p is not None]
    fingerprint = file_fingerprint(paths)
    facts = summary or InputSummary.of(data)
    dates = facts.date_range
    model.metadata.update(
        {
            "engagement_rate_definition": ER_DEFINITION,
            "target": "log ER of the influencer's next post (see engagement_rate_definition)",
            "feature_names": model.feature_names_,
            "data_fingerprint": fingerprint,
            "data_date_range": [str(dates[0]), str(dates[1])] if dates else [],
            "n_examples": len(examples),
            "metrics": metrics,
            "git_commit": git_commit(),
            "config": config.as_params(),
            "peer_reference": peer_reference(examples),
        }
    )
    staged = stage_artifact(model, config.models_dir, model.metadata)
    try:
        plot_files = plots.all_plots(model, oof, metrics, config.models_dir / ".plots" / staged.final.name, config.interval_level)

        def champion_score(champion_dir: Path) -> float | None:
            try:
                champion = load_artifact(champion_dir)
            except Exception:  # an unloadable champion cannot defend its title
                return None
            return float(np.mean(np.abs(champion.predict_log(holdout_set.base) - holdout_set.label)))

        progress(f"logging the run to MLflow at {redact(tracking_uri(config.tracking_uri))}")
        # With a summary, ``data`` is a sample: MLflow gets its schema, not a profile of a few rows.
        datasets = [
            {"name": name, "path": str(path), "frame": None if summary else frame, "sample": frame, "fingerprint": file_fingerprint([path]), "rows": facts.rows[name]}
            for name, path, frame in (("profiles", input_paths["profiles"], data.profiles), ("posts", input_paths["posts"], data.posts))
            if path is not None
        ]
        if datasets and dates:
            datasets[-1]["date_range"] = f"{dates[0]} .. {dates[1]}"
        tracking = log_run(
            uri=tracking_uri(config.tracking_uri),
            experiment=config.experiment,
            registered_model=config.registered_model,
            params=config.as_params() | {"n_examples": len(examples), "data_fingerprint": fingerprint},
            datasets=datasets,
            metrics=metrics,
            plots=plot_files,
            staged=staged,
            example=input_example(data.profiles, data.posts),
            holdout_score=holdout_metrics["model"]["mae_log_er"],
            promote=config.promote,
            champion_score=champion_score,
            hold=signals.hold,
        )
    finally:
        staged.discard()  # the staging folder goes, with the model unless it was published
    progress(f"registered {config.registered_model} v{tracking['model_version']} as @{tracking['alias']} ({tracking['alias_reason']}); saved to {staged.final}")
    return TrainingResult(metrics=metrics, model_dir=staged.final, tracking=tracking, oof=oof)


def peer_reference(examples: ExampleSet) -> dict[str, list[float]]:
    """Label quantiles per tier x niche, so serving can place a prediction among its peers."""
    frame = pd.DataFrame({"tier": examples.base["tier"].astype(str), "category": examples.base["category"].astype(str), "label": examples.label})
    grid = np.linspace(0, 1, 101)
    out = {f"{t}/{c}": np.quantile(g["label"], grid).round(5).tolist() for (t, c), g in frame.groupby(["tier", "category"]) if len(g) >= 20}
    out["*"] = np.quantile(frame["label"], grid).round(5).tolist()
    return out


# Subsets smaller than this are left out of the printed table.
MIN_PRINTED_SUBSET = 20


def comparison_table(metrics: dict[str, Any]) -> str:
    """Model against baselines, one block per subset, as plain text."""
    keys = ["mae_log_er", "spearman", "ndcg_at_10", "coverage_80", "interval_width_80"]
    lines = []

    def block(title: str, rows: dict[str, dict[str, Any]]) -> None:
        n = next(iter(rows.values())).get("n", "")
        lines.append(f"\n{title} (n={n})")
        lines.append(f"  {'':20s}" + "".join(f"{k:>18s}" for k in keys))
        for name, m in rows.items():
            lines.append(f"  {name:20s}" + "".join(f"{m.get(k, float('nan')):18.3f}" for k in keys))

    block("grouped CV, all examples", {"model": metrics["model"], **metrics["baselines"]})
    for subset, rows in metrics["subsets"].items():
        # A handful of rows (TikTok has 5 creators whose latest target is a cold start) says
        # nothing; the figures stay in --metrics-out.
        if next(iter(rows.values())).get("n", 0) >= MIN_PRINTED_SUBSET:
            block(f"grouped CV, {subset.replace('_', ' ')}", rows)
    if "time_holdout" in metrics:
        th = metrics["time_holdout"]
        block(f"time-ordered holdout (targets from {th.get('holdout_from', '?')[:10]})", {"model": th["model"], **th["baselines"]})
    if "forward" in metrics:
        lines.extend(forward_lines(metrics["forward"]))
    cov = metrics["model"]["by_tier"]
    lines.append("\ninterval coverage by tier (model, grouped CV): " + ", ".join(f"{t} {v['coverage_80']:.3f}" for t, v in cov.items()))
    return "\n".join(lines)


def forward_lines(forward: dict[str, Any]) -> list[str]:
    """The forward protocol's block of :func:`comparison_table`."""
    if "skipped" in forward:
        return [f"\nforward protocol: skipped ({forward['skipped']})"]
    lines = [
        f"\nforward protocol: unseen creators, first 70 % of posts as history, label the median of the rest (n={forward['n_creators']})",
        f"  {'':20s}{'mae_log_er':>18s}{'spearman':>18s}{'coverage_80_posts':>20s}",
    ]
    for name in ("model", "persistence"):
        m = forward[name]
        cov = f"{m['coverage_80_posts']:20.3f}" if "coverage_80_posts" in m else f"{'':>20s}"
        lines.append(f"  {name:20s}{m['mae_log_er']:18.3f}{m['spearman']:18.3f}{cov}")
    lo, hi = forward["mae_gain_90ci"]
    lines.append(f"  MAE gain over persistence {forward['mae_gain']:+.3f} (paired bootstrap 90 % interval {lo:+.3f} .. {hi:+.3f})")
    return lines
