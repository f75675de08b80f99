"""Each hand-written piece of the feature engine against the plainest engine doing the same job.

For the synthetic data sets of ``benchmarks/features.py`` (``--sizes``, posts) it times every
piece below in its own variants, each run in a fresh Python process that first loads the piece's
inputs (not timed) and then measures the piece alone: seconds, and the peak memory it adds (the
process's peak resident set after the run minus its resident set before; the peak is reset once
the inputs are loaded). Rounds run every variant in turn, so the load of a shared machine changes
under all of them alike; the fastest run and the highest peak are reported.

A piece earns its lines when it is more than ``KEEP_RATIO`` times faster or leaner than the best
engine variant at every size; ``--check`` first asks every variant for the same result on the
smallest data set (this script then reports like for like).

Pieces (``ours`` is the code in ``features/``):

sort_key
    ``engine.stable_order`` (example, time and row packed into one uint64, sorted as numbers)
    against ``np.lexsort`` and Polars' stable multi-column sort.
segments
    ``Segments`` reductions over runs of sorted rows (sum, mean, std, median, max, last, masked
    mean) against a pandas groupby and a Polars group_by over the same runs.
take_threads
    ``engine.take_rows`` (column by column) against pandas' ``DataFrame.take`` and against
    a thread per column (``threads``: how it was before this benchmark replaced it).
lookup
    ``keys.positions_in`` (arrow's ``index_in``; above ``PARALLEL_LOOKUP_ROWS`` in even slices,
    one thread each) against ``pd.Index.get_indexer``, a Polars left join and itself in one
    thread over the column's chunks.
all_distinct
    ``Series.is_unique`` against arrow's ``count_distinct`` (``arrow``: the replaced
    ``keys.all_distinct``).
history
    ``aggregate.history_posts`` (hash lookup and packed sort instead of a merge) against the plain
    pandas merge, filter and ``sort_values``.
tag_hashing
    the hashtag statistics' pair counting in cache-sized slices (``HASHTAG_HASH_TAGS``) against
    one pass per chunk and a Polars group_by.
text_hashes
    the contract's duplicate-key check on 64-bit text hashes (``keys.text_hashes``) against
    pandas' ``duplicated`` and Polars' ``is_duplicated``.
byte_scan
    the contract's byte-buffer scan for hashtag cells to rewrite (``_rewrite_candidates``) against
    arrow's regex match.
allocator
    read + validate + ``compute_features`` against the same with arrow's allocator cache released
    between the steps (``release``: the replaced ``features/memory.py``).

Usage: ``python benchmarks/engine_pieces.py [--sizes 1000000 10000000] [--pieces ...] [--check]``
(the data are made by ``benchmarks/features.py``, or here when missing). Sizes below
``TIMED_POSTS`` are timed per call over many calls: ``--sizes 20`` is one candidate's history.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from benchmarks.common import json_from_child  # noqa: E402

KEEP_RATIO = 1.3
SEED = 0
# Below this many posts one call is too short to time: a variant runs this many posts' worth of
# calls (20 posts: 50,000 calls) and reports the time per call. The small sizes are what a
# request to score one candidate does, where a piece's fixed cost per call is what counts.
TIMED_POSTS = 1_000_000


def rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Reset this process's peak resident set (VmHWM) to its current one (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


# --------------------------------------------------------------------------- inputs


def read_data(folder: Path) -> tuple[Any, Any]:
    from features.contract import read_table

    return read_table(folder / "profiles.parquet"), read_table(folder / "posts.parquet")


def example_and_time(folder: Path) -> dict:
    """Each post's example (its profile's row) and stored time, in the posts' order."""
    import numpy as np

    from features.keys import positions_in

    profiles, posts = read_data(folder)
    example = positions_in(profiles["influencer"], posts["influencer"]).astype(np.int64)
    return {"example": example, "t": posts["posted_at"].array.asi8.copy()}


def sorted_runs(folder: Path) -> dict:
    import numpy as np

    example = np.sort(example_and_time(folder)["example"])
    values = np.random.default_rng(SEED).normal(-3.0, 1.0, len(example))
    return {"example": example, "values": values, "mask": values > -3.0}


def history_inputs(folder: Path) -> dict:
    import pandas as pd

    from features.aggregate import examples_at, history_cutoffs

    profiles, posts = read_data(folder)
    cutoff = posts["posted_at"].max() + pd.Timedelta(seconds=1)
    examples = history_cutoffs(examples_at(profiles, cutoff))
    followers = profiles["followers"].to_numpy(dtype="float64")
    return {"posts": posts, "examples": examples, "followers": followers}


def tag_inputs(folder: Path) -> dict:
    from features.aggregate import history_posts

    given = history_inputs(folder)
    hist = history_posts(given["posts"], given["examples"], given["followers"])
    return {
        "example": hist["example"].to_numpy(),
        "source_row": hist["source_row"].to_numpy(),
        "n_examples": len(given["examples"]),
        "hashtags": given["posts"]["hashtags"],
    }


def take_inputs(folder: Path) -> dict:
    import numpy as np

    from features.aggregate import HISTORY_INPUT_COLUMNS

    _, posts = read_data(folder)
    cols = [c for c in posts.columns if c in HISTORY_INPUT_COLUMNS]
    rows = np.random.default_rng(SEED).permutation(len(posts))
    return {"frame": posts, "cols": cols, "rows": rows}


def lookup_inputs(folder: Path) -> dict:
    profiles, posts = read_data(folder)
    return {"keys": profiles["influencer"], "values": posts["influencer"]}


def key_inputs(folder: Path) -> dict:
    _, posts = read_data(folder)
    return {"frame": posts[["influencer", "post_id"]]}


def hashtag_text(folder: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pq.read_table(folder / "posts.parquet", columns=["hashtags"])["hashtags"]
    return {"text": pa.chunked_array([c.cast(pa.large_string()) for c in column.chunks])}


def pipeline_inputs(folder: Path) -> dict:
    return {"folder": folder}


# --------------------------------------------------------------------------- variants


def sort_ours(example, t):
    from features.engine import stable_order

    return stable_order(example, t)


def sort_numpy(example, t):
    import numpy as np

    return np.lexsort((t, example))


def sort_polars(example, t):
    import polars as pl

    frame = pl.DataFrame({"e": example, "t": t}).with_row_index("row")
    return frame.sort(["e", "t"], maintain_order=True)["row"].to_numpy()


def segments_ours(example, values, mask):
    from features.segments import Segments

    seg = Segments.of_sorted(example)
    return [
        seg.sum(values),
        seg.mean(values),
        seg.std(values),
        seg.median(values),
        seg.max(values),
        seg.last(values),
        seg.masked_mean(values, mask),
    ]


def segments_pandas(example, values, mask):
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"e": example, "v": values, "m": np.where(mask, values, np.nan)})
    by = frame.groupby("e", sort=False)
    stats = by["v"].agg(["sum", "mean", "std", "median", "max", "last"])
    return [*(stats[c].to_numpy() for c in stats.columns), by["m"].mean().to_numpy()]


def segments_polars(example, values, mask):
    import polars as pl

    frame = pl.DataFrame({"e": example, "v": values, "m": mask})
    v = pl.col("v")
    stats = frame.group_by("e", maintain_order=True).agg(
        v.sum().alias("sum"),
        v.mean().alias("mean"),
        v.std().alias("std"),
        v.median().alias("median"),
        v.max().alias("max"),
        v.last().alias("last"),
        v.filter(pl.col("m")).mean().alias("masked"),
    )
    return [stats[c].to_numpy() for c in stats.columns[1:]]


def take_ours(frame, cols, rows):
    from features.aggregate import take_rows

    return take_rows(frame, cols, rows, source_row=rows)


def take_threads(frame, cols, rows):
    """take_rows as it was: a thread per column (numpy's take releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    with ThreadPoolExecutor(min(len(cols), os.cpu_count() or 1)) as pool:
        taken = list(pool.map(lambda col: frame[col].array.take(rows), cols))
    return pd.DataFrame({**dict(zip(cols, taken, strict=True)), "source_row": rows}, copy=False)


def take_pandas(frame, cols, rows):
    return frame[cols].take(rows).reset_index(drop=True).assign(source_row=rows)


def lookup_ours(keys, values):
    from features.keys import positions_in

    return positions_in(keys, values)


def lookup_one_thread(keys, values):
    """positions_in without its threads: arrow's lookup over the column's chunks, one by one."""
    import numpy as np
    import pyarrow.compute as pc

    from features.keys import arrow_text, own_arrow_text

    lookup = pc.SetLookupOptions(arrow_text(keys))
    parts = [pc.index_in(chunk, options=lookup) for chunk in own_arrow_text(values).chunks]
    return np.concatenate(
        [part.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp) for part in parts]
    )


def lookup_pandas(keys, values):
    import pandas as pd

    return pd.Index(keys).get_indexer(values)


def lookup_polars(keys, values):
    import polars as pl

    key_frame = pl.DataFrame({"k": pl.Series(keys)}).with_row_index("position")
    found = pl.DataFrame({"v": pl.Series(values)}).join(
        key_frame, left_on="v", right_on="k", how="left", maintain_order="left"
    )
    return found["position"].cast(pl.Int64).fill_null(-1).to_numpy()


def distinct_arrow(keys, values):
    """keys.all_distinct as it was: arrow's count_distinct on the text."""
    import pyarrow.compute as pc

    from features.keys import arrow_text

    return tuple(pc.count_distinct(arrow_text(v)).as_py() == len(v) for v in (keys, values))


def distinct_pandas(keys, values):
    return keys.is_unique, values.is_unique


def history_ours(posts, examples, followers):
    from features.aggregate import history_posts

    return history_posts(posts, examples, followers)


def history_pandas(posts, examples, followers):
    import numpy as np

    from features.aggregate import HISTORY_INPUT_COLUMNS, _with_ratios

    cols = [c for c in posts.columns if c in HISTORY_INPUT_COLUMNS]
    keys = examples[["influencer", "cutoff"]].assign(example=np.arange(len(examples)))
    hist = (
        posts[[*cols, "influencer", "post_id"]]
        .assign(source_row=np.arange(len(posts)))
        .merge(keys, on="influencer")
    )
    hist = hist[hist["posted_at"] < hist["cutoff"]]
    hist = hist.sort_values(["example", "posted_at", "post_id"], kind="stable")
    hist = hist.drop(columns=["influencer", "cutoff", "post_id"]).reset_index(drop=True)
    return _with_ratios(hist, posts, followers)


def tags_ours(example, source_row, n_examples, hashtags):
    from features.aggregate import _tag_stats

    return _tag_stats(example, source_row, n_examples, hashtags, include_docs=False)[0]


def tags_one_pass(example, source_row, n_examples, hashtags):
    from features import aggregate, engine

    engine.HASHTAG_HASH_TAGS = 1 << 62
    return aggregate._tag_stats(example, source_row, n_examples, hashtags, include_docs=False)[0]


def tags_polars(example, source_row, n_examples, hashtags):
    import polars as pl

    from features.aggregate import TagStats

    posts = pl.DataFrame({"e": example, "tags": pl.Series(hashtags).gather(source_row)})
    counts = (
        posts.select("e", tag=pl.col("tags").str.split("|"))
        .explode("tag")
        .filter(pl.col("tag") != "")
        .group_by("e", "tag")
        .agg(c=pl.len())
    )
    c = pl.col("c")
    share = c / c.sum()
    stats = (
        counts.group_by("e")
        .agg(
            c.sum().alias("total"),
            pl.len().alias("distinct"),
            c.max().alias("top"),
            (-(share * share.log())).sum().alias("entropy"),
        )
        .sort("e")
    )
    return TagStats(*(stats[k].to_numpy() for k in ("e", "total", "distinct", "top", "entropy")))


def dup_ours(frame):
    import numpy as np

    from features.keys import combine_hashes, repeated, text_hashes

    post_hash = text_hashes(frame["post_id"])
    maybe = np.flatnonzero(repeated(combine_hashes(text_hashes(frame["influencer"]), post_hash)))
    out = np.zeros(len(frame), dtype=bool)
    if len(maybe):
        confirmed = frame.iloc[maybe].duplicated(keep=False).to_numpy()
        out[maybe[confirmed]] = True
    return out


def dup_pandas(frame):
    return frame.duplicated(keep=False).to_numpy()


def dup_polars(frame):
    import polars as pl

    return pl.from_pandas(frame).is_duplicated().to_numpy()


def scan_ours(text):
    from features.contract import _rewrite_candidates

    return _rewrite_candidates(text)


def scan_arrow(text):
    import numpy as np
    import pyarrow.compute as pc

    # '#', ',', whitespace and other bytes below '0', any non-ASCII character, or '||'.
    hits = pc.match_substring_regex(text, r"[\x00-/]|[^\x00-\x7f]|\|\|")
    return hits.to_numpy(zero_copy_only=False).astype(bool), bool(
        pc.all(pc.string_is_ascii(text)).as_py() is not False
    ) if len(text) else (np.zeros(0, dtype=bool), True)


def pipeline_ours(folder):
    import pandas as pd

    from features.aggregate import compute_features, examples_at
    from features.contract import read_table, validate

    profiles = read_table(folder / "profiles.parquet")
    posts = read_table(folder / "posts.parquet")
    data = validate(profiles, posts, profiles_file="profiles.parquet", posts_file="posts.parquet")
    del profiles, posts
    cutoff = data.posts["posted_at"].max() + pd.Timedelta(seconds=1)
    return compute_features(data.profiles, data.posts, examples_at(data.profiles, cutoff))


def pipeline_release(folder):
    """The pipeline as it was: arrow's allocator cache released after each Parquet read, after
    validation and before the hashtag features (features/memory.py, replaced)."""
    import pyarrow as pa

    from features import aggregate, contract

    release = pa.default_memory_pool().release_unused
    read, validate, hashtags = contract.read_table, contract.validate, aggregate.hashtag_features

    def read_then_release(*args, **kwargs):
        table = read(*args, **kwargs)
        release()
        return table

    def validate_then_release(*args, **kwargs):
        data = validate(*args, **kwargs)
        release()
        return data

    def release_then_hashtags(*args, **kwargs):
        release()
        return hashtags(*args, **kwargs)

    contract.read_table = read_then_release  # type: ignore[assignment]
    contract.validate = validate_then_release  # type: ignore[assignment]
    aggregate.hashtag_features = release_then_hashtags  # type: ignore[assignment]
    return pipeline_ours(folder)


Variant = Callable[..., Any]
PIECES: dict[str, tuple[Callable[[Path], dict], dict[str, Variant]]] = {
    "sort_key": (
        example_and_time,
        {"ours": sort_ours, "numpy_lexsort": sort_numpy, "polars": sort_polars},
    ),
    "segments": (
        sorted_runs,
        {"ours": segments_ours, "pandas": segments_pandas, "polars": segments_polars},
    ),
    "take_threads": (
        take_inputs,
        {"ours": take_ours, "threads": take_threads, "pandas": take_pandas},
    ),
    "lookup": (
        lookup_inputs,
        {
            "ours": lookup_ours,
            "one_thread": lookup_one_thread,
            "pandas": lookup_pandas,
            "polars": lookup_polars,
        },
    ),
    "all_distinct": (lookup_inputs, {"ours": distinct_pandas, "arrow": distinct_arrow}),
    "history": (history_inputs, {"ours": history_ours, "pandas": history_pandas}),
    "tag_hashing": (
        tag_inputs,
        {"ours": tags_ours, "one_pass": tags_one_pass, "polars": tags_polars},
    ),
    "text_hashes": (key_inputs, {"ours": dup_ours, "pandas": dup_pandas, "polars": dup_polars}),
    "byte_scan": (hashtag_text, {"ours": scan_ours, "arrow_regex": scan_arrow}),
    "allocator": (pipeline_inputs, {"ours": pipeline_ours, "release": pipeline_release}),
}
# The decisions: (the piece, the benchmark, the variant that is the piece, the plain variants it
# must beat). A same-code variant (one_pass, one_thread) is our code with the trick switched
# off: the plainest replacement of a trick inside code that stays. Pieces already replaced
# (threads, arrow, release) are kept here as they were, so that the decision can be measured
# again.
DECISIONS = (
    ("packed sort key (stable_order)", "sort_key", "ours", ("numpy_lexsort", "polars")),
    ("Segments", "segments", "ours", ("pandas", "polars")),
    ("thread pool over columns (take_rows)", "take_threads", "threads", ("ours",)),
    ("take_rows column by column", "take_threads", "ours", ("pandas",)),
    ("threaded lookups (positions_in)", "lookup", "ours", ("one_thread",)),
    ("arrow index_in lookup (positions_in)", "lookup", "ours", ("pandas", "polars")),
    ("arrow count_distinct (all_distinct)", "all_distinct", "arrow", ("ours",)),
    ("hash lookup instead of a merge (history_posts)", "history", "ours", ("pandas",)),
    ("hashtag hashing in cache-sized slices", "tag_hashing", "ours", ("one_pass",)),
    ("hashtag pair counting (codes + factorize)", "tag_hashing", "ours", ("polars",)),
    ("64-bit text hashes (duplicate keys)", "text_hashes", "ours", ("pandas", "polars")),
    ("byte-buffer scan (hashtag rewrite)", "byte_scan", "ours", ("arrow_regex",)),
    ("allocator releases", "allocator", "release", ("ours",)),
)


def run_variant(piece: str, variant: str, folder: Path, calls: int = 1) -> dict:
    import pandas  # noqa: F401  (every variant starts with its engine imported)
    import polars  # noqa: F401
    import pyarrow as pa

    import features.aggregate  # noqa: F401
    import features.contract  # noqa: F401

    # Polars starts its thread pool on first use: once per process, not part of any piece.
    polars.DataFrame({"a": [2, 1]}).sort("a").group_by("a").len()
    prepare, variants = PIECES[piece]
    inputs = prepare(folder)
    gc.collect()
    pa.default_memory_pool().release_unused()
    before = rss_bytes("VmRSS")
    reset_peak()
    run = variants[variant]
    started = time.perf_counter()
    for _ in range(calls):
        run(**inputs)
    seconds = (time.perf_counter() - started) / calls
    return {"seconds": seconds, "peak_added": max(0, rss_bytes("VmHWM") - before)}


def run_in_child(piece: str, variant: str, folder: Path, calls: int = 1) -> dict:
    return json_from_child(
        __file__, ["--run", piece, variant, str(folder), str(calls)], f"{piece}/{variant}"
    )


def same_result(a: Any, b: Any) -> bool:
    """Equal results (arrays exactly for integers and text, floats to 1e-9; frames column by
    column on the columns both have)."""
    import dataclasses

    import numpy as np
    import pandas as pd

    if isinstance(a, pd.DataFrame):
        common = [c for c in a.columns if c in b.columns]
        return len(a) == len(b) and all(
            same_result(a[c].to_numpy(), b[c].to_numpy()) for c in common
        )
    if dataclasses.is_dataclass(a):
        return all(
            same_result(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_result(x, y) for x, y in zip(a, b, strict=True))
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return bool(
            np.allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-9, equal_nan=True)
        )
    return bool((a == b).all())


def check(pieces: list[str], folder: Path) -> None:
    for piece in pieces:
        prepare, variants = PIECES[piece]
        inputs = prepare(folder)
        results = {name: fn(**inputs) for name, fn in variants.items()}
        reference = results["ours"]
        for name, result in results.items():
            if not same_result(reference, result):
                raise AssertionError(f"{piece}: {name} differs from ours")
        # Module settings patched by the same-code variants go back for the next piece.
        import importlib

        from features import aggregate, contract, engine, keys

        for module in (keys, engine, aggregate, contract):
            importlib.reload(module)
        print(f"  check {piece}: {len(results)} variants agree", flush=True)


def seconds_text(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}ms" if seconds < 0.1 else f"{seconds:.3f}s"


def fmt(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def decide(
    per_size: dict[int, dict[str, dict]], candidate: str, plain: tuple[str, ...]
) -> tuple[str, list[str]]:
    """keep when ``candidate`` beats every ``plain`` variant by more than KEEP_RATIO in time or in
    peak memory at every size; also each size's ratios (best plain / candidate)."""
    wins, ratios = [], []
    for size, results in sorted(per_size.items()):
        ours = results[candidate]
        best_time = min(results[v]["seconds"] for v in plain)
        best_memory = min(results[v]["peak_added"] for v in plain)
        time_ratio = best_time / ours["seconds"]
        memory_ratio = best_memory / max(ours["peak_added"], 2**20)
        wins.append(time_ratio > KEEP_RATIO or memory_ratio > KEEP_RATIO)
        label = f"{size / 1e6:g}M" if size >= 1e6 else f"{size:,}"
        ratios.append(f"{label}: {time_ratio:.2f}x time, {memory_ratio:.2f}x memory")
    return ("keep" if all(wins) else "replace"), ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--pieces", nargs="+", choices=list(PIECES), default=list(PIECES))
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the fastest run counts")
    parser.add_argument("--out-dir", type=Path, default=Path("build/bench"))
    parser.add_argument("--check", action="store_true", help="check the variants agree first")
    parser.add_argument("--run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        piece, variant, folder, calls = args.run
        print(json.dumps(run_variant(piece, variant, Path(folder), int(calls))))
        return 0

    ensure_data = _features_benchmark().ensure_data
    if args.check:
        small = 20_000
        ensure_data(small, args.out_dir, 20.0, False)
        check(args.pieces, args.out_dir / f"posts_{small}")
    table: dict[str, dict[int, dict[str, dict]]] = {piece: {} for piece in args.pieces}
    for size in sorted(args.sizes):
        ensure_data(size, args.out_dir, 20.0, False)
        folder = args.out_dir / f"posts_{size}"
        calls = max(1, TIMED_POSTS // size)
        for piece in args.pieces:
            variants = list(PIECES[piece][1])
            runs: dict[str, list[dict]] = {v: [] for v in variants}
            load = [os.getloadavg()[0]]
            for _ in range(max(1, args.repeat)):
                for variant in variants:
                    runs[variant].append(run_in_child(piece, variant, folder, calls))
                    load.append(os.getloadavg()[0])
            results = {
                v: {
                    "seconds": min(r["seconds"] for r in rs),
                    "peak_added": max(r["peak_added"] for r in rs),
                }
                for v, rs in runs.items()
            }
            table[piece][size] = results
            ours = results["ours"]
            cells = ", ".join(
                f"{v} {seconds_text(r['seconds'])} {fmt(r['peak_added'])}"
                + ("" if v == "ours" else f" ({r['seconds'] / ours['seconds']:.2f}x)")
                for v, r in results.items()
            )
            print(
                f"{size:>11,} {piece:<13} {cells}  [load {min(load):.1f}-{max(load):.1f}]",
                flush=True,
            )
    print()
    print(f"plain / piece (> {KEEP_RATIO} in time or memory at every size: keep)")
    for label, piece, candidate, plain in DECISIONS:
        if table.get(piece):
            decision, ratios = decide(table[piece], candidate, plain)
            print(f"  {label:<48} {decision:<8} {'; '.join(ratios)}")
    out = args.out_dir / "engine_pieces.json"
    out.write_text(json.dumps(table, indent=2))
    print(f"results written to {out}")
    return 0


def _features_benchmark() -> Any:
    """benchmarks/features.py as a module (its name would shadow the ``features`` package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("features_benchmark", _HERE / "features.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
