"""``engage train``, ``evaluate`` and ``promote``: the model's life cycle."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from engage.common import (
    UsageError,
    arguments,
    check_output_file,
    check_output_folder,
    load_inputs,
    resolve_data_paths,
    uses_dask,
)
from engage.console import ProgressBars, print_table, print_text, progress_bars, rich_stdout
from engage.options import (
    MODEL_HELP,
    Campaigns,
    Engine,
    MetricsOut,
    ModelsDir,
    Partitions,
    Posts,
    Profiles,
    Rejects,
    Scheduler,
    Seed,
    TrackingUri,
    whole_number,
)
from engage.scale_commands import train_on_dask

app = typer.Typer()


def _write_json(data: dict[str, Any], path: Path) -> None:
    from features.outputs import write_text

    write_text(path, json.dumps(data, indent=2, default=str))


def show_comparison(metrics: dict[str, Any], title: str) -> None:
    """Model against baselines: rich tables on a terminal, else the plain text scripts read."""
    from training.train import (
        COMPARISON_KEYS,
        comparison_blocks,
        comparison_notes,
        comparison_table,
    )

    if not rich_stdout():
        print(comparison_table(metrics, title))
        return
    print_text(title, style="bold")
    for block in comparison_blocks(metrics):
        print_table(
            ["", *COMPARISON_KEYS],
            (
                [label, *(f"{m.get(k, float('nan')):.3f}" for k in COMPARISON_KEYS)]
                for label, m in block.rows.items()
            ),
            title=f"{block.name} (n={block.n})",
            left=[""],
        )
    for line in comparison_notes(metrics):
        print_text(line)


@app.command()
def train(
    profiles: Profiles = None,
    posts: Posts = None,
    campaigns: Campaigns = None,
    tracking_uri: TrackingUri = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "engage",
    models_dir: Annotated[Path, typer.Option(help="Where model folders are saved.")] = Path(
        "models"
    ),
    metrics_out: MetricsOut = None,
    seed: Seed = 0,
    tune: Annotated[
        int,
        typer.Option(
            parser=whole_number(0),
            metavar="<n>",
            help="Run N Optuna trials on the training folds only.",
        ),
    ] = 0,
    folds: Annotated[
        int,
        typer.Option(
            parser=whole_number(2), metavar="<int>", help="Grouped cross-validation folds."
        ),
    ] = 5,
    targets_per_influencer: Annotated[
        int,
        typer.Option(
            parser=whole_number(0),
            metavar="<int>",
            help="Targets per influencer: its latest N mature posts "
            "(0: every mature post, rolling cutoffs).",
        ),
    ] = 0,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote",
            help="Make this version the champion even if it does not beat the current one.",
        ),
    ] = False,
    rejects: Rejects = None,
    engine: Engine = "pandas",
    scheduler: Scheduler = None,
    partitions: Partitions = None,
) -> int:
    """Train the model, evaluate it against baselines, save it and log it to MLflow."""
    args = arguments(locals())
    from training.config import TrainConfig
    from training.signals import TrainingInterrupted

    config = TrainConfig(
        seed=args.seed,
        tune_trials=args.tune,
        models_dir=args.models_dir,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        promote=args.promote,
        targets_per_influencer=args.targets_per_influencer,
        n_folds=args.folds,
    )
    check_output_folder(args.models_dir, "--models-dir")
    check_output_file(args.metrics_out, "--metrics-out")
    check_output_file(args.rejects, "--rejects")
    profiles_path, posts_path = resolve_data_paths(args)
    try:
        with progress_bars() as bars:
            result = _train(args, config, profiles_path, posts_path, bars)
    except TrainingInterrupted as exc:
        print(f"engage train: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.metrics_out:
        _write_json(result.metrics, args.metrics_out)
    tracking = result.tracking
    show_comparison(
        result.metrics,
        f"{config.registered_model} v{tracking['model_version']} "
        f"@{tracking['alias']} ({tracking['alias_reason']})",
    )
    print(
        f"\nmodel saved to {result.model_dir}; MLflow run {result.tracking['run_id']}, "
        f"{config.registered_model} v{result.tracking['model_version']} @{result.tracking['alias']}"
    )
    return 0


def _train(
    args: SimpleNamespace,
    config: Any,
    profiles_path: Path,
    posts_path: Path | None,
    bars: ProgressBars,
) -> Any:
    from serving.schema import package_model
    from training.train import ProgressPrinter, run_training

    progress = ProgressPrinter(steps=bars if bars.drawn else None)
    if uses_dask(args):
        return train_on_dask(args, config, progress)
    data = load_inputs(args)
    # Cross-validation folds are groups of creators: each fold needs one at least.
    creators = int(data.posts["influencer"].nunique())
    if args.folds > creators:
        raise UsageError(
            f"--folds {args.folds}: only {creators} influencers "
            f"have posts; use at most {creators} folds (5 is usual)"
        )
    return run_training(
        data,
        {"profiles": profiles_path, "posts": posts_path},
        config,
        package=package_model,  # serving's MLflow packaging: training never imports serving
        campaigns_path=args.campaigns,
        progress=progress,
    )


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help=MODEL_HELP)],
    profiles: Profiles = None,
    posts: Posts = None,
    campaigns: Campaigns = None,
    models_dir: ModelsDir = Path("models"),
    tracking_uri: TrackingUri = None,
    metrics_out: MetricsOut = None,
    seed: Seed = 0,
    rejects: Rejects = None,
) -> int:
    """Score a saved model on new data with the same metrics and baselines."""
    args = arguments(locals())
    from serving.identity import identify
    from serving.predictor import load_model
    from training.checks import level_vs_training_peers, review, unseen_platforms
    from training.config import TrainConfig
    from training.evaluation import evaluate_model
    from training.forward import evaluate_forward_all
    from training.train import ProgressPrinter, build_examples

    check_output_file(args.metrics_out, "--metrics-out")
    check_output_file(args.rejects, "--rejects")
    predictor = load_model(args.model, models_dir=args.models_dir, tracking_uri=args.tracking_uri)
    name = identify(args.model, predictor, args.tracking_uri).label
    config = TrainConfig(seed=args.seed)
    data = load_inputs(args)
    examples = build_examples(data, config, args.campaigns)
    with progress_bars() as bars:
        progress = ProgressPrinter(steps=bars if bars.drawn else None)
        metrics = evaluate_model(predictor.model, examples, config, progress)
    unseen = unseen_platforms(predictor.model, examples.base)
    if unseen:
        metrics["unseen_platforms"] = unseen
    metrics["level_vs_training_peers"] = level_vs_training_peers(predictor.model, examples.base)
    if args.campaigns is None:
        # Every creator with enough posts is forecast forward (the saved model saw none of
        # them, if the data are new to it).
        metrics["forward"] = evaluate_forward_all(predictor.model, data, config.seed)
    metrics["evaluated_model"] = {
        "name": name,
        "reference": str(args.model),
        "version": predictor.version,
    }
    review(metrics, predictor.interval_level)
    if args.metrics_out:
        _write_json(metrics, args.metrics_out)
    show_comparison(
        metrics,
        f"{name} (saved model {predictor.version}) on {len(examples)} "
        "examples; baselines fitted out of fold on the same data",
    )
    return 0


@app.command(
    help="Move the champion alias to a registered version: verified, and only if it beats the "
    "champion on creators neither trained on (or --force --reason).\n\n"
    "Verify the version's signed files, then compare it with the current champion on the "
    "examples of creators neither model was trained on (--profiles/--posts, default the "
    "embedded data); it becomes champion only if its MAE is lower. --force --reason TEXT "
    "skips the comparison and records why.",
    short_help="Move the champion alias to a registered version, verified and gated.",
)
def promote(
    version: Annotated[
        str, typer.Argument(help="Registered version number (as in engagement v3).")
    ],
    profiles: Profiles = None,
    posts: Posts = None,
    registered_model: Annotated[str, typer.Option(help="Registered model name.")] = "engagement",
    tracking_uri: TrackingUri = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote without the comparison (needs --reason).")
    ] = False,
    reason: Annotated[
        str | None,
        typer.Option(help="With --force: why, recorded on the version and in the alias history."),
    ] = None,
    rejects: Rejects = None,
) -> int:
    args = arguments(locals())
    from training.promote import PromotionRefused, promote

    if args.force and not (args.reason or "").strip():
        raise UsageError(
            "--force needs --reason TEXT: why this version becomes "
            "champion without beating the current one (it is recorded)"
        )
    if args.reason and not args.force:
        raise UsageError("--reason is recorded with --force only; without --force the gate decides")
    data = None if args.force else load_inputs(args)
    try:
        outcome = promote(
            args.version,
            data,
            registered_model=args.registered_model,
            tracking_uri=args.tracking_uri,
            reason=args.reason if args.force else None,
        )
    except PromotionRefused as exc:
        raise UsageError(str(exc)) from None
    print(outcome)
    return 0
