"""Subcommands beyond the foundation: train, evaluate and promote."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engage.common import (
    SEED,
    UsageError,
    add_data_arguments,
    add_engine_arguments,
    check_output_file,
    check_output_folder,
    int_at_least,
    load_inputs,
    resolve_data_paths,
    uses_dask,
)
from engage.scale_commands import train_on_dask
from features.outputs import write_text


def _write_json(data: dict[str, Any], path: Path) -> None:
    write_text(path, json.dumps(data, indent=2, default=str))


def cmd_train(args: argparse.Namespace) -> int:
    from training.config import TrainConfig
    from training.signals import TrainingInterrupted
    from training.train import comparison_table, run_training

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
    profiles, posts = resolve_data_paths(args)
    try:
        if uses_dask(args):
            result = train_on_dask(args, config)
        else:
            data = load_inputs(args)
            # Cross-validation folds are groups of creators: each fold needs one at least.
            creators = int(data.posts["influencer"].nunique())
            if args.folds > creators:
                raise UsageError(
                    f"--folds {args.folds}: only {creators} influencers "
                    f"have posts; use at most {creators} folds (5 is usual)"
                )
            result = run_training(
                data, {"profiles": profiles, "posts": posts}, config, campaigns_path=args.campaigns
            )
    except TrainingInterrupted as exc:
        print(f"engage train: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.metrics_out:
        _write_json(result.metrics, args.metrics_out)
    tracking = result.tracking
    print(
        comparison_table(
            result.metrics,
            f"{config.registered_model} v{tracking['model_version']} "
            f"@{tracking['alias']} ({tracking['alias_reason']})",
        )
    )
    print(
        f"\nmodel saved to {result.model_dir}; MLflow run {result.tracking['run_id']}, "
        f"{config.registered_model} v{result.tracking['model_version']} @{result.tracking['alias']}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from serving.identity import identify
    from serving.predictor import load_model
    from training.checks import review
    from training.config import TrainConfig
    from training.evaluation import evaluate_model
    from training.forward import evaluate_forward_all
    from training.train import ProgressPrinter, build_examples, comparison_table

    check_output_file(args.metrics_out, "--metrics-out")
    check_output_file(args.rejects, "--rejects")
    predictor = load_model(args.model, models_dir=args.models_dir, tracking_uri=args.tracking_uri)
    name = identify(args.model, predictor, args.tracking_uri).label
    config = TrainConfig(seed=args.seed)
    data = load_inputs(args)
    examples = build_examples(data, config, args.campaigns)
    metrics = evaluate_model(predictor.model, examples, config, ProgressPrinter())
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
    print(
        comparison_table(
            metrics,
            f"{name} (saved model {predictor.version}) on {len(examples)} "
            "examples; baselines fitted out of fold on the same data",
        )
    )
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
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


def register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the model, evaluate it against baselines, save it and log it to MLflow"
    )
    add_data_arguments(p)
    p.add_argument(
        "--campaigns", type=Path, help="campaign results table: one example per campaign post"
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )
    p.add_argument("--experiment", default="engage", help="MLflow experiment name")
    p.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="where model folders are saved"
    )
    p.add_argument("--metrics-out", type=Path, help="write every metric as JSON here")
    p.add_argument("--seed", type=SEED, default=0, help="random seed, 0 to 2**32 - 1")
    p.add_argument(
        "--tune",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="run N Optuna trials on the training folds only",
    )
    p.add_argument(
        "--folds", type=int_at_least(2), default=5, help="grouped cross-validation folds"
    )
    p.add_argument(
        "--targets-per-influencer",
        type=int_at_least(0),
        default=0,
        help="targets per influencer: its latest N mature posts "
        "(default 0: every mature post, rolling cutoffs)",
    )
    p.add_argument(
        "--promote",
        action="store_true",
        help="make this version the champion even if it does not beat the current one",
    )
    p.add_argument(
        "--rejects", type=Path, help="write the rows set aside, with their reasons, to this CSV"
    )
    add_engine_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate", help="score a saved model on new data with the same metrics and baselines"
    )
    p.add_argument(
        "--model",
        required=True,
        help="models/<version> folder, 'latest', or an MLflow URI like models:/engagement@champion",
    )
    add_data_arguments(p)
    p.add_argument(
        "--campaigns", type=Path, help="campaign results table: one example per campaign post"
    )
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ references")
    p.add_argument("--metrics-out", type=Path, help="write every metric as JSON here")
    p.add_argument("--seed", type=SEED, default=0, help="random seed, 0 to 2**32 - 1")
    p.add_argument(
        "--rejects", type=Path, help="write the rows set aside, with their reasons, to this CSV"
    )
    p.set_defaults(func=cmd_evaluate)


def register_promote(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "promote",
        help="move the champion alias to a registered version: verified, and only if "
        "it beats the champion on creators neither trained on (or --force --reason)",
        description="Verify the version's signed files, then compare it with the current "
        "champion on the examples of creators neither model was trained on "
        "(--profiles/--posts, default the embedded data); it becomes champion only if "
        "its MAE is lower. --force --reason TEXT skips the comparison and records why.",
    )
    p.add_argument("version", help="registered version number (as in `engagement v3`)")
    add_data_arguments(p)
    p.add_argument(
        "--registered-model",
        default="engagement",
        help="registered model name (default: engagement)",
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)",
    )
    p.add_argument(
        "--force", action="store_true", help="promote without the comparison (needs --reason)"
    )
    p.add_argument(
        "--reason", help="with --force: why, recorded on the version and in the alias history"
    )
    p.add_argument(
        "--rejects", type=Path, help="write the rows set aside, with their reasons, to this CSV"
    )
    p.set_defaults(func=cmd_promote)
