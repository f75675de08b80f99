"""Scale-out benchmark: features and batch scoring
on a local Dask cluster, beside the pandas engine.

For each size (synthetic posts, ~20 per influencer with posts) it writes a folder of Parquet
files (one per ~1M posts; not timed; :mod:`features.synth`, fitted on the embedded data) and
runs, each on a fresh local cluster (``--workers`` single-threaded worker processes with
``--memory-limit`` each, spilling to disk past it):

features
    :func:`features.distributed.write_features_dask`: read, hash-partition by influencer,
    validate and compute the point-in-time features per bucket, write Parquet parts.
score
    :func:`serving.distributed.score_dask` with a small model trained here on the embedded
    data (reasons off: ``explain=False``), writing Parquet parts.

Reported: wall time, throughput (posts/s) and each worker's peak resident memory (VmHWM of
the worker process, which a nanny restarts if it passes 95 % of the limit: restarts are
reported too). The pandas engine (read everything, ``validate``, ``compute_features`` /
``Predictor.score``, in one process) runs in a child process at sizes up to ``--pandas-max``;
its peak is that process's VmHWM.

Synthetic data is for speed only. Usage::

    python benchmarks/scale.py [--sizes 1000000 10000000 50000000] [--workers 2] \\
        [--memory-limit 1.5GB]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, this folder is first on sys.path and benchmarks/features.py would shadow
# the features package: put the repository root there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import pandas as pd  # noqa: E402

NOW = pd.Timestamp("2026-01-01", tz="UTC")
POSTS_PER_FILE = 1_000_000
POSTS_PER_INFLUENCER = 20.0


def peak_rss_bytes() -> int:
    """This process's own peak resident set size (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------- data


def write_data(n_posts: int, folder: Path, seed: int = 0) -> Path:
    """Synthetic profiles/ and posts/ folders of Parquet files with about ``n_posts`` posts."""
    import pyarrow.parquet as pq

    from engage.cli import embedded_posts, embedded_profiles
    from features.contract import load_and_validate
    from features.synth import _arrow_table, fit_synth_params, generate

    done = folder / "DONE"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "profiles").mkdir(parents=True)
    (folder / "posts").mkdir()
    reference = load_and_validate(embedded_profiles(), embedded_posts())
    params = fit_synth_params(reference.profiles, reference.posts)
    n_files = max(1, round(n_posts / POSTS_PER_FILE))
    for k in range(n_files):
        profiles, posts = generate(
            params,
            n_influencers=int(POSTS_PER_FILE / POSTS_PER_INFLUENCER)
            if n_files > 1
            else int(n_posts / POSTS_PER_INFLUENCER),
            seed=seed + k,
            posts_per_influencer=POSTS_PER_INFLUENCER,
        )
        # Each chunk numbers its influencers from 1: make the keys unique across chunks.
        for frame in (profiles, posts):
            frame["influencer"] = f"c{k:03d}_" + frame["influencer"].astype(str)
        # Row groups of 100k rows, so that Dask can split a file into partitions a worker can hold.
        pq.write_table(
            _arrow_table(profiles),
            folder / "profiles" / f"part-{k:03d}.parquet",
            row_group_size=100_000,
        )
        pq.write_table(
            _arrow_table(posts), folder / "posts" / f"part-{k:03d}.parquet", row_group_size=100_000
        )
    done.write_text("")
    return folder


def count_posts(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(
        pq.ParquetFile(f).metadata.num_rows for f in sorted((folder / "posts").glob("*.parquet"))
    )


def train_model(folder: Path) -> Path:
    """A small model on the embedded data, saved once
    (scoring speed does not depend on its quality)."""
    from engage.cli import embedded_posts, embedded_profiles
    from features.artifact import complete_versions, save_artifact
    from features.contract import load_and_validate
    from training.config import TrainConfig
    from training.evaluation import fit_model
    from training.examples import post_examples

    models = folder / "models"
    if complete_versions(models):
        return complete_versions(models)[-1]
    data = load_and_validate(embedded_profiles(), embedded_posts())
    model = fit_model(
        post_examples(data.profiles, data.posts), TrainConfig(num_boost_round=300, n_topics=12)
    )
    return save_artifact(model, models, model.metadata)


# --------------------------------------------------------------------------- runs


def run_dask(
    stage: str,
    data: Path,
    out: Path,
    model_dir: Path,
    workers: int,
    memory_limit: str,
    partitions: int,
) -> dict[str, object]:
    from features.distributed import dask_client, read_parquet_any, write_features_dask
    from serving.distributed import score_dask

    shutil.rmtree(out, ignore_errors=True)
    spill = out.parent / f"{out.name}-spill"
    with dask_client(
        n_workers=workers, memory_limit=memory_limit, local_directory=str(spill)
    ) as client:
        profiles = read_parquet_any(data / "profiles", engine="dask")
        posts = read_parquet_any(data / "posts", engine="dask")
        start = time.perf_counter()
        if stage == "features":
            rows, _ = write_features_dask(
                profiles, posts, out, as_of=NOW, now=NOW, npartitions=partitions
            )
        else:
            from serving.predictor import load_model

            rows, _ = score_dask(
                load_model(model_dir),
                profiles,
                posts,
                out,
                as_of=NOW,
                now=NOW,
                npartitions=partitions,
                explain=False,
            )
        seconds = time.perf_counter() - start
        peaks = client.run(peak_rss_bytes)
        alive = len(client.scheduler_info()["workers"])
    shutil.rmtree(spill, ignore_errors=True)
    return {
        "seconds": seconds,
        "rows": rows,
        "peak_per_worker_gb": sorted(round(v / 1e9, 2) for v in peaks.values()),
        "workers_alive": alive,
    }


def run_pandas_child(stage: str, data: Path, model_dir: Path) -> dict[str, object]:
    """In this (child) process: the pandas engine end to end."""
    from features.aggregate import compute_features, examples_at
    from features.contract import validate
    from features.distributed import read_parquet_any

    start = time.perf_counter()
    profiles, posts = read_parquet_any(data / "profiles"), read_parquet_any(data / "posts")
    if stage == "features":
        clean = validate(profiles, posts, now=NOW)
        rows = len(compute_features(clean.profiles, clean.posts, examples_at(clean.profiles, NOW)))
    else:
        from serving.predictor import load_model

        rows = len(load_model(model_dir).score(profiles, posts, NOW, now=NOW, explain=False).table)
    return {
        "seconds": time.perf_counter() - start,
        "rows": rows,
        "peak_gb": round(peak_rss_bytes() / 1e9, 2),
    }


def run_pandas(stage: str, data: Path, model_dir: Path) -> dict[str, object]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        stage,
        "--child-data",
        str(data),
        "--child-model",
        str(model_dir),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 50_000_000], help="posts"
    )
    parser.add_argument(
        "--stages", nargs="+", choices=["features", "score"], default=["features", "score"]
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1.5GB", help="per worker")
    parser.add_argument(
        "--posts-per-partition",
        type=int,
        default=150_000,
        help="sets the number of influencer buckets",
    )
    parser.add_argument(
        "--pandas-max", type=int, default=10_000_000, help="largest size for the pandas engine"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("build/scale"))
    parser.add_argument("--child", choices=["features", "score"], help=argparse.SUPPRESS)
    parser.add_argument("--child-data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_pandas_child(args.child, args.child_data, args.child_model)))
        return

    model_dir = train_model(args.out_dir) if "score" in args.stages else Path()
    print(f"{args.workers} workers x {args.memory_limit}, 1 thread each; scoring without reasons")
    print(
        f"{'posts':>11s} {'stage':>8s} {'engine':>6s} "
        f"{'seconds':>8s} {'posts/s':>10s} {'rows':>9s}  peak memory"
    )
    for size in args.sizes:
        data = write_data(size, args.out_dir / f"data-{size}")
        n_posts = count_posts(data)
        partitions = max(args.workers, -(-n_posts // args.posts_per_partition))
        for stage in args.stages:
            r = run_dask(
                stage,
                data,
                args.out_dir / f"out-{stage}-{size}",
                model_dir,
                args.workers,
                args.memory_limit,
                partitions,
            )
            print(
                f"{n_posts:>11d} {stage:>8s} {'dask':>6s} {r['seconds']:>8.1f} "
                f"{n_posts / r['seconds']:>10.0f} {r['rows']:>9d}  per worker "
                f"{r['peak_per_worker_gb']} GB ({r['workers_alive']} alive)",
                flush=True,
            )
            if size <= args.pandas_max:
                p = run_pandas(stage, data, model_dir)
                if "error" in p:
                    print(
                        f"{n_posts:>11d} {stage:>8s} {'pandas':>6s} failed: {p['error']}",
                        flush=True,
                    )
                else:
                    print(
                        f"{n_posts:>11d} {stage:>8s} {'pandas':>6s} "
                        f"{p['seconds']:>8.1f} {n_posts / p['seconds']:>10.0f} "
                        f"{p['rows']:>9d}  one process {p['peak_gb']} GB",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
