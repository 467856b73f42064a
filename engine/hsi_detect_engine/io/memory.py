"""The run's memory limit: parsing ``--memory-limit``, its default, and sizing windows by it.

A scene whose in-memory processing fits well inside the limit is processed whole, as
before; a larger one is streamed window by window (streaming/), each window sized so
that its working copies take at most a share of the limit.
"""

from __future__ import annotations

import re
from typing import Optional

from ..errors import HsiDetectError
from .tiles import available_memory_bytes

DEFAULT_SHARE = 0.5  # of the memory the system reports available when the run starts
DEFAULT_CAP = 2 << 30  # streaming measured as fast as the in-memory path on the CPU beyond this (bench full part)
MINIMUM = 1 << 20
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def parse_memory_size(text) -> int:
    """Bytes in a size such as '4GB', '512MB', '2G', '1.5GiB' or '1048576' (K, M, G and T count in
    powers of 1024, with or without a trailing B or iB)."""
    m = _SIZE.fullmatch(str(text)) if text is not None else None
    if m is None:
        raise HsiDetectError(f"The memory limit {text!r} is not a size. Give a number of bytes with a unit, "
                             "such as 4GB, 512MB or 2G.")
    size = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if size < MINIMUM:
        raise HsiDetectError(f"The memory limit {str(text).strip()} is below 1MB, too little to process an image. "
                             "Give a larger size, such as 512MB or 4GB.")
    return size


def default_memory_limit() -> int:
    """A safe share of the memory available now, at most DEFAULT_CAP: on 1000 x 1000 x 224 scenes
    every method streamed within 2 GB as fast as (BS3LNet and HyperNet faster than) in memory."""
    return max(MINIMUM, min(DEFAULT_CAP, int(available_memory_bytes() * DEFAULT_SHARE)))


def memory_limit(text: Optional[str] = None) -> int:
    """The run's limit in bytes: the given size, or the default when it is None or empty."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return default_memory_limit()
    if isinstance(text, int) and not isinstance(text, bool):
        return parse_memory_size(str(text))
    return parse_memory_size(text)


def window_rows(bytes_per_row: float, budget: float, height: int, block_height: int = 1) -> int:
    """Rows per window so that a window takes at most ``budget`` bytes (at least one row), a
    multiple of the file's block height when the budget allows it, so that no block is decoded twice."""
    rows = max(1, min(height, int(budget // max(bytes_per_row, 1.0))))
    if block_height > 1 and rows >= block_height:
        rows = rows // block_height * block_height
    return rows


def plan_windows(height: int, width: int, bytes_per_pixel: float, budget: float, block: tuple = (1, 1)) -> list:
    """Windows (row, col, rows, cols) covering the image, each taking at most ``budget`` bytes (at
    least one row of one block column), in an order that reads each block of the file once: strips
    of whole block rows when the budget holds one; else one block row at a time in windows of as
    many whole block columns as it holds (GDAL reads a window's blocks in parallel); else windows
    down one block column at a time, whose block then stays in GDAL's cache. ``block``: the file's
    (block width, block height)."""
    bw, bh = min(max(1, block[0]), width), max(1, block[1])
    rows = window_rows(width * bytes_per_pixel, budget, height, bh)
    if rows >= min(bh, height):
        return [(r, 0, min(rows, height - r), width) for r in range(0, height, rows)]
    step = max(1, min(bh, int(budget // max(bw * bytes_per_pixel, 1.0))))
    span = bw * max(1, int(budget // max(bw * min(bh, height) * bytes_per_pixel, 1.0))) if step == bh else bw
    out = []
    for top in range(0, height, bh):
        bottom = min(top + bh, height)
        for c in range(0, width, span):
            out += [(r, c, min(step, bottom - r), min(span, width - c)) for r in range(top, bottom, step)]
    return out


def format_size(size: int) -> str:
    for unit, factor in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"
