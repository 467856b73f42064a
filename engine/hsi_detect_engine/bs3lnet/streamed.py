"""Streamed BS3LNet: the anomaly pipeline's BS3LNet on a scene larger than the memory limit.

Pass 1 accumulates the valid pixels' scaling statistics in float64 (fit_scaling's values);
pass 2 writes the scaled scene into a scratch copy on disk (io/scratch.py). Training draws
its blind-spot batches from a crop of that copy as large as the memory budget allows, moved
to a new random place every so many iterations (crop_period); a crop that holds the whole
scene is read once and gives the in-memory trainer's batches. Detection reads each
tile with a halo of the network's receptive radius, so that the tile's core scores equal the
whole-image ones, and writes them into a float64 raw raster; score 'rx' first accumulates
the residuals' mean and covariance over the tiles; score 'mse+rx' writes its mse and the
smoothing's guide into rasters of their own, then its RX part from windows of rows of the scaled
copy, and fuses them from there (fusion.py). The last
passes (0..1, threshold, binary map, objects) are streamed RX's (streaming/outputs.py).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from ..errors import HsiDetectError
from ..io.memory import format_size
from ..io.products.wavelengths import wavelength_metadata
from ..io.reader import RasterSource, no_valid_pixel
from ..io.scratch import ScratchCube, fill_scratch
from ..io.tiles import choose_tile, iter_tiles
from ..io.writer import RasterWriter
from ..parameters import MODEL_KEYS
from ..progress import Progress, SubProgress
from ..scaling import apply_scaling, scaling_of
from ..streaming.budget import gdal_cache, window_plan
from ..streaming.outputs import write_anomaly_outputs
from ..streaming.rx import describe_bands, source_moments, windows
from ..streaming.scores import ScoreRaster, quantile_of_raster
from ..streaming.statistics import Moments
from .detector import CPU_TILE_BYTES, _bytes_per_pixel, _forward, build_network, load, load_network, store, \
    trainer_on, training_bytes, training_steps

WINDOW_PER_BAND = 24  # a window of the passes over the source: the float32 read with its validity and valid
#                       pixels' copy, or with the scaling's two float32 results (16), and room for GDAL's buffers
WINDOW_PER_PIXEL = 16
CROP_PER_BAND = 4  # a training crop: the float32 pixels on the training device
CROP_PER_PIXEL = 18  # its validity, the centres' indices and their shuffled order (int64)
TILE_HOST_PER_BAND = 8  # a detection tile in host memory: its pixels and, for score 'rx', the network's output
TILE_HOST_PER_PIXEL = 16
MIN_TILE = 32
FUSED_PER_PIXEL = 200  # a window of the fusion besides its guide: the parts, their sum, the smoothing's weights
RX_PER_BAND = 48  # a window of the RX part: the float32 rows read, their float64 copy and, at the
#                   smoothing's peak, four float64 arrays as large (fusion.smooth) or the pixels measured
MAX_CROPS = 8  # training crops at a time


def stream_bs3lnet_anomaly(src: RasterSource, txn, limit: int, p: dict, *, device: str, seed: int,
                           model_path: Optional[str], save_model: Optional[str], threshold: str,
                           threshold_value: Optional[float], top_fraction: Optional[float], false_alarm_rate: float,
                           min_object_size: int, metadata: dict, progress: Progress) -> dict:
    """BS3LNet on the scene read window by window, into the transaction's 'score' (and 'binary',
    'objects' and 'model') outputs. ``p``: BS3LNet's resolved parameters."""
    if p["score_rounds"] > 0:
        raise HsiDetectError("Blind scoring rounds (score_rounds above 0) need the whole scene in memory, which "
                             f"exceeds the memory limit of {format_size(limit)}; set score_rounds to 0 or raise "
                             "the memory limit.")
    p = dict(p)
    rows, cols, nb = src.height, src.width, len(src.band_numbers)
    budget, plan = window_plan(src, limit, WINDOW_PER_BAND * nb + WINDOW_PER_PIXEL)
    progress.log(f"{rows} x {cols} pixels x {nb} bands exceed the memory limit of {format_size(limit)} in memory: "
                 f"streaming BS3LNet through a scratch copy, read in {len(plan)} windows.")
    info = {"streamed": True, "windows": len(plan)}
    with gdal_cache(limit, src.block_bytes):
        src, stats = source_moments(src, plan, SubProgress(progress, 0.0, 0.4), "scaling statistics", full=False,
                                    stage="reading")
        try:
            if stats.n == 0:
                raise no_valid_pixel(src.path)
            progress.log(describe_bands(src))
            metadata = {**metadata, **wavelength_metadata(src)}
            info.update({"bands": len(src.band_numbers), "valid_pixels": stats.n})
            return _run(src, stats, plan, budget, txn, p, device, seed, model_path, save_model, info, threshold,
                        threshold_value, top_fraction, false_alarm_rate, min_object_size, metadata, progress)
        finally:
            src.close()


def _run(src, stats, plan, budget, txn, p, device, seed, model_path, save_model, info, threshold, threshold_value,
         top_fraction, false_alarm_rate, min_object_size, metadata, progress) -> dict:
    import torch

    from ..runtime import cancel_hooks, describe_device, resolve_device, seed_everything

    rows, cols, nb = src.height, src.width, len(src.band_numbers)
    dev = resolve_device(device)
    seed_everything(seed)
    if model_path:
        tensors, config, scaling = load(model_path, nb, src.wavelengths)
        p.update({k: config[k] for k in MODEL_KEYS["bs3lnet"]})
    else:
        scaling = scaling_of(p["scaling"], nb, mean=stats.mean, deviation=stats.deviation(), lo=stats.lo, hi=stats.hi)
    scratch = fill_scratch(txn.scratch("score", "scene.f32"), (rows, cols, nb), src.read, plan,
                           lambda cube, valid: apply_scaling(cube, valid, scaling),
                           windows(plan, SubProgress(progress, 0.4, 0.6), "scaled copy", "reading"))
    with scratch:
        progress.update("preparing", 0.0, "preparing", force=True)
        net = build_network(nb, p).to(dev)
        hooks = cancel_hooks([m for m in net.modules() if isinstance(m, torch.nn.Conv2d)], progress)
        info["device"] = describe_device(dev)
        progress.update("preparing", 1.0, "ready")
        if model_path:
            load_network(net, tensors, model_path)
            info["model"] = model_path
        else:
            info["training"] = _train(net, scratch, p, stats.n, budget, dev, seed, progress)
        started = time.perf_counter()
        raw_path = txn.scratch("score", "raw.tif")
        with RasterWriter(raw_path, src.georef, dtype="float64", nodata=math.nan) as w:
            if p["score"] == "mse+rx":
                parts = tuple(txn.scratch("score", name) for name in ("mse.tif", "rx.tif", "guide.tif"))
                lo, hi, tiles = fused_tiles(net, scratch, p, dev, scaling["scale"], budget, w, parts, src.georef,
                                            progress)
            else:
                lo, hi, tiles = score_tiles(net, scratch, p, dev, scaling["scale"], budget, w, progress)
        info.update({"tiles": tiles, "detection_seconds": round(time.perf_counter() - started, 3)})
        for h in hooks:
            h.remove()
        if save_model:
            store(save_model, net, scaling, p, nb, src.wavelengths)
    info["parameters"] = p
    info.update(write_anomaly_outputs(raw_path, lo, hi, txn, src.georef, budget, threshold=threshold,
                                      threshold_value=threshold_value, top_fraction=top_fraction,
                                      false_alarm_rate=false_alarm_rate, min_object_size=min_object_size,
                                      metadata=metadata, progress=progress))
    return info


@dataclass(frozen=True)
class CropPlan:
    """The training crops: ``count`` crops of ``shape`` (rows, cols) at a time, all moved to new
    random places every ``period`` iterations; one crop of the whole scene when it fits."""

    shape: tuple
    count: int
    period: float


def crop_plan(budget: int, rows: int, cols: int, bands: int, p: dict, steps: int) -> CropPlan:
    """Crops that fit the budget together. Several small crops (each at least one patch a side)
    make each batch a sample of several places, as a batch of the in-memory trainer is; they move
    often enough for the run's crops to cover about the scene's area, and at most after one pass
    over their pixels."""
    from .blindspot import blind_count

    per_pixel = CROP_PER_BAND * bands + CROP_PER_PIXEL
    if not p["redraw"]:
        per_pixel += 16 * blind_count(p["patch_size"], p["ratio"])  # the blind draws kept per centre
    pixels = budget // per_pixel
    if pixels >= rows * cols:
        return CropPlan((rows, cols), 1, math.inf)
    smallest = p["patch_size"] ** 2
    count = max(1, min(MAX_CROPS, p["batch_size"], pixels // smallest, math.ceil(rows * cols / max(pixels, 1))))
    each = max(pixels // count, smallest)
    h = min(rows, max(p["patch_size"], math.isqrt(each)))
    shape = (h, min(cols, max(1, each // h)))
    area = count * shape[0] * shape[1]
    places = math.ceil(rows * cols / area)  # crop sets that cover about the scene's area
    return CropPlan(shape, count, max(1, min(math.ceil(area / p["batch_size"]), steps // places)))


class CropBatches:
    """Blind-spot batches from crops of the scratch copy: each batch takes its share of patches
    from each crop (BlindSpotBatches over the crop).

    Crop k's batches are seeded with seed + k, so one crop that holds the whole scene (read once,
    never moved) gives exactly the in-memory trainer's batches. ``seen`` marks every pixel that was
    a patch's centre.
    """

    def __init__(self, scratch: ScratchCube, plan: CropPlan, p: dict, seed: int, device):
        self.scratch, self.plan, self.p, self.seed, self.device = scratch, plan, p, seed, device
        rows, cols = scratch.valid.shape
        self.whole = plan.shape == (rows, cols)
        self.rng = np.random.default_rng([int(seed), 104729])
        self.seen = np.zeros((rows, cols), dtype=bool)
        self.crops = 0
        share, extra = divmod(p["batch_size"], plan.count)
        self._sizes = [share + (j < extra) for j in range(plan.count)]
        self._valid_rows = np.cumsum(scratch.valid.sum(axis=1))  # to find the k-th valid pixel
        self._load()

    def _place(self) -> tuple:
        rows, cols = self.scratch.valid.shape
        h, w = self.plan.shape
        r, c = int(self.rng.integers(0, rows - h + 1)), int(self.rng.integers(0, cols - w + 1))
        if not self.scratch.valid[r:r + h, c:c + w].any():  # centre it on a valid pixel instead
            k = int(self.rng.integers(0, int(self._valid_rows[-1])))
            y = int(np.searchsorted(self._valid_rows, k, side="right"))
            before = int(self._valid_rows[y - 1]) if y else 0
            x = int(np.flatnonzero(self.scratch.valid[y])[k - before])
            r, c = min(max(0, y - h // 2), rows - h), min(max(0, x - w // 2), cols - w)
        return r, c

    def _load(self):
        import torch

        from .blindspot import BlindSpotBatches

        p, self.current = self.p, []
        for size in self._sizes:
            origin = (0, 0) if self.whole else self._place()
            cube, valid = self.scratch.read(*origin, *self.plan.shape)
            batches = BlindSpotBatches(torch.from_numpy(cube).to(self.device), torch.from_numpy(valid).to(self.device),
                                       p["patch_size"], p["ratio"], p["window"], size, p["redraw"],
                                       self.seed + self.crops)
            self.current.append((origin, batches))
            self.crops += 1
        self._left = self.plan.period

    def next(self):
        """The next batch (its ``centres`` index each part's own crop)."""
        import torch

        from .blindspot import Batch

        if self._left <= 0:
            self._load()
        self._left -= 1
        parts = []
        for (r, c), batches in self.current:
            part = batches.next()
            centres = part.centres.cpu().numpy()
            self.seen[r + centres // self.plan.shape[1], c + centres % self.plan.shape[1]] = True
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return Batch(*(torch.cat([getattr(b, f.name) for b in parts]) for f in fields(Batch)))


def _train(net, scratch: ScratchCube, p: dict, valid_pixels: int, budget: int, dev, seed: int,
           progress: Progress) -> dict:
    from ..training import train

    rows, cols, nb = scratch.shape
    steps = training_steps(p, valid_pixels)
    if dev.type == "cpu":  # the training step's own memory comes out of the crops' share
        budget = max(budget // 8, budget - training_bytes(p, nb))
    plan = crop_plan(budget, rows, cols, nb, p, steps)
    optimizer, batches, loss_at = trainer_on(net, CropBatches(scratch, plan, p, seed, dev), p)
    started = time.perf_counter()
    history = train(net, optimizer, loss_at, steps, progress, label="iteration")
    seen = int(batches.seen.sum())
    where = "the whole scene" if batches.whole else (f"{batches.crops} crops of {plan.shape[0]} x {plan.shape[1]} "
                                                     f"pixels, {plan.count} at a time, moved every {plan.period} "
                                                     "iterations")
    progress.log(f"Training saw {seen} distinct pixels ({100.0 * seen / valid_pixels:.1f}% of the valid pixels) "
                 f"as patch centres, from {where}.")
    return {"iterations": steps, "epochs": round(steps * p["batch_size"] / valid_pixels, 4),
            "seconds": round(time.perf_counter() - started, 3),
            "final_loss": float(np.mean(history[-10:])) if history else None,
            "pixels_seen": seen, "crop": [] if batches.whole else list(plan.shape), "crops": batches.crops}


def tile_side(p: dict, rows: int, cols: int, bands: int, overlap: int, budget: int, dev) -> int:
    """The detection tiles' core side: choose_tile's (free memory on the device, the CPU's cap), at
    most what keeps the tile's host arrays (and on the CPU its activations) within the budget."""
    activations = _bytes_per_pixel(bands, p["features"])
    host = TILE_HOST_PER_BAND * bands + TILE_HOST_PER_PIXEL + (activations if dev.type == "cpu" else 0)
    cap = max(MIN_TILE, math.isqrt(int(budget // host)) - 2 * overlap)
    side = choose_tile(p["tile_size"], rows, cols, activations, dev, overlap,
                       cpu_cap_bytes=min(CPU_TILE_BYTES, budget), minimum=MIN_TILE)
    return min(side or max(rows, cols), cap)


def score_tiles(net, scratch: ScratchCube, p: dict, dev, scale, budget: int, writer: RasterWriter,
                progress: Progress) -> tuple:
    """Write each tile core's raw score (score_image's, invalid pixels NaN); returns (min, max, tiles)."""
    import torch

    from ..classical import mahalanobis, safe_inverse

    rows, cols, nb = scratch.shape
    overlap = net.receptive_radius(p["blocks"])
    tiles = list(iter_tiles(rows, cols, tile_side(p, rows, cols, nb, overlap, budget, dev), overlap))
    weights = torch.as_tensor(np.asarray(scale, dtype=np.float32), device=dev) if p["score"] == "mse" else None
    net.eval()

    def residuals(message, fraction):
        """(tile, its core's residual x - y (rows, cols, bands), the core's validity) of each tile."""
        sub = SubProgress(progress, *fraction)
        for i, t in enumerate(tiles):
            sub.update("detecting", i / len(tiles), f"{message}: tile {i + 1}/{len(tiles)}")
            x, valid = scratch.read(t.row, t.col, t.rows, t.cols)
            rs, cs = t.core_in_tile
            y = _forward(net, torch.from_numpy(x).to(dev), False)
            yield t, (x - y)[rs, cs], valid[rs, cs]

    lo, hi = math.inf, -math.inf

    def put(t, core_score, core_valid):
        nonlocal lo, hi
        block = np.full(core_valid.shape, np.nan)
        if core_valid.any():
            values = core_score[core_valid]
            block[core_valid] = values
            lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
        writer.write(block, t.core_row, t.core_col)

    if p["score"] == "rx":
        moments = Moments(nb)
        for _, r, ok in residuals("residual statistics", (0.0, 0.5)):
            moments.add(r[ok])
        mean, inv = moments.mean, safe_inverse(moments.covariance())
        for t, r, ok in residuals("scores", (0.5, 0.5)):
            score = np.zeros(ok.shape)
            if ok.any():
                score[ok] = mahalanobis(r[ok], mean, inv)
            put(t, score, ok)
    else:
        for i, t in enumerate(tiles):
            progress.update("detecting", i / len(tiles), f"tile {i + 1}/{len(tiles)}")
            x, valid = scratch.read(t.row, t.col, t.rows, t.cols)
            rs, cs = t.core_in_tile
            error = _forward(net, torch.from_numpy(x).to(dev), True, weights)[:, :, 0]
            put(t, error[rs, cs].astype(np.float64), valid[rs, cs])
    progress.update("detecting", 1.0, f"{len(tiles)} tiles")
    return lo, hi, len(tiles)


def fused_tiles(net, scratch: ScratchCube, p: dict, dev, scale, budget: int, writer: RasterWriter, parts: tuple,
                georef, progress: Progress) -> tuple:
    """Score 'mse+rx' (fusion.fuse) into ``writer``: the tiles' mse and the scaled scene's guide
    components written into the rasters at ``parts``, the guide's spacing selected from its raster;
    the RX part (fusion.rx_rows) from windows of rows of the scaled copy, each read with a row above
    and below; each part's root median and MAD selected from its raster; then the sums smoothed in
    windows of rows likewise; returns (min, max, tiles)."""
    from ..classical import safe_inverse
    from .fusion import WIDTH, guide_of, projection, root, row_windows, rx_rows

    mse_path, rx_path, guide_path = parts
    with RasterWriter(mse_path, georef, dtype="float64", nodata=math.nan) as w:
        _, _, tiles = score_tiles(net, scratch, dict(p, score="mse"), dev, scale, budget, w,
                                  SubProgress(progress, 0.0, 0.6))
    rows, cols, nb = scratch.shape
    cores = list(iter_tiles(rows, cols, tile_side(p, rows, cols, nb, 0, budget, dev)))  # detection's tile size

    def pixels(message, fraction):
        """(tile, its valid pixels (n, bands), its validity) of each core; no copy where all are valid."""
        sub = SubProgress(progress, *fraction)
        for i, t in enumerate(cores):
            sub.update("detecting", i / len(cores), f"{message}: tile {i + 1}/{len(cores)}")
            x, ok = scratch.read(t.core_row, t.core_col, t.core_rows, t.core_cols)
            yield t, x.reshape(-1, nb) if ok.all() else x[ok], ok

    moments = Moments(nb)
    for _, x, _ in pixels("RX statistics", (0.6, 0.05)):
        moments.add(x)
    cov = moments.covariance()
    mean, inv, matrix = moments.mean, safe_inverse(cov), projection(cov)
    k = matrix.shape[1]
    with RasterWriter(guide_path, georef, bands=k, dtype="float64", nodata=math.nan) as g:
        for t, x, ok in pixels("guide", (0.65, 0.05)):
            guide = np.full(ok.shape + (k,), np.nan)
            guide[ok] = guide_of(x, mean, matrix)
            g.write(guide, t.core_row, t.core_col)

    guide = GuideRows(guide_path, budget, progress)
    try:
        spacing = guide.spacing()
        step = max(1, min(rows, budget // (cols * (RX_PER_BAND * nb + 8 * k + FUSED_PER_PIXEL))))
        windows = list(row_windows(rows, step))
        sub = SubProgress(progress, 0.7, 0.1)
        with RasterWriter(rx_path, georef, dtype="float64", nodata=math.nan) as w:
            for i, (r, top, bottom, core) in enumerate(windows):
                sub.update("detecting", i / len(windows), f"RX: rows {r + 1}-{r + core.stop - core.start}")
                x, ok = scratch.read(top, 0, bottom - top, cols)
                block = np.where(ok, rx_rows(x, guide.rows(top, bottom - top)[0], ok, spacing, mean, inv), np.nan)
                w.write(block[core], r, 0)

        progress.update("detecting", 0.8, "fusing mse and RX")
        rasters = [ScoreRaster(path, budget, progress) for path in (mse_path, rx_path)]
        try:
            statistics = []  # each part's root median and MAD
            for raster in rasters:
                median = quantile_of_raster(raster.transformed(root), 0.5, budget)
                mad = quantile_of_raster(raster.transformed(lambda v, m=median: np.abs(root(v) - m)), 0.5, budget)
                statistics.append((median, mad))
        finally:
            for raster in rasters:
                raster.close()
        fused = FusedRows((mse_path, rx_path), statistics, guide)
        try:
            sigma = WIDTH * spacing
            least = min((float(v[ok].min()) for _, v, ok in fused.windows(sigma) if ok.any()), default=0.0)
            lo, hi = math.inf, -math.inf
            for r, v, ok in fused.windows(sigma):
                out = np.full(ok.shape, np.nan)
                out[ok] = (v[ok] - least) ** 2
                if ok.any():
                    lo, hi = min(lo, float(out[ok].min())), max(hi, float(out[ok].max()))
                writer.write(out, r, 0)
        finally:
            fused.close()
    finally:
        guide.close()
    progress.update("detecting", 1.0, f"{tiles} tiles")
    return lo, hi, tiles


class GuideRows:
    """The guide's raster read back in windows of rows (``step`` rows, within the budget)."""

    def __init__(self, path: str, budget: int, progress: Progress):
        from ..io.gdal_utils import gdal

        self.ds = gdal().Open(path)
        self.budget, self.progress = budget, progress
        self.height, self.width, self.k = self.ds.RasterYSize, self.ds.RasterXSize, self.ds.RasterCount
        self.step = max(1, min(self.height, budget // (self.width * (8 * self.k + FUSED_PER_PIXEL))))

    def rows(self, r: int, n: int) -> tuple:
        """(guide (n, cols, k) with invalid pixels 0, validity)."""
        g = read_rows(self.ds, r, n, self.width).reshape(n, self.width, self.k)
        ok = np.isfinite(g).all(axis=-1)
        g[~ok] = 0.0
        return g, ok

    def spacing(self) -> float:
        """fusion.spacing_of the distances between horizontally adjacent valid pixels, selected exactly."""
        distances = AdjacentDistances(self)
        return quantile_of_raster(distances, 0.5, self.budget) if distances.summary()[0] else 0.0

    def close(self):
        self.ds = None


def read_rows(ds, r: int, n: int, width: int) -> np.ndarray:
    """Rows r..r+n of a raster as float64, (n, cols) or (n, cols, bands)."""
    a = ds.ReadAsArray(0, r, width, n).astype(np.float64)
    return a if a.ndim == 2 else np.moveaxis(a, 0, -1)


class FusedRows:
    """The parts' rasters read back beside a GuideRows, in its windows of rows: their standardised
    sums smoothed (fusion.smooth), each window read with one row above and below it."""

    def __init__(self, part_paths: tuple, statistics: list, guide: GuideRows):
        from ..io.gdal_utils import gdal

        self.parts = [gdal().Open(path) for path in part_paths]
        self.statistics, self.guide = statistics, guide

    def windows(self, sigma: float):
        """(row, the sum smoothed with ``sigma`` (rows, cols), validity) of each window."""
        from .fusion import root, row_windows, smooth, standardised

        g = self.guide
        for r, top, bottom, core in row_windows(g.height, g.step):
            g.progress.check()
            guide, ok = g.rows(top, bottom - top)
            total = np.zeros(ok.shape)
            for ds, ms in zip(self.parts, self.statistics):
                total[ok] += standardised(root(read_rows(ds, top, bottom - top, g.width)[ok]), *ms)
            yield r, smooth(total, guide, ok, sigma)[core], ok[core]

    def close(self):
        self.parts = []


class AdjacentDistances:
    """The distances between horizontally adjacent valid pixels of a GuideRows' raster, read as
    quantile_of_raster reads a score raster."""

    summary = ScoreRaster.summary

    def __init__(self, guide: GuideRows):
        self.guide = guide

    def values(self):
        from .fusion import adjacent_distances

        g = self.guide
        for r in range(0, g.height, g.step):
            g.progress.check()
            yield adjacent_distances(*g.rows(r, min(g.step, g.height - r)))
