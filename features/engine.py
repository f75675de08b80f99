"""The feature engine: the fast primitives :mod:`features.aggregate` computes its features with.

:mod:`features.aggregate` says what each feature is; this module (and the two it gathers,
:mod:`features.segments` and :mod:`features.keys`) is how they are computed fast and in bounded
memory at ten million posts. Each primitive has a plain pandas or numpy equivalent, named in its
docstring, that gives the same result (tests/features/test_engine.py checks them against it);
what each buys over the plainest engine is measured by ``benchmarks/engine_pieces.py`` (README,
Benchmarks), and pieces that did not earn their lines there were replaced by the plain
equivalent.

Rows and runs
    :class:`Segments` (per-example reductions over sorted runs), :func:`time_order` and
    :func:`stable_order` (the history's sort), :func:`strictly_before`, :func:`take_rows`.
Keys
    :func:`positions_in` (a hash lookup of text keys instead of a merge).
Text (kept as arrow text, never one Python string per cell)
    :func:`own_arrow_text`, :func:`text_array`, :func:`arrow_tags`, :func:`take_text`,
    :func:`whole_example_chunks`, :func:`join_per_example`, :func:`count_pairs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.keys import arrow_text, own_arrow_text, positions_in
from features.segments import Segments

__all__ = [
    "HASHTAG_HASH_TAGS",
    "Segments",
    "arrow_tags",
    "count_pairs",
    "epoch_nanoseconds",
    "join_per_example",
    "own_arrow_text",
    "positions_in",
    "stable_order",
    "strictly_before",
    "take_rows",
    "take_text",
    "text_array",
    "time_order",
    "whole_example_chunks",
]

# Items hashed per pass in count_pairs: small enough for the hash tables to stay in cache.
HASHTAG_HASH_TAGS = 1 << 14


def epoch_nanoseconds(values: pd.Series) -> np.ndarray:
    """Exact integer nanoseconds since 1970 for UTC timestamps, whatever their stored resolution."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        # Stored as UTC epoch integers already, whatever the zone: nothing to convert.
        return values.array.as_unit("ns").asi8
    naive = pd.to_datetime(values, utc=True).dt.tz_convert(None)
    return naive.astype("datetime64[ns]").to_numpy().astype("int64")


def take_rows(
    frame: pd.DataFrame, cols: list[str], rows: np.ndarray, **extra: np.ndarray
) -> pd.DataFrame:
    """``frame[cols].take(rows)`` with a fresh RangeIndex and the ``extra`` columns after them,
    taking each column's array directly.

    pandas' ``DataFrame.take`` checks for -1 (fill) positions and regroups its blocks, work the
    columns' own takes do not need.
    """
    taken = {col: frame[col].array.take(rows) for col in cols}
    # copy=False: the taken arrays are new; copying them into 2-D blocks would be a second copy.
    return pd.DataFrame({**taken, **extra}, copy=False)


def stable_order(example: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``np.lexsort((t, example))``: stable order by example, then t (both int64).

    The example, the time and each row's position are packed into one 64-bit number and sorted as
    numbers: numpy sorts plain numbers with SIMD, far faster than it argsorts them (README,
    Benchmarks), and the positions come back in the low bits. The position makes every packed
    number distinct, so the order is the stable one.
    """
    n = len(t)
    if n < 2:
        return np.lexsort((t, example))
    t_min, t_max = int(t.min()), int(t.max())
    ex_min, ex_max = int(example.min()), int(example.max())
    if t_max - t_min >= 2**62:  # t - t_min would overflow (e.g. NaT, kept as the largest int64)
        return np.lexsort((t, example))
    row_bits = (n - 1).bit_length()
    example_bits = (ex_max - ex_min).bit_length()
    time_bits = 64 - row_bits - example_bits
    if time_bits < 8:  # too little room left for time: one int64 key, argsorted
        unit = int(np.gcd.reduce(t - t_min)) or 1
        span = (t_max - t_min) // unit + 1
        if (ex_max - ex_min + 1) * span >= 2**62:
            return np.lexsort((t, example))
        return np.argsort((example - ex_min) * span + (t - t_min) // unit, kind="stable")
    # Times that need more bits than are left keep their leading bits (10M posts of 500k
    # influencers leave 21 bits: ~2 minute steps over 8 years); posts of one example that share
    # a cut time are put in order by their full time afterwards. In-place steps: each temporary
    # would be another pass over every row.
    shift = max(0, (t_max - t_min).bit_length() - time_bits)
    packed = example.astype(np.uint64)
    packed -= np.uint64(ex_min)
    packed <<= np.uint64(time_bits)
    cut_time = (t - t_min).view(np.uint64)
    cut_time >>= np.uint64(shift)
    packed |= cut_time
    packed <<= np.uint64(row_bits)
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    head = packed >> np.uint64(row_bits) if shift else None  # (example, cut time), sorted
    packed &= np.uint64((1 << row_bits) - 1)
    order = packed.view(np.int64).astype(np.intp, copy=False)
    if head is not None:
        tie = head[1:] == head[:-1]
        if tie.any():
            in_run = np.zeros(n, dtype=bool)
            in_run[1:] |= tie
            in_run[:-1] |= tie
            pos = np.flatnonzero(in_run)  # runs stay in place; only their members are reordered
            members = order[pos]
            order[pos] = members[np.lexsort((members, t[members], example[members]))]
    return order


def strictly_before(posted: pd.Series, cutoff_ns: np.ndarray) -> np.ndarray:
    """``posted`` strictly before ``cutoff_ns`` (epoch nanoseconds, one per row), to the nanosecond.

    Zone-aware times are compared in their stored unit against the cutoff rounded up to it
    (``t * unit < c`` exactly when ``t < ceil(c / unit)`` for whole ``t``), which spares
    converting every time to nanoseconds.
    """
    if isinstance(posted.dtype, pd.DatetimeTZDtype):
        per_unit = pd.Timedelta(1, unit=posted.array.unit).value  # nanoseconds per stored unit
        return posted.array.asi8 < -(-cutoff_ns // per_unit)
    return epoch_nanoseconds(posted) < cutoff_ns


def time_order(
    example: np.ndarray, posted: pd.Series, post_id_at: Callable[[np.ndarray], pd.Series] | None
) -> np.ndarray:
    """Positions that sort posts like
    ``sort_values(["example", "posted_at", "post_id"], kind="stable")``.

    Several times faster: np.lexsort (stable) on integers instead of pandas factorising every key,
    and post_id, a string, is only looked up (``post_id_at(positions)``) for the rare posts tied
    on example and time; None means there is no post_id.
    """
    # Integers in the stored unit (UTC for zone-aware times); only their order matters here.
    stored = (
        posted.array.asi8
        if isinstance(posted.dtype, pd.DatetimeTZDtype)
        else posted.to_numpy().view("int64")
    )
    missing = pd.isna(posted).to_numpy()
    t = np.where(missing, np.iinfo("int64").max, stored) if missing.any() else stored  # NaT last
    order = stable_order(np.asarray(example, dtype="int64"), t)
    if post_id_at is None or len(order) < 2:
        return order
    ex_sorted, t_sorted = example[order], t[order]
    tie = (ex_sorted[1:] == ex_sorted[:-1]) & (t_sorted[1:] == t_sorted[:-1])
    if not tie.any():
        return order
    in_run = np.zeros(len(order), dtype=bool)
    in_run[1:] |= tie
    in_run[:-1] |= tie
    pos = np.flatnonzero(in_run)  # tied runs stay in place; only their members are reordered
    runs = pd.DataFrame(
        {
            "example": ex_sorted[pos],
            "t": t_sorted[pos],
            "post_id": post_id_at(order[pos]).to_numpy(),
        }
    )
    order[pos] = order[pos][
        runs.sort_values(["example", "t", "post_id"], kind="stable").index.to_numpy()
    ]
    return order


def text_array(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A text column as arrow text, missing cells as the text 'nan' (as ``astype(str)`` gives).

    Arrow-backed text comes as the column's own chunks: joining them would copy the column.
    """
    own = own_arrow_text(values)
    if own is not None and not values.isna().any():
        return own
    text = arrow_text(values)
    if text is None:
        text = pa.array(values.astype(str).to_numpy(dtype=object), type=pa.large_string())
    return text


def arrow_tags(hashtags: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The hashtags column as arrow text (:func:`text_array`), except that missing cells among
    Python strings stay missing: such a post has no tags."""
    with_missing = hashtags.dtype == object and hashtags.isna().any()
    if with_missing and pd.api.types.infer_dtype(hashtags, skipna=True) in ("string", "empty"):
        return pa.array(hashtags.to_numpy(), type=pa.large_string(), from_pandas=True)
    return text_array(hashtags)


def take_text(text: pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``text[rows]`` as one array, taken chunk by chunk from a chunked column.

    Neither pandas' take (it joins all chunks first: a copy of every tag) nor arrow's take on a
    chunked column (a pass over the whole column per call) suits taking a column piece by piece:
    each piece here costs only its own rows.
    """
    if isinstance(text, pa.Array):
        return text.take(pa.array(rows))
    bounds = np.cumsum([0] + [len(chunk) for chunk in text.chunks])
    chunk_of = np.searchsorted(bounds, rows, side="right") - 1
    by_chunk = np.argsort(chunk_of, kind="stable")
    first = np.searchsorted(chunk_of[by_chunk], np.arange(text.num_chunks + 1))
    parts = [
        text.chunk(c).take(pa.array(rows[by_chunk[first[c] : first[c + 1]]] - bounds[c]))
        for c in range(text.num_chunks)
        if first[c + 1] > first[c]
    ]
    gathered = pa.concat_arrays(parts) if parts else pa.array([], type=text.type)
    back = np.empty_like(by_chunk)
    back[by_chunk] = np.arange(len(by_chunk))  # position of each requested row in ``gathered``
    return gathered.take(pa.array(back))


def whole_example_chunks(
    example: np.ndarray, n_examples: int, step: int
) -> Iterator[tuple[int, int, int]]:
    """Rows ``lo:hi`` of about ``step`` rows that end between examples, with ``doc_end``: one past
    the last example that ends in the chunk, so that per-example outputs made for examples
    ``previous doc_end .. doc_end - 1`` (those without rows included) join up in example order
    with no reordering copy. Unsorted ``example`` is one chunk (an example's rows may be anywhere).
    """
    is_sorted = len(example) < 2 or not (example[1:] < example[:-1]).any()
    step = step if is_sorted else len(example)
    lo = 0
    while lo < len(example):
        hi = min(lo + step, len(example))
        if is_sorted:  # whole examples only
            hi = int(np.searchsorted(example, example[hi - 1], side="right"))
        yield lo, hi, int(example[hi - 1]) + 1 if is_sorted else n_examples
        lo = hi


def join_per_example(
    items: pa.Array, item_example: np.ndarray, doc_range: tuple[int, int], sep: str, is_sorted: bool
) -> pa.Array:
    """For examples ``doc_range[0] .. doc_range[1] - 1``, their ``items`` in order joined by
    ``sep`` (empty for an example without items): ``groupby(example).agg(sep.join)``, in arrow.
    """
    # Offsets by example number, so an example without items gets an empty list, hence "".
    order = None if is_sorted else np.argsort(item_example, kind="stable")
    ex_sorted = item_example if order is None else item_example[order]
    doc_items = items if order is None else items.take(pa.array(order))
    offsets = np.searchsorted(ex_sorted, np.arange(doc_range[0], doc_range[1] + 1))
    per_doc = pa.LargeListArray.from_arrays(pa.array(offsets.astype("int64")), doc_items)
    return pc.binary_join(per_doc, pa.scalar(sep, type=items.type)).cast(pa.large_string())


def count_pairs(
    item_example: np.ndarray, items: pa.Array, is_sorted: bool
) -> tuple[np.ndarray, np.ndarray]:
    """How often each (example, item) pair occurs: ``(counts, pair_example)``, ordered by example
    and within it by first occurrence, as ``groupby([example, item], sort=False).size()`` sorted
    stably by example. ``items`` is arrow text, never turned into Python strings.
    """
    # Number the (example, item) pairs in first-seen order. Hashing runs over slices of whole
    # examples of ~HASHTAG_HASH_TAGS items, whose hash tables stay in cache (one pass over all
    # of them would not); unsorted input is one slice, since an example's items may be anywhere.
    cuts = np.array([0, len(items)])
    if is_sorted:
        probe = np.searchsorted(
            item_example, item_example[HASHTAG_HASH_TAGS::HASHTAG_HASH_TAGS], side="left"
        )
        cuts = np.unique(np.r_[0, probe, len(items)])
    pairs, pair_examples, n_pairs = [], [], 0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        slice_example = item_example[a:b]
        codes = pc.dictionary_encode(items.slice(a, b - a)).indices.to_numpy().astype("int64")
        n_codes = int(codes.max()) + 1
        low = int(slice_example.min())
        pair, pair_key = pd.factorize((slice_example - low) * n_codes + codes)
        pairs.append(pair + n_pairs)
        pair_examples.append(pair_key // n_codes + low)
        n_pairs += len(pair_key)
    counts = np.bincount(np.concatenate(pairs)).astype("int64")
    pair_example = np.concatenate(pair_examples)
    if not is_sorted:
        by_example = np.argsort(pair_example, kind="stable")
        counts, pair_example = counts[by_example], pair_example[by_example]
    return counts, pair_example
