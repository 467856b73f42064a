"""Extracting HyperNet's fused features, from the whole image or by overlapping tiles.

Channel attention pools over the whole image (and so do the BatchNorm layers when each
date is normalised with its own statistics), so a tile cannot compute them from what it
sees. Tiled extraction therefore runs one pass over the tiles per global statistic, in
forward order: each pass accumulates that statistic (average and maximum, or mean and
variance) over the tiles' cores (valid pixels only), with the ones before it fixed to
their global values. A final pass computes the features with all of them fixed. Tiles are
read with RECEPTIVE_RADIUS pixels of overlap, so every core pixel sees exactly the
context it sees in the whole image: the tiled features equal the whole-image features
up to float rounding (the order in which the global sums are added), everywhere.
"""

from __future__ import annotations

import numpy as np

from ..io.tiles import apply_by_tiles, iter_tiles
from ..progress import Progress, SubProgress
from ..runtime import image_tensor, mask_tensor
from .network import RECEPTIVE_RADIUS, HyperNetModel, StopForward


def extract_features(model: HyperNetModel, image: np.ndarray, valid: np.ndarray, device, tile_size,
                     progress: Progress, label: str = "") -> np.ndarray:
    """Fused features (rows, cols, 2h) float32 of a scaled image (rows, cols, B), in eval mode.

    tile_size None (or not smaller than the image): one whole-image pass.
    """
    import torch

    rows, cols = image.shape[:2]
    model.eval()

    def features(window, window_valid):
        f = model.features(image_tensor(window, device), mask_tensor(window_valid, device))
        return f[0].permute(1, 2, 0).float().cpu().numpy()

    tiled = tile_size is not None and (tile_size < rows or tile_size < cols)
    with torch.no_grad():
        try:
            if tiled:
                _fix_global_statistics(model, image, valid, device, tile_size, progress, label)
            passes = model.global_statistics_count() + 1 if tiled else 1
            stage = SubProgress(progress, (passes - 1) / passes, 1.0 / passes, f"features{label}: ")
            return apply_by_tiles(features, image, 2 * model.hidden, tile_size if tiled else None,
                                  RECEPTIVE_RADIUS, stage, valid=valid)
        finally:
            model.stats.reset()


def _fix_global_statistics(model: HyperNetModel, image, valid, device, tile_size, progress, label):
    """One pass over the tiles per global statistic; leaves them all in model.stats.fixed."""
    stats = model.stats
    tiles = list(iter_tiles(image.shape[0], image.shape[1], tile_size, RECEPTIVE_RADIUS))
    passes = model.global_statistics_count()
    for index in range(passes):
        stats.collect = index
        for i, t in enumerate(tiles):
            progress.update("detecting", (index * len(tiles) + i) / ((passes + 1) * len(tiles)),
                            f"features{label}: global statistics {index + 1}/{passes}, tile {i + 1}/{len(tiles)}")
            window = (slice(t.row, t.row + t.rows), slice(t.col, t.col + t.cols))
            stats.core = t.core_in_tile
            try:
                model.features(image_tensor(image[window], device), mask_tensor(valid[window], device))
            except StopForward:
                continue
            raise RuntimeError(f"global statistic {index} was not reached")
        stats.fixed[index] = stats.collected()
    stats.collect, stats.core = None, None
