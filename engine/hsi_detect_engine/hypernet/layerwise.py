"""HyperNet's tiled features, computed layer by layer so that each global statistic is computed once.

Channel attention (and, with each date's own statistics, every BatchNorm of the encoder)
needs a statistic of a whole-image activation before the layers after it can run. So the
encoder (``HyperNetModel.layerwise_features``) runs as a sequence of passes over the
tiles, separated by these statistics: a pass computes, tile by tile, the layers up to the
next statistic from the activations earlier passes stored, stores the tiles' cores of its
result and accumulates the statistic over their valid pixels (in float64); the statistic
is then fixed and the next pass runs. A pass reads each tile with only the overlap its own
layers reach (1 pixel for a 3x3 conv, 3 for the 7x7 spatial attention, 2 for the 5x5 pool),
so every core pixel gets exactly the context it has in the whole image: the features equal
the whole-image features up to float rounding (the order of the global sums), borders and
nodata included. The whole costs about one whole-image forward pass, plus writing and
reading the stored activations (at most about 4h channels at a time): on the GPU or in
memory when they fit, else in a scratch folder (TMPDIR) that is removed whether the
extraction ends, fails or is cancelled, or (a streamed run) in scratch files the run names.
A streamed run also gives the input as a scratch copy (io/scratch.py) read tile by tile, and
takes the features into one.

The passes are found by building the encoder lazily: an activation is a ``Lazy`` (what it
is computed from and how far it reaches); a global statistic, or ``keep`` for an activation
used more than once, stores it. A first run on a 1 x 1 image counts the passes and the
stored channels, which size the storage before any work starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from typing import Callable, Optional, Union

import numpy as np

from ..errors import HsiDetectError
from ..io.scratch import ScratchCube
from ..io.tiles import Tile, available_memory_bytes, iter_tiles
from ..progress import Progress
from ..runtime import channels_last, image_tensor, release_free_memory

STORAGE_FRACTION = 0.25  # share of free (device or host) memory the stored activations may take


class Lazy:
    """A whole-image activation, computed on a tile's window when a pass needs it:
    compute(*values of inputs), exact wherever the window reaches ``radius`` pixels beyond."""

    def __init__(self, radius: int, compute, inputs: tuple = ()):
        self.radius, self.compute, self.inputs = radius, compute, inputs

    def value(self, window: "_Window"):
        key = id(self)
        if key not in window.values:
            window.values[key] = self.compute(*(x.value(window) for x in self.inputs))
        return window.values[key]


class Stored(Lazy):
    """An activation held whole: a (1, C, rows, cols) tensor (on the GPU or in memory) or a
    (rows, cols, C) array (memory-mapped on disk, or the input image) or ScratchCube."""

    def __init__(self, data):
        super().__init__(0, None)
        self.data = data

    def value(self, window: "_Window"):
        rs, cs = window.rows, window.cols
        if isinstance(self.data, (np.ndarray, ScratchCube)):
            return image_tensor(self.data[rs, cs], window.device)
        return self.data[:, :, rs, cs].to(window.device)

    def put(self, target: tuple, core, valid: np.ndarray):
        """Store a tile's core (1, C, h, w) at ``target`` (row and column slices); ``valid``: its validity."""
        if isinstance(self.data, np.ndarray):
            self.data[target] = core[0].permute(1, 2, 0).cpu().numpy()
        elif isinstance(self.data, ScratchCube):
            self.data.write(target[0].start, target[1].start, core[0].permute(1, 2, 0).cpu().numpy(), valid)
        else:
            self.data[:, :, target[0], target[1]] = core.to(self.data.device)


class _Statistic:
    """A global statistic of an activation, accumulated in float64 over the valid pixels of
    the tiles' cores: 'pool' (average, maximum) or 'moments' (mean, biased variance)."""

    def __init__(self, kind: str):
        self.kind, self.total, self.second, self.count = kind, None, None, 0

    def add(self, core, inside: np.ndarray):
        """core: (1, C, h, w) values of a tile's core; inside: (h, w) bool, its valid pixels."""
        import torch

        pixels = core[0].permute(1, 2, 0).reshape(-1, core.shape[1])  # (h * w, C): a view of a channels-last core
        if not inside.all():
            pixels = pixels[torch.from_numpy(inside.reshape(-1)).to(core.device)]
        if self.total is None:
            self.total = torch.zeros(core.shape[1], dtype=torch.float64, device=core.device)
            self.second = torch.full_like(self.total, -float("inf")) if self.kind == "pool" else self.total.clone()
        self.total += pixels.sum(dim=0, dtype=torch.float64)
        if self.kind == "moments":
            self.second += (pixels * pixels).sum(dim=0, dtype=torch.float64)
        elif pixels.shape[0]:
            self.second = torch.maximum(self.second, pixels.amax(dim=0).double())
        self.count += pixels.shape[0]

    def result(self):
        """The statistic as two (1, C, 1, 1) float32 tensors (zeros where no pixel is valid,
        as in the whole-image pass)."""
        import torch

        mean = self.total / max(self.count, 1)
        if self.kind == "pool":
            other = torch.where(torch.isfinite(self.second), self.second, torch.zeros_like(self.second))
        else:
            other = (self.second / max(self.count, 1) - mean * mean).clamp_min(0.0)
        return mean.float().view(1, -1, 1, 1), other.float().view(1, -1, 1, 1)


class _Window:
    """The part of the image a tile reads, and the values computed on it."""

    def __init__(self, tile: Tile, device):
        self.rows = slice(tile.row, tile.row + tile.rows)
        self.cols = slice(tile.col, tile.col + tile.cols)
        self.device = device
        self.values = {}


class LayerwiseEvaluator:
    """The ``g`` of ``HyperNetModel.layerwise_features``: runs each pass as soon as the
    encoder needs a global statistic or an activation stored.

    image: the scaled image, an array or a ScratchCube. storage: a torch device for tensors, a
    folder for memory-mapped files, or ``scratch(name)`` giving the paths of working ScratchCubes.
    Records how many passes it ran and the most channels it stored at one time (``passes``,
    ``peak_channels``)."""

    def __init__(self, model, image, valid: np.ndarray, device, tile_size: int, storage,
                 progress: Progress, total_passes: int = 0, label: str = ""):
        self.model, self.image, self.valid, self.device = model, image, valid, device
        self.tile_size, self.storage, self.progress = tile_size, storage, progress
        self.total_passes, self.label = max(total_passes, 1), label
        self.passes = self.channels = self.peak_channels = 0

    # --------------------------------------------------------------- the encoder's operations

    def local(self, module, x: Lazy, radius: int) -> Lazy:
        return Lazy(x.radius + radius, module, (x,))

    def pointwise(self, fn, *xs: Lazy) -> Lazy:
        return Lazy(max(x.radius for x in xs), fn, xs)

    def norm(self, bn, x: Lazy) -> Lazy:
        if not self.model.stats.date_norm:  # the running statistics: a per-pixel affine map
            return self.pointwise(bn, x)
        stored, (mean, var) = self._store(x, "moments")
        return self.pointwise(lambda t: bn.normalise(t, mean, var), stored)

    def attend(self, attention, x: Lazy) -> Lazy:
        stored, (avg, mx) = self._store(x, "pool")
        return self.pointwise(lambda t: attention.weigh(t, avg, mx), stored)

    def keep(self, x: Lazy) -> Stored:
        return self._store(x, None)[0]

    # --------------------------------------------------------------- passes

    def features(self, out: Optional[Callable[[int], object]] = None):
        """The fused features (rows, cols, 2h) float32, in ``out(channels)`` (an array or a
        ScratchCube) when given, else in a new array."""
        result = self.model.layerwise_features(Stored(self.image), self)
        out = out or (lambda channels: np.empty(self.image.shape[:2] + (channels,), np.float32))
        return self._run_pass(result, None, out)[0].data

    def _store(self, x: Lazy, kind: Optional[str]):
        return self._run_pass(x, kind, self._allocate)

    def _run_pass(self, x: Lazy, kind: Optional[str], allocate):
        """x computed tile by tile into allocate(channels), with its statistic over the valid
        pixels of the tiles' cores when ``kind`` is 'pool' (average, maximum) or 'moments'
        (mean, biased variance). Returns (Stored, statistic as (1, C, 1, 1) tensors)."""
        import torch

        rows, cols = self.valid.shape
        tiles = list(iter_tiles(rows, cols, self.tile_size, x.radius))
        stored, statistic = None, _Statistic(kind) if kind else None
        for i, tile in enumerate(tiles):
            self.progress.update("detecting", (self.passes + i / len(tiles)) / self.total_passes,
                                 f"features{self.label}: layer pass {self.passes + 1}/{self.total_passes}, "
                                 f"tile {i + 1}/{len(tiles)}")
            rs, cs = tile.core_in_tile
            core = x.value(_Window(tile, self.device))[:, :, rs, cs]
            if stored is None:
                stored = Stored(allocate(core.shape[1]))
            target = (slice(tile.core_row, tile.core_row + tile.core_rows),
                      slice(tile.core_col, tile.core_col + tile.core_cols))
            stored.put(target, core, self.valid[target])
            if statistic is not None:
                statistic.add(core, self.valid[target])
        self.passes += 1
        release_free_memory()
        return stored, statistic.result() if statistic is not None else None

    def _allocate(self, channels: int):
        import torch

        rows, cols = self.valid.shape
        self.channels += channels
        self.peak_channels = max(self.peak_channels, self.channels)
        if isinstance(self.storage, torch.device):
            data = torch.empty((1, channels, rows, cols), dtype=torch.float32, device=self.storage,
                               memory_format=torch.channels_last)
        elif callable(self.storage):
            data = ScratchCube(self.storage(f"activations-{self.passes}.f32"), rows, cols, channels, working=True)
        else:
            handle, path = tempfile.mkstemp(suffix=".f32", dir=self.storage)
            try:  # reserve the space now: a mapped file that outgrows its disk would crash the process
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(handle, 0, rows * cols * channels * 4)
            except OSError:
                raise HsiDetectError(f"{os.path.dirname(self.storage)} ran out of space for HyperNet's tiled "
                                     "activations: free some space there or set TMPDIR to a folder on a larger "
                                     "disk.") from None
            finally:
                os.close(handle)
            data = np.memmap(path, np.float32, "r+", shape=(rows, cols, channels))
            try:  # the mapping keeps the space until it is dropped; no file is left behind
                os.remove(path)
            except OSError:  # (Windows: removed with the scratch folder)
                pass
        weakref.finalize(data, self._release, channels)
        return data

    def _release(self, channels: int):
        self.channels -= channels


def stored_channels(model, bands: int, device="cpu") -> tuple:
    """(passes, the most channels stored at one time) of the tiled features of a ``bands``-band
    image, from a run on a 1 x 1 image: what sizes the storage before any work starts."""
    import torch

    plan = LayerwiseEvaluator(model, np.zeros((1, 1, bands), np.float32), np.ones((1, 1), bool),
                              torch.device(device), 1, torch.device(device), Progress())
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            plan.features()
    finally:
        model.train(training)
    return plan.passes, plan.peak_channels


def tiled_features(model, image, valid: np.ndarray, device, tile_size: int, progress: Progress,
                   label: str = "", scratch: Union[str, Callable[[str], str], None] = None,
                   memory_budget: Optional[int] = None, out: Optional[Callable[[int], object]] = None):
    """Fused features (rows, cols, 2h) float32 of a scaled image (an array or a ScratchCube), by
    tiles, layer by layer; in ``out(channels)`` when given (see LayerwiseEvaluator.features).

    The stored activations go on the GPU when ``device`` is one and they fit in
    STORAGE_FRACTION of its free memory, else in host memory when they fit in
    ``memory_budget`` bytes (default: STORAGE_FRACTION of the free memory), else in a scratch
    folder made in ``scratch`` (default: the system's temporary folder), or, when ``scratch``
    is a function giving scratch files' paths (a streamed run, which checked their space), in
    those files.
    """
    import torch

    rows, cols, bands = image.shape
    device = torch.device(device)
    passes, peak = stored_channels(model, bands, device)
    need = peak * rows * cols * 4
    host = memory_budget if memory_budget is not None else available_memory_bytes() * STORAGE_FRACTION
    if device.type == "cuda" and need <= available_memory_bytes(device) * STORAGE_FRACTION:
        storage = device
    elif need <= host:
        storage = torch.device("cpu")
    else:
        storage = scratch if callable(scratch) else None
    folder = None
    try:
        if storage is None:
            parent = scratch or tempfile.gettempdir()
            free = shutil.disk_usage(parent).free
            if need > free:
                raise HsiDetectError(
                    f"HyperNet's tiled detection of this {rows} x {cols} image stores {need / 2**30:.1f} GiB of "
                    f"activations, but {parent} has only {free / 2**30:.1f} GiB free: free some space there or "
                    "set TMPDIR to a folder on a larger disk.")
            storage = folder = tempfile.mkdtemp(prefix="hsi-detect-hypernet-", dir=parent)
        progress.check()
        with channels_last(model):
            return LayerwiseEvaluator(model, image, valid, device, tile_size, storage, progress, passes,
                                      label).features(out)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
