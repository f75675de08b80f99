"""Giving memory back to the operating system between the big steps.

Arrow's allocator (mimalloc) keeps freed blocks cached for reuse instead of returning them.
After a large Parquet read it keeps the decoding buffers on top of the table itself, and every
later step starts from that higher floor, which raises the peak (README, Benchmarks). Releasing
the cache at step boundaries is cheap.
"""

from __future__ import annotations

import pyarrow as pa


def release_unused_memory() -> None:
    """Return the memory arrow's allocator holds but does not use to the operating system."""
    pa.default_memory_pool().release_unused()
