"""When a run streams, and how much memory its windows and GDAL's block cache may take."""

from __future__ import annotations

FIT_SHARE = 0.75  # a run whose in-memory working set stays below this share of the limit runs in memory
WINDOW_SHARE = 0.5  # the share of the limit the windows' working copies take when streaming
CACHE_SHARE = 0.125  # the share of the limit GDAL's block cache may take when streaming
MIN_CACHE = 4 << 20


def fits(bytes_needed: float, limit: int) -> bool:
    """Whether a run whose in-memory working set is ``bytes_needed`` keeps the in-memory path."""
    return bytes_needed <= FIT_SHARE * limit


def cache_bytes(limit: int, block_bytes: int = 0) -> int:
    """GDAL's cache: its share of the limit, more (up to twice the share) to hold one block of the input."""
    share = int(limit * CACHE_SHARE)
    return max(MIN_CACHE, share, min(int(1.25 * block_bytes), 2 * share))


def window_budget(limit: int, block_bytes: int = 0) -> int:
    """Bytes the working copies of one window may take."""
    return max(1 << 20, int(limit * WINDOW_SHARE) - cache_bytes(limit, block_bytes))


def gdal_cache(limit: int, block_bytes: int = 0):
    """GDAL's block cache held to its share of the limit while a streamed run reads and writes."""
    from ..io.gdal_utils import cache_at_most

    return cache_at_most(cache_bytes(limit, block_bytes))


def window_plan(src, limit: int, bytes_per_pixel: float, block_bytes: int = 0) -> tuple:
    """(window budget, windows (row, col, rows, cols)) for streaming the raster source ``src`` within
    ``limit`` when each window pixel takes ``bytes_per_pixel`` of working copies; ``block_bytes``: the
    blocks GDAL's cache must hold at once (default: one block of ``src``)."""
    from ..io.memory import plan_windows

    budget = window_budget(limit, block_bytes or src.block_bytes)
    return budget, plan_windows(src.height, src.width, bytes_per_pixel, budget, src.block_size)
