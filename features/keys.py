"""Looking up text keys (influencer handles) with arrow's hash kernels instead of pandas'.

pandas turns arrow-backed text into one Python string per cell before hashing it; arrow hashes
the buffers directly. Used by the contract (posts without a profile) and by the features (each
example's profile and posts).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Values looked up in parallel slices above this many rows.
PARALLEL_LOOKUP_ROWS = 1 << 21


def own_arrow_text(values: pd.Series) -> pa.ChunkedArray | None:
    """The column's own arrow text (its chunks, no copy) if it is arrow-backed text, else None."""
    if isinstance(values.dtype, pd.StringDtype) and values.dtype.storage == "pyarrow":
        return values.array.__arrow_array__()
    return None


def text_bytes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An arrow string array's text as numpy views of its buffers: each string's start in the
    bytes (``n + 1`` int64 offsets, the last the end) and the bytes themselves (uint8)."""
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
        array.offset : array.offset + len(array) + 1
    ]
    start, end = int(offsets[0]), int(offsets[-1])
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)[start:end]
        if data_buffer is not None
        else np.zeros(0, np.uint8)
    )
    return offsets.astype(np.int64) - start, data


def arrow_text(values: pd.Series) -> pa.Array | None:
    """``values`` as an arrow large_string array if it is text without missing cells, else None."""
    chunks = _text_chunks(values)
    if chunks is None:
        return None
    if len(chunks) == 1:
        return chunks[0]
    return pa.chunked_array(chunks, type=pa.large_string()).combine_chunks()


def _text_chunks(values: pd.Series) -> list[pa.Array] | None:
    """``values`` as large_string arrow arrays (its own chunks when arrow-backed: no copy) if it is
    text without missing cells, else None."""
    if values.isna().any():
        return None
    own = own_arrow_text(values)
    if own is not None:
        text = own
    elif values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) in (
        "string",
        "empty",
    ):
        try:
            text = pa.array(values.to_numpy(), type=pa.large_string())
        except (pa.ArrowException, UnicodeError):  # e.g. lone surrogates, which arrow cannot hold
            return None
    else:
        return None
    chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
    return [chunk.cast(pa.large_string()) for chunk in chunks] or [pa.array([], pa.large_string())]


def positions_in(keys: pd.Series, values: pd.Series) -> np.ndarray:
    """``pd.Index(keys).get_indexer(values)`` for unique
    ``keys``: position of each value, -1 if absent.

    For text keys arrow's hash lookup runs on its buffers: pandas would first turn the posts'
    arrow strings into one Python string each.
    """
    key_text, value_chunks = arrow_text(keys), _text_chunks(values)
    if key_text is None or value_chunks is None:
        return pd.Index(keys).get_indexer(values)
    lookup = pc.SetLookupOptions(key_text)
    # The values' own chunks (Parquet row groups), not one joined copy of 10M strings. Above
    # PARALLEL_LOOKUP_ROWS they are cut into even slices; arrow's lookup runs on one core and
    # releases the GIL, so slices in threads use every core.
    n_values = sum(len(chunk) for chunk in value_chunks)
    if n_values == 0 or n_values < PARALLEL_LOOKUP_ROWS:
        parts = [pc.index_in(chunk, options=lookup) for chunk in value_chunks]
    else:
        n = min(os.cpu_count() or 1, 8)
        step = -(-n_values // n)
        column = pa.chunked_array(value_chunks, type=pa.large_string())
        with ThreadPoolExecutor(n) as pool:
            parts = list(
                pool.map(
                    lambda lo: pc.index_in(column.slice(lo, step), options=lookup),
                    range(0, n_values, step),
                )
            )
    return np.concatenate(
        [part.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp) for part in parts]
    )


# Strings hashed per numpy pass: bounds the per-byte temporaries (several numbers per byte).
HASH_SLICE_ROWS = 1 << 18


def text_hashes(values: pd.Series) -> np.ndarray:
    """A 64-bit hash of each text cell (missing cells hash to 0), computed on arrow's buffers.

    For finding repeated keys among millions of rows: a hash table of every distinct post id
    (``pd.factorize``) holds every key; one number per row is far smaller. Different
    texts can share a hash, rarely, so callers compare the rows whose hashes repeat as text.
    The hash is a random linear form over the bytes and the length (fixed seed: the same text
    always gets the same hash).
    """
    out = np.zeros(len(values), dtype=np.uint64)
    position = 0
    for chunk in _arrow_chunks(values):
        for lo in range(0, len(chunk), HASH_SLICE_ROWS):
            piece = chunk.slice(lo, HASH_SLICE_ROWS)
            out[position : position + len(piece)] = _hash_piece(piece)
            position += len(piece)
    return out


def repeated(hashes: np.ndarray) -> np.ndarray:
    """Where a value occurs more than once in ``hashes``
    (``duplicated(keep=False)``), by sorting."""
    ordered = np.sort(hashes)
    repeats = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeats) == 0:
        return np.zeros(len(hashes), dtype=bool)
    at = np.minimum(np.searchsorted(repeats, hashes), len(repeats) - 1)
    return repeats[at] == hashes


def combine_hashes(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One hash for a pair of hashed keys (order matters)."""
    return first * np.uint64(0x9E3779B97F4A7C15) + (second ^ (second >> np.uint64(29)))


def _arrow_chunks(values: pd.Series) -> list[pa.Array]:
    """The column's text as arrow string arrays: its own chunks when arrow-backed (no copy)."""
    own = own_arrow_text(values)
    if own is not None:
        return list(own.chunks)
    # pandas-stubs' na_value leaves out None, which pandas documents and accepts.
    as_string = values.astype("string")
    text = as_string.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    return [pa.array(text, type=pa.large_string())]


_weights_cache: list[np.ndarray] = [np.zeros(0, dtype=np.uint64)]


def _weights(n: int) -> np.ndarray:
    """``n`` fixed pseudo-random odd 64-bit weights (the same on every call and machine: a longer
    table starts with the shorter one, as the generator draws one 64-bit number per weight)."""
    if len(_weights_cache[0]) < n:
        size = max(n, 2 * len(_weights_cache[0]), 64)
        rng = np.random.default_rng(0x5EED)
        _weights_cache[0] = rng.integers(
            0, 2**64, size=size, dtype=np.uint64, endpoint=False
        ) | np.uint64(1)
    return _weights_cache[0][:n]


# Strings of ASCII text up to this many bytes are hashed 8 bytes at a time from a zero-padded
# copy that arrow makes; others byte by byte. Both compute the same hash.
PADDED_HASH_MAX_BYTES = 64


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place: spreads every bit of a word over the whole word, and
    keeps 0 at 0 (so the zero padding after a string adds nothing to its hash)."""
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _hash_piece(piece: pa.Array) -> np.ndarray:
    """The hash of each string: its 8-byte words (little-endian, the last one zero-padded), each
    mixed and weighted by its position, summed, plus a weight for the length. Missing cells: 0."""
    offsets, data = text_bytes(piece)
    lengths = np.diff(offsets)
    max_length = int(lengths.max()) if len(lengths) else 0
    # Even weights for word positions, odd ones for lengths.
    weights = _weights(2 * max_length + 2)
    with np.errstate(over="ignore"):
        words = _padded_words(piece, max_length) if max_length <= PADDED_HASH_MAX_BYTES else None
        if words is not None:
            hashes = np.zeros(len(piece), dtype=np.uint64)
            for k in range(words.shape[1]):  # a handful of word positions, each a pass over rows
                hashes += _mix(words[:, k].copy()) * weights[2 * k]  # the copy is mixed in place
        else:
            hashes = _hash_bytes(offsets, lengths, data, weights)
        hashes += weights[2 * lengths + 1]  # the length too: "a" differs from "a" + a zero byte
    if piece.null_count:
        hashes[piece.is_null().to_numpy(zero_copy_only=False)] = 0
    return hashes


def _padded_words(piece: pa.Array, max_length: int) -> np.ndarray | None:
    """Each string as little-endian 8-byte words, zero-padded, from one arrow padding call; None
    unless every string is ASCII (arrow pads by characters, so then every row is the same bytes)."""
    n_words = max(1, -(-max_length // 8))
    text = piece.fill_null("") if piece.null_count else piece
    offsets, data = text_bytes(pc.utf8_rpad(text, width=8 * n_words, padding="\0"))
    if offsets[-1] != 8 * n_words * len(text):
        return None  # some string has non-ASCII characters
    return data.view("<u8").reshape(len(text), n_words).astype(np.uint64, copy=False)  # read-only


def _hash_bytes(
    offsets: np.ndarray, lengths: np.ndarray, text: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The same words as :func:`_padded_words`, assembled byte by byte (any text, any length);
    ``offsets`` and ``text`` as :func:`text_bytes` gives them."""
    byte_in_string = np.arange(len(text)) - np.repeat(offsets[:-1], lengths)
    shifted = text.astype(np.uint64) << (np.uint64(8) * (byte_in_string & 7).astype(np.uint64))
    word_start = np.flatnonzero((byte_in_string & 7) == 0)
    words = np.add.reduceat(shifted, word_start) if len(word_start) else np.zeros(0, np.uint64)
    terms = _mix(words) * weights[2 * (byte_in_string[word_start] >> 3)]
    hashes = np.zeros(len(lengths), dtype=np.uint64)
    nonempty = lengths > 0
    if nonempty.any():
        # Each non-empty string's words run from its first word to the next string's first word.
        first_word = np.cumsum(-(-lengths // 8)) - -(-lengths // 8)
        hashes[nonempty] = np.add.reduceat(terms, first_word[nonempty])
    return hashes
