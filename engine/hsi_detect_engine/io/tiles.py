"""The grid walker: tiles that cover an image, the free memory that sizes them, and
applying a network to a whole image or by overlapping tiles when it does not fit.

Each tile is read with an overlap of at least the network's receptive-field radius, and
only its core is kept, so the tiled result equals the whole-image result (up to float
rounding) for fully convolutional networks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import HsiDetectError
from ..progress import Progress


@dataclass(frozen=True)
class Tile:
    """One tile: the window read (core plus overlap) and the core window it owns."""

    row: int  # read window
    col: int
    rows: int
    cols: int
    core_row: int  # core window, in image coordinates
    core_col: int
    core_rows: int
    core_cols: int

    @property
    def core_in_tile(self) -> tuple:
        """Slices selecting the core from an array of the read window."""
        r0, c0 = self.core_row - self.row, self.core_col - self.col
        return slice(r0, r0 + self.core_rows), slice(c0, c0 + self.core_cols)


def iter_tiles(height: int, width: int, tile_size: int, overlap: int = 0):
    """Cover an image with cores of at most tile_size pixels a side, each read with
    `overlap` extra pixels on every side (clipped at the image border). The cores
    partition the image exactly."""
    if tile_size < 1:
        raise HsiDetectError("Tile size must be at least 1 pixel.")
    if overlap < 0:
        raise HsiDetectError("Tile overlap cannot be negative.")
    for r in range(0, height, tile_size):
        for c in range(0, width, tile_size):
            rows, cols = min(tile_size, height - r), min(tile_size, width - c)
            r0, c0 = max(0, r - overlap), max(0, c - overlap)
            r1, c1 = min(height, r + rows + overlap), min(width, c + cols + overlap)
            yield Tile(r0, c0, r1 - r0, c1 - c0, r, c, rows, cols)



def available_memory_bytes(device=None) -> int:
    """Free memory on the device that will hold the activations."""
    if device is not None and getattr(device, "type", "cpu") == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def tile_size_for(bytes_per_pixel: float, device=None, fraction: float = 0.25, minimum: int = 64,
                  overlap: int = 0) -> int:
    """Largest square tile whose activations (bytes_per_pixel each) fit in a fraction of free memory."""
    budget = available_memory_bytes(device) * fraction
    side = int((budget / max(bytes_per_pixel, 1.0)) ** 0.5) - 2 * overlap
    return max(minimum, side)


def choose_tile(requested: int, rows: int, cols: int, bytes_per_pixel: float, device=None, overlap: int = 0,
                fraction: float = 0.25, cpu_cap_bytes: Optional[int] = None, minimum: int = 64) -> Optional[int]:
    """A square window's side (a detection tile, a training crop): the requested one, else the
    largest that fits in ``fraction`` of free memory (on the CPU at most ``cpu_cap_bytes``, where
    larger tiles are no faster), at least ``minimum``; None when one window covers the whole image."""
    if not requested:
        if cpu_cap_bytes and getattr(device, "type", "cpu") == "cpu":
            fraction = min(fraction, cpu_cap_bytes / max(available_memory_bytes(), 1))
        requested = tile_size_for(bytes_per_pixel, device, fraction, minimum, overlap)
    return None if requested >= rows and requested >= cols else requested


def apply_by_tiles(fn: Callable[..., np.ndarray], image: np.ndarray, out_channels: int,
                   tile_size: Optional[int], overlap: int, progress: Optional[Progress] = None,
                   stage: str = "detecting", valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Run fn((h, w, C) float32) -> (h, w, out_channels) over the image.

    tile_size None (or not smaller than the image) runs one whole-image pass. With a
    ``valid`` (rows, cols) mask, fn is called as fn(window, valid_window).
    """
    rows, cols = image.shape[:2]
    if tile_size is None or (tile_size >= rows and tile_size >= cols):
        if progress is not None:
            progress.update(stage, 0.0, "whole image in one pass", force=True)
        out = fn(image) if valid is None else fn(image, valid)
        if progress is not None:
            progress.update(stage, 1.0, "whole image in one pass")
        return out
    out = np.empty((rows, cols, out_channels), dtype=np.float32)
    tiles = list(iter_tiles(rows, cols, tile_size, overlap))
    for i, t in enumerate(tiles):
        if progress is not None:
            progress.update(stage, i / len(tiles), f"tile {i + 1}/{len(tiles)}")
        window = (slice(t.row, t.row + t.rows), slice(t.col, t.col + t.cols))
        result = fn(image[window]) if valid is None else fn(image[window], valid[window])
        rs, cs = t.core_in_tile
        out[t.core_row:t.core_row + t.core_rows, t.core_col:t.core_col + t.core_cols] = result[rs, cs]
    if progress is not None:
        progress.update(stage, 1.0, f"{len(tiles)} tiles")
    return out
