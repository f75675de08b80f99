"""Serving speed: model-only overhead, end-to-end
throughput, in-process and HTTP latency, in one run.

Stages (targets from the serving issue in brackets):

model-only
    ``EngagementModel.predict_features`` on a precomputed base frame (learned feature steps +
    booster + interval) against raw ``Booster.predict`` on the float booster matrix; the ratio is
    the pipeline's overhead [<= 1.2x]. Also the same on the precomputed booster matrix (interval
    and output frame only: the wrapper's own overhead), and the planner columns
    (``Predictor.predict_features``) without and with reasons (``pred_contrib``).
end to end
    ``Predictor.predict`` on raw synthetic tables, 100k candidates x 20 posts (validation,
    features, model, planner columns), candidates/s [>= 30k/s], with and without reasons, and a
    stage breakdown.
one candidate in process
    ``Predictor.predict`` on one raw candidate with 20 posts, median latency [< 5 ms].
over HTTP
    the same candidate posted to ``engage serve`` (MLflow scoring server), median latency [< 25 ms].

Beside ours, the raw libraries' figures for the same candidate: LightGBM's ``Booster.predict``
and ``pred_contrib`` on its one-row booster matrix, and MLflow's scoring server answering the
same request with a pyfunc that does nothing (same input signature, so the same schema checks).

The model is a small one trained with ``tests/model_fixtures.train_small`` in a temporary
folder. Synthetic data: :mod:`features.synth` fitted on the validated embedded data.

Usage: ``python benchmarks/serving.py [--candidates 100000] [--posts-per-candidate 20]
[--repeats 200] [--profile] [--skip-http] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and this file's name would then
# shadow the ``serving`` package. Put the repository root first instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from benchmarks.common import engage_serve_command  # noqa: E402

SEED = 0


def best_of(fn: Callable[[], Any], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def latencies(fn: Callable[[], Any], repeats: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def top_functions(fn: Callable[[], Any], n: int = 12) -> str:
    """cProfile of one call: the functions with the most cumulative time inside the repository."""
    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).sort_stats("tottime")
    stats.print_stats(n)
    return stream.getvalue()


def train_model(folder: Path) -> Path:
    from tests.model_fixtures import train_small, write_small_data

    data = write_small_data(folder / "data")
    return train_small(folder, data).model_dir


def synthetic(n: int, posts_per: float) -> tuple[Any, Any]:
    from engage.cli import embedded_posts, embedded_profiles
    from features.contract import load_and_validate
    from features.synth import fit_synth_params, generate

    reference = load_and_validate(embedded_profiles(), embedded_posts())
    params = fit_synth_params(reference.profiles, reference.posts)
    return generate(params, n_influencers=n, seed=SEED, posts_per_influencer=posts_per)


def model_only(predictor: Any, base: Any) -> dict[str, float]:
    model = predictor.model
    matrix = model.booster_matrix(base)  # learned steps applied, categories as codes

    def booster() -> Any:
        return model.booster_.predict(matrix, num_iteration=model.best_iteration_)

    t_booster = best_of(booster)
    t_pipeline = best_of(lambda: model.predict_features(base))
    t_transform = best_of(lambda: model.booster_matrix(base))
    t_wrapper = best_of(lambda: model.predict_features(base, matrix))
    t_planner = best_of(lambda: predictor.predict_features(base, explain=False))
    t_reasons = best_of(lambda: predictor.predict_features(base, explain=True), repeats=1)
    return {
        "rows": len(base),
        "booster_predict_s": t_booster,
        "predict_features_s": t_pipeline,
        "feature_steps_transform_s": t_transform,
        "overhead_ratio": t_pipeline / t_booster,
        "predict_features_on_booster_matrix_s": t_wrapper,
        "overhead_ratio_on_booster_matrix": t_wrapper / t_booster,
        "planner_columns_no_reasons_s": t_planner,
        "planner_columns_with_reasons_s": t_reasons,
    }


def end_to_end(predictor: Any, profiles: Any, posts: Any, as_of: Any) -> dict[str, float]:
    from features.aggregate import compute_features, examples_at
    from features.contract import validate

    n = len(profiles)
    t_full = best_of(lambda: predictor.predict(profiles, posts, as_of), repeats=1)
    t_fast = best_of(lambda: predictor.predict(profiles, posts, as_of, explain=False), repeats=1)
    # Stage breakdown (the same calls predict makes, one at a time).
    start = time.perf_counter()
    data = validate(profiles, posts)
    t_validate = time.perf_counter() - start
    start = time.perf_counter()
    base = compute_features(data.profiles, data.posts, examples_at(data.profiles, as_of))
    t_features = time.perf_counter() - start
    start = time.perf_counter()
    predictor.model.predict_features(base)
    t_model = time.perf_counter() - start
    start = time.perf_counter()
    predictor.model.contributions(base)
    t_contrib = time.perf_counter() - start
    return {
        "candidates": n,
        "posts": len(posts),
        "seconds_with_reasons": t_full,
        "candidates_per_s_with_reasons": n / t_full,
        "seconds_without_reasons": t_fast,
        "candidates_per_s_without_reasons": n / t_fast,
        "stage_validate_s": t_validate,
        "stage_compute_features_s": t_features,
        "stage_model_predict_features_s": t_model,
        "stage_pred_contrib_s": t_contrib,
    }


def served_latency(
    command_for: Callable[[int], list[str]], rows: Any, repeats: int, **popen: Any
) -> dict[str, float]:
    """Start a scoring server (``command_for(port)``) on a free port, time ``/invocations`` with
    ``rows`` and ``/ping``, and stop it."""
    from serving.rest import free_port, stop_process_group, wait_for_ping
    from serving.schema import dataframe_split

    port = free_port()
    process = subprocess.Popen(
        command_for(port),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        **popen,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        startup = wait_for_ping(url, timeout=180, process=process)
        body = json.dumps(dataframe_split(rows)).encode()

        def call() -> None:
            request = urllib.request.Request(
                f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()

        times = latencies(call, repeats)
        ping = latencies(lambda: urllib.request.urlopen(f"{url}/ping", timeout=5).read(), 50)
    finally:
        stop_process_group(process)
    return {
        "startup_s": startup,
        "median_ms": 1e3 * statistics.median(times),
        "p90_ms": 1e3 * sorted(times)[int(0.9 * len(times))],
        "ping_median_ms": 1e3 * statistics.median(ping),
    }


def http_latency(model_dir: Path, rows: Any, repeats: int) -> dict[str, float]:
    """``engage serve`` on the benchmark model."""
    return served_latency(
        functools.partial(engage_serve_command, model_dir), rows, repeats, cwd=_HERE.parent
    )


NOOP_PYFUNC = """
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class Noop(PythonModel):
    \"\"\"Answers one fixed row: what MLflow's server costs without any model work.\"\"\"

    def predict(self, context, model_input, params=None):
        return pd.DataFrame(
            {"influencer": [str(model_input["influencer"].iloc[0])], "predicted_er": [0.0]}
        )


set_model(Noop())
"""


def http_floor(folder: Path, rows: Any, repeats: int) -> dict[str, float]:
    """MLflow's scoring server on the same request with a pyfunc that does nothing, saved with our
    input signature: the least any model served this way can answer in."""
    import mlflow

    from serving.rest import serve_command, serve_env
    from serving.schema import input_signature

    code = folder / "noop_pyfunc.py"
    code.write_text(NOOP_PYFUNC)
    model = folder / "noop_model"
    mlflow.pyfunc.save_model(path=str(model), python_model=str(code), signature=input_signature())
    return served_latency(
        lambda port: serve_command(port), rows, repeats, env=serve_env(None, str(model))
    )


def one_candidate_booster(
    predictor: Any, profile: Any, posts: Any, as_of: Any, repeats: int
) -> dict[str, float]:
    """LightGBM alone on the candidate's one-row booster matrix: predict, and pred_contrib."""
    from features.aggregate import compute_features, examples_at
    from features.contract import validate

    model = predictor.model
    data = validate(profile, posts)
    matrix = model.booster_matrix(
        compute_features(data.profiles, data.posts, examples_at(data.profiles, as_of))
    )
    predict = latencies(
        lambda: model.booster_.predict(matrix, num_iteration=model.best_iteration_), repeats
    )
    contrib = latencies(
        lambda: model.booster_.predict(
            matrix, num_iteration=model.best_iteration_, pred_contrib=True
        ),
        repeats,
    )
    return {
        "booster_predict_median_ms": 1e3 * statistics.median(predict),
        "pred_contrib_median_ms": 1e3 * statistics.median(contrib),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--posts-per-candidate", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument(
        "--profile", action="store_true", help="print cProfile summaries of the slow stages"
    )
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    import pandas as pd

    from features.aggregate import compute_features, examples_at
    from features.contract import validate
    from serving.predictor import load_model
    from serving.schema import to_rest_rows

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="engage-bench-") as tmp:
        print("training the small benchmark model ...", flush=True)
        model_dir = train_model(Path(tmp))
        predictor = load_model(model_dir)
        print(
            f"generating {args.candidates} synthetic candidates "
            f"x {args.posts_per_candidate:g} posts ...",
            flush=True,
        )
        profiles, posts = synthetic(args.candidates, args.posts_per_candidate)
        as_of = posts["posted_at"].max() + pd.Timedelta(seconds=1)

        data = validate(profiles, posts)
        base = compute_features(data.profiles, data.posts, examples_at(data.profiles, as_of))
        results["model_only"] = model_only(predictor, base)
        print(json.dumps({"model_only": results["model_only"]}, indent=2), flush=True)
        del data, base

        results["end_to_end"] = end_to_end(predictor, profiles, posts, as_of)
        print(json.dumps({"end_to_end": results["end_to_end"]}, indent=2), flush=True)
        if args.profile:
            print(top_functions(functools.partial(predictor.predict, profiles, posts, as_of), 15))

        # One candidate with about N posts, as the generator's tables (typed, not text).
        counts = posts.groupby("influencer").size()
        # The candidate closest to N posts.
        name = (counts - args.posts_per_candidate).abs().idxmin()
        one_profile = profiles[profiles["influencer"] == name].reset_index(drop=True)
        one_posts = posts[posts["influencer"] == name].reset_index(drop=True)
        del profiles, posts
        single = latencies(lambda: predictor.predict(one_profile, one_posts, as_of), args.repeats)
        single_fast = latencies(
            lambda: predictor.predict(one_profile, one_posts, as_of, explain=False), args.repeats
        )
        results["one_candidate_in_process"] = {
            "posts": len(one_posts),
            "median_ms": 1e3 * statistics.median(single),
            "p90_ms": 1e3 * sorted(single)[int(0.9 * len(single))],
            "median_ms_without_reasons": 1e3 * statistics.median(single_fast),
            **one_candidate_booster(predictor, one_profile, one_posts, as_of, args.repeats),
        }
        print(
            json.dumps({"one_candidate_in_process": results["one_candidate_in_process"]}, indent=2),
            flush=True,
        )
        if args.profile:
            print(
                top_functions(
                    lambda: [predictor.predict(one_profile, one_posts, as_of) for _ in range(50)],
                    25,
                )
            )

        if not args.skip_http:
            rows = to_rest_rows(
                one_profile.assign(as_of=as_of.isoformat()),
                one_posts.assign(posted_at=one_posts["posted_at"].map(lambda t: t.isoformat())),
            )
            results["one_candidate_http"] = http_latency(model_dir, rows, args.repeats)
            results["one_candidate_http"]["mlflow_noop_model"] = http_floor(
                Path(tmp), rows, args.repeats
            )
            print(
                json.dumps({"one_candidate_http": results["one_candidate_http"]}, indent=2),
                flush=True,
            )

    one = results["one_candidate_in_process"]
    summary = [
        (
            "model-only overhead (predict_features / Booster.predict)",
            f"{results['model_only']['overhead_ratio']:.2f}x",
            "<= 1.2x",
        ),
        (
            "  the same on the precomputed booster matrix (no learned steps)",
            f"{results['model_only']['overhead_ratio_on_booster_matrix']:.2f}x",
            "<= 1.2x",
        ),
        (
            "end to end, candidates/s (with reasons)",
            f"{results['end_to_end']['candidates_per_s_with_reasons']:,.0f}",
            ">= 30,000",
        ),
        (
            "end to end, candidates/s (without reasons)",
            f"{results['end_to_end']['candidates_per_s_without_reasons']:,.0f}",
            ">= 30,000",
        ),
        (
            "one candidate in process, median",
            f"{results['one_candidate_in_process']['median_ms']:.1f} ms",
            "< 5 ms",
        ),
        (
            "  LightGBM alone: predict + pred_contrib on its one row",
            f"{one['booster_predict_median_ms'] + one['pred_contrib_median_ms']:.1f} ms",
            "(raw library)",
        ),
    ]
    if "one_candidate_http" in results:
        summary.append(
            (
                "one candidate over HTTP, median",
                f"{results['one_candidate_http']['median_ms']:.1f} ms",
                "< 25 ms",
            )
        )
        summary.append(
            (
                "  MLflow's server with a do-nothing model, same request",
                f"{results['one_candidate_http']['mlflow_noop_model']['median_ms']:.1f} ms",
                "(raw library)",
            )
        )
    print("\nsummary")
    for label, value, target in summary:
        print(
            f"  {label:<58} {value:>12}   "
            f"{target if target.startswith('(') else 'target ' + target}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
