"""HyperNet on a pair larger than the memory limit: detector.detect's steps, read and written by windows.

1. Each date's per-band moments over the pixels valid in both (streaming/cva.date_moments):
   its scaling equals scale_on_own_statistics' to float32 rounding.
2. One pass writes each date's scaled copy (io/scratch.py) and, when the training rule or the
   score needs it, the pre-detection (the change-vector magnitude of the standardised dates, or
   their spectral angle) into a float64 scratch raster.
3. The training pixels, one byte a pixel in memory: the user's mask read by windows, or the rule's
   cut (a quantile or Otsu's threshold) from passes over the pre-detection raster.
4. Training on random crops read from the scaled copies (detector.train_network); with a crop
   that holds the whole pair it is exactly the in-memory training.
5. Each date's features by the layer-by-layer tiles (layerwise.py), the input read tile by tile
   from its scaled copy, the activations in working scratch files when they exceed their share
   of the limit, the features into scratch copies. One pass compares them window by window:
   the change magnitude into the output, |f1 - f2| over date 1's features, whose RX
   (streaming/rx.py: moments, then scores) is the anomalous change.
6. Styles, threshold, binary map and objects from passes over the written magnitude (scores.py).

Every scratch file is named by the run's transaction, so a failed or cancelled run leaves none.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from typing import Optional

import numpy as np

from ..classical import angle_between, vector_length
from ..errors import HsiDetectError
from ..io.memory import format_size, plan_windows
from ..io.pairs import PairSources, read_training_mask
from ..io.products.wavelengths import wavelength_metadata
from ..io.reader import no_valid_pixel
from ..io.scratch import ScratchCube
from ..io.tiles import choose_tile
from ..io.writer import SCORE_NODATA, RasterWriter
from ..parameters import HYPERNET, MIN_CROP, resolve
from ..progress import Progress, SubProgress
from ..scaling import apply_scaling
from ..streaming.budget import gdal_cache, window_plan
from ..streaming.cva import WINDOW_PER_BAND, WINDOW_PER_PIXEL, date_moments, standardizing
from ..streaming.rx import describe_bands, valid_pixels, windows, write_scores
from ..streaming.scores import ScoreRaster, cut_score, quantile_of_raster, style_score, threshold_of_raster
from ..streaming.statistics import Moments
from .detector import (MEMORY_FRACTION, build_network, change_score, detection_bytes_per_pixel, load_network,
                       network_cancel_hooks, save_network, train_network, training_bytes_per_pixel)
from .training_pixels import select_training_pixels

# The in-memory run (detector.detect and the pipeline around it), in bytes per pixel: per band, both
# dates as read, their scaled copies and the float64 and scaled copies fitting and computing the
# change-vector magnitude; per hidden channel, both dates' features, the activations of a feature
# pass and the RX's copy of |f1 - f2|; per pixel, the masks and float64 maps (magnitude, change
# vector, scores). Training adds its activations over the crop (the whole pair without one).
# Measured peaks above the fixed overhead (Python, torch, GDAL): 400 x 400 x 6 bands, h 16, crop 32:
# 196 MB (estimate 219 MB); 512 x 512 x 128 bands, h 64, crop 64: 1.26 GB (estimate 2.4 GB).
IN_MEMORY_PER_BAND = 32
IN_MEMORY_PER_HIDDEN = 64
IN_MEMORY_PER_PIXEL = 64
FEATURE_WINDOW_PER_CHANNEL = 32  # a comparison window: both features, their difference, float64 products
STORAGE_SHARE = 0.25  # of the limit: the activations kept in memory between layers (beyond it, in scratch files)


def in_memory_estimate(params: Optional[dict], training: bool = True):
    """in_memory_bytes(rows, cols, bands) of HyperNet's in-memory run with these parameters,
    for io.pairs.streamed_pair; ``training``: False when a saved model is applied."""
    from .network import hidden_width

    p = resolve(HYPERNET, params)

    def in_memory_bytes(rows: int, cols: int, bands: int) -> int:
        hidden = hidden_width(bands, p["hidden"])
        pixels = rows * cols
        crop = min(pixels, p["crop_size"] ** 2) if p["crop_size"] else pixels
        return int(pixels * (IN_MEMORY_PER_BAND * bands + IN_MEMORY_PER_HIDDEN * hidden + IN_MEMORY_PER_PIXEL)
                   + (training_bytes_per_pixel(bands, hidden) * crop if training else 0))

    return in_memory_bytes


def stream_hypernet(pair: PairSources, txn, limit: int, params: Optional[dict], *, training_mask: Optional[str],
                    device: str, seed: int, model_path: Optional[str], save_model: bool, threshold: str,
                    threshold_value: Optional[float], top_fraction: Optional[float], false_alarm_rate: float,
                    min_object_size: int, metadata: dict, progress: Progress) -> dict:
    """HyperNet on the pair read window by window into the transaction's 'change',
    'anomalous_change', 'binary', 'objects' and 'model' outputs (those it holds). Returns the
    summary's entries."""
    from ..runtime import describe_device, resolve_device, seed_everything
    from .layerwise import stored_channels
    from .network import RECEPTIVE_RADIUS

    p = resolve(HYPERNET, params)
    dev = resolve_device(device)
    src = pair.t1
    rows, cols, nb = src.height, src.width, len(src.band_numbers)
    block_bytes = max(src.block_bytes, pair.t2.block_bytes)
    budget, plan = window_plan(src, limit, WINDOW_PER_BAND * nb + WINDOW_PER_PIXEL, 2 * block_bytes)
    info = {"streamed": True, "windows": len(plan), "device": describe_device(dev),
            "threshold_transform": p["threshold_transform"]}
    if model_path:
        model, scaling = load_network(model_path, nb, src.wavelengths, dev)
        info.update({"model": model_path, "hidden": model.hidden, "scaling": scaling})
        progress.log(f"Applying the saved model {model_path} (hidden width {model.hidden}, scaling {scaling}).")
    else:  # built once the bands are known (below), as detect builds it: right after seeding
        model, scaling = build_network(nb, p), p["scaling"]
    rule = None if model_path or training_mask else p["training_pixels"]
    pre = {"cva-fraction": "cva", "cva-otsu": "cva", "angle-fraction": "angle"}.get(rule)
    keep_cva = pre == "cva" or p["score"] == "cosine-cva"
    features = 2 * model.hidden
    _, peak = stored_channels(model, nb, next(model.parameters()).device)
    storage = int(limit * STORAGE_SHARE)
    activations = 4 * rows * cols * peak if 4 * rows * cols * peak > storage else 0  # (on a GPU, where they fit)
    info["activations_on_disk"] = activations > 0 and dev.type == "cpu"
    _check_scratch_space(txn, rows * cols * (4 * 2 * nb + 4 * 2 * features + 8 * (keep_cva + (pre == "angle")))
                         + activations)
    progress.log(f"{rows} x {cols} pixels x {nb} bands in two dates exceed the memory limit of {format_size(limit)} "
                 f"in memory: streaming HyperNet in {len(plan)} windows, the scaled dates, features"
                 f"{' and activations' if info['activations_on_disk'] else ''} in scratch files.")
    georef = src.georef
    with gdal_cache(limit, 2 * block_bytes), contextlib.ExitStack() as stack:
        progress.update("preparing", 0.0, f"scaling both dates ({scaling})", force=True)
        m1, m2, own = date_moments(pair, plan, SubProgress(progress, 0.0, 0.1), "preparing")
        nb = len(pair.t1.band_numbers)
        if own == 0:
            raise no_valid_pixel(src.path)
        if m1.n == 0:
            raise HsiDetectError("No pixel is valid in both dates: they do not overlap, or nodata covers one of them.")
        if model_path and nb != model.bands:  # bands dropped for holding no valid pixel
            raise HsiDetectError(f"{model_path} was trained on {model.bands} bands, but {nb} of the image's "
                                 "bands hold valid pixels. Train a new model on these images.")
        if not model_path:
            seed_everything(seed)
            model = build_network(nb, p).to(dev)
        info.update({"valid_pixels": m1.n, "bands": nb})
        progress.log(describe_bands(pair.t1))
        metadata = {**metadata, **wavelength_metadata(pair.t1)}
        dates = [stack.enter_context(ScratchCube(txn.scratch("change", f"t{i}.f32"), rows, cols, nb)) for i in (1, 2)]
        cva_path = txn.scratch("change", "cva.tif") if keep_cva else None
        angle_path = txn.scratch("change", "angle.tif") if pre == "angle" else None
        _scaled_copies(pair, plan, [standardizing(m1), standardizing(m2)], scaling, dates, cva_path, angle_path,
                       SubProgress(progress, 0.1, 0.1))
        valid = dates[0].valid
        hooks = network_cancel_hooks(model, progress)
        try:
            if not model_path:
                chosen = _training_pixels(p, rule, valid, training_mask, plan, angle_path or cva_path, budget,
                                          progress)
                source = "the training mask" if training_mask else f"rule {p['training_pixels']}"
                progress.log(f"Training on {int(chosen.sum())} pixels believed unchanged ({source}).")
                crop = choose_tile(p["crop_size"], rows, cols, training_bytes_per_pixel(nb, model.hidden), dev,
                                   fraction=MEMORY_FRACTION, cpu_cap_bytes=budget, minimum=MIN_CROP)
                if crop and dev.type == "cpu" and training_bytes_per_pixel(nb, model.hidden) * crop ** 2 > budget:
                    progress.log(f"The training crop of {crop} x {crop} pixels takes more than its share of the "
                                 "memory limit; give a smaller crop size (or 0) to stay within it.")
                info.update(train_network(model, dates[0], dates[1], valid, chosen, p, crop, dev, seed, progress))
                info.update({"scaling": scaling, "training_rule": "mask" if training_mask else rule})
                del chosen
            info["bn_statistics"] = p["bn_statistics"]
            tile = choose_tile(p["tile_size"], rows, cols, detection_bytes_per_pixel(nb, model.hidden), dev,
                               RECEPTIVE_RADIUS, MEMORY_FRACTION, cpu_cap_bytes=budget) or max(rows, cols)
            info["tile_size"] = tile
            model.stats.date_norm = p["bn_statistics"] == "date"
            feats = _features(model, dates, valid, dev, tile, storage, txn, stack, SubProgress(progress, 0.2, 0.5))
        finally:
            for h in hooks:
                h.remove()
        if save_model and not model_path:
            save_network(txn.path("model"), model, pair.t1.wavelengths, scaling, seed, p)
        anomalous = "anomalous_change" in txn.outputs
        fplan = plan_windows(rows, cols, FEATURE_WINDOW_PER_CHANNEL * features + WINDOW_PER_PIXEL, budget)
        acd = Moments(features) if anomalous else None
        with RasterWriter(txn.path("change"), georef, nodata=SCORE_NODATA, band_names=["change magnitude"],
                          metadata=metadata) as w:
            _compare(feats, fplan, p["score"], cva_path, w, acd, SubProgress(progress, 0.7, 0.1))
        style_score(txn, "change", "change magnitude", budget, progress)
        if anomalous:
            with RasterWriter(txn.path("anomalous_change"), georef, nodata=SCORE_NODATA,
                              band_names=["anomalous change"], metadata=metadata) as w:
                write_scores(feats[0].read, fplan, acd, w, SubProgress(progress, 0.8, 0.2), "anomalous change")
            style_score(txn, "anomalous_change", "anomalous change", budget, progress)
        info.update(cut_score(txn, txn.path("change"), georef, metadata, budget, progress, threshold=threshold,
                              threshold_value=threshold_value, top_fraction=top_fraction,
                              false_alarm_rate=false_alarm_rate, min_object_size=min_object_size, label="changed",
                              layer_name="changed_regions", score_name="change", count_key="changed_pixels",
                              transform=p["threshold_transform"]))
    return info


def _check_scratch_space(txn, size: int):
    """Refuse before any work when the output folder's disk cannot hold the scratch files."""
    folder = os.path.dirname(os.path.abspath(txn.outputs["change"][0]))
    free = shutil.disk_usage(folder).free
    if free < size:
        raise HsiDetectError(f"Not enough free space in {folder} for HyperNet's scratch files (the scaled dates, "
                             f"features and activations): they need about {format_size(size)}, the disk has "
                             f"{format_size(free)} free. Free some space, choose another output folder, or raise "
                             "the memory limit.")


def _scaled_copies(pair: PairSources, plan: list, standard: list, scaling: str, dates: list,
                   cva_path: Optional[str], angle_path: Optional[str], progress: Progress):
    """Write each date scaled as the network takes it into ``dates`` (ScratchCubes) and the
    pre-detection rasters (float64, NaN where invalid) asked for."""
    georef = pair.t1.georef
    fits = [{"mode": "standardize", "offset": o, "scale": s} for o, s in standard]
    inputs = fits if scaling == "standardize" else [{"mode": "none", "offset": np.float32(0), "scale": np.float32(1)}] * 2
    with contextlib.ExitStack() as stack:
        cva = stack.enter_context(RasterWriter(cva_path, georef, dtype="float64", nodata=math.nan)) if cva_path else None
        angle = (stack.enter_context(RasterWriter(angle_path, georef, dtype="float64", nodata=math.nan))
                 if angle_path else None)
        for window in windows(plan, progress, "scaling the dates", "preparing"):
            c1, c2, _, valid = pair.read(*window)
            z = [apply_scaling(c, valid, fit) for c, fit in zip((c1, c2), fits)]
            if cva is not None:
                mag = vector_length(z[1] - z[0])
                mag[~valid] = np.nan
                cva.write(mag, window[0], window[1])
            if angle is not None:
                ang = angle_between(z[0], z[1], valid)
                ang[~valid] = np.nan
                angle.write(ang, window[0], window[1])
            for date, c, scaled, fit in zip(dates, (c1, c2), z, inputs):
                date.write(window[0], window[1], scaled if fit["mode"] == "standardize" else
                           apply_scaling(c, valid, fit), valid)


def _training_pixels(p: dict, rule: Optional[str], valid: np.ndarray, mask_path: Optional[str], plan: list,
                     score_path: Optional[str], budget: int, progress: Progress) -> np.ndarray:
    """select_training_pixels with the mask read by windows and the rule's score cut on its raster."""
    if mask_path or rule == "all":
        mask = read_training_mask(mask_path, valid.shape, plan) if mask_path else None
        return select_training_pixels(None, None, valid, "all", mask=mask)
    progress.update("preparing", 0.5, "choosing the training pixels", force=True)
    score = ScoreRaster(score_path, budget, progress)
    try:
        if rule == "cva-otsu":
            cut = threshold_of_raster(score, "otsu", budget=budget)
        else:
            cut = quantile_of_raster(score, p["training_fraction"], budget)
        chosen = np.zeros(valid.shape, dtype=bool)
        for r, values, ok in score.windows():
            chosen[r:r + values.shape[0]] = ok & (values <= cut)
    finally:
        score.close()
    return chosen if chosen.any() else valid.copy()  # a constant score: every valid pixel ties


def _features(model, dates: list, valid: np.ndarray, dev, tile: int, storage: int, txn, stack, progress):
    """Both dates' fused features in scratch copies (ScratchCubes, 2h channels), in eval mode."""
    import torch

    from .layerwise import tiled_features

    rows, cols = valid.shape
    progress.update("detecting", 0.0, "extracting features", force=True)
    out = []
    model.eval()
    for i, date in enumerate(dates, 1):
        def cube(channels, i=i):
            out.append(stack.enter_context(ScratchCube(txn.scratch("change", f"f{i}.f32"), rows, cols, channels)))
            return out[-1]

        with torch.no_grad():
            tiled_features(model, date, valid, dev, tile, SubProgress(progress, (i - 1) / 2, 0.5), f" of date {i}",
                           scratch=lambda name, i=i: txn.scratch("change", f"date{i}-{name}"),
                           memory_budget=storage, out=cube)
    return out


def _compare(feats: list, plan: list, score: str, cva_path: Optional[str], writer: RasterWriter,
             acd: Optional[Moments], progress: Progress):
    """Write the change magnitude window by window (detector.score_pair's), overwrite date 1's
    features with |f1 - f2| (0 where invalid), and add it to ``acd``'s moments."""
    from ..io.gdal_utils import gdal as _gdal

    ds = _gdal().Open(cva_path) if cva_path else None
    try:
        for row, col, rows, cols in windows(plan, progress, "comparing the features"):
            f1, valid = feats[0].read(row, col, rows, cols)
            f2, _ = feats[1].read(row, col, rows, cols)
            cva = ds.GetRasterBand(1).ReadAsArray(col, row, cols, rows) if ds is not None else None
            magnitude = change_score(f1, f2, score, cva)
            block = magnitude.astype(np.float32)
            block[~valid] = SCORE_NODATA
            writer.write(block, row, col)
            diff = np.abs(f1 - f2, out=f1)
            diff[~valid] = 0.0
            feats[0].write(row, col, diff, valid)
            if acd is not None:
                acd.add(valid_pixels(diff, valid))
    finally:
        ds = None
