"""Extracting HyperNet's fused features, from the whole image or by overlapping tiles.

Channel attention pools over the whole image (and so do the BatchNorm layers when each
date is normalised with its own statistics), so a tile cannot compute them from what it
sees: tiled extraction runs the encoder layer by layer over all the tiles, computing each
global statistic once over the whole image (layerwise.py). Its features equal the
whole-image features up to float rounding, everywhere.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..progress import Progress
from ..runtime import channels_last, image_tensor, mask_tensor
from .layerwise import tiled_features
from .network import HyperNetModel


def extract_features(model: HyperNetModel, image: np.ndarray, valid: np.ndarray, device, tile_size,
                     progress: Progress, label: str = "", scratch: Optional[str] = None,
                     memory_budget: Optional[int] = None) -> np.ndarray:
    """Fused features (rows, cols, 2h) float32 of a scaled image (rows, cols, B), in eval mode.

    tile_size None (or not smaller than the image): one whole-image pass. Otherwise by
    tiles, storing activations between layers as ``tiled_features`` says (scratch: the
    folder for them when they do not fit in memory; memory_budget: host bytes they may take).
    """
    import torch

    rows, cols = image.shape[:2]
    model.eval()
    with torch.no_grad():
        if tile_size is not None and (tile_size < rows or tile_size < cols):
            return tiled_features(model, image, valid, device, tile_size, progress, label, scratch, memory_budget)
        progress.update("detecting", 0.0, f"features{label}: whole image in one pass", force=True)
        with channels_last(model):
            f = model.features(image_tensor(image, device), mask_tensor(valid, device))
        progress.update("detecting", 1.0, f"features{label}: whole image in one pass")
        return f[0].permute(1, 2, 0).float().cpu().numpy()
