"""The scenes the benchmark runs on, and the input files it prepares for them.

- anomaly: every .npz in DATA/anomaly (cube + gt), read by the pipeline as it is;
- change: every .npz in DATA/change (t1, t2, gt with 255 = unlabelled), split into two
  GeoTIFFs so that the change pipeline reads a pair of rasters, as a user gives it;
- simulated: hyperspectral change pairs made by the engine's simulator from real scenes;
- scaling: square mosaics of real 205-band scenes, each tile mirrored at random, at a
  chosen size (a pair made by the simulator from the mosaic for the change network).

Prepared inputs live under WORK/inputs and are made once.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

UNLABELLED = 255
DATA_VARIABLE = "HSI_DETECT_DATA"
# 100 x 100 x 205 AVIRIS scenes the scaling mosaics are built from.
MOSAIC_SOURCES = ("abu-airport-1", "abu-airport-2", "abu-airport-3", "abu-urban-4", "abu-urban-5")
TILE = 100


@dataclass
class Scene:
    name: str
    kind: str  # "anomaly" or "change"
    group: str  # "real", "simulated" or "scaling"
    shape: tuple  # (rows, cols, bands)
    inputs: dict  # anomaly: {"input": path}; change: {"t1": path, "t2": path}
    gt_path: str  # .npy or .npz (key "gt")
    identity: str = ""  # what the cache key uses to tell input files apart
    notes: dict = field(default_factory=dict)
    make: Optional[Callable[[], None]] = None  # writes the input files when they are not there yet

    def ground_truth(self) -> np.ndarray:
        if self.gt_path.endswith(".npz"):
            with np.load(self.gt_path) as z:
                return z["gt"]
        return np.load(self.gt_path)

    @property
    def unlabelled(self) -> Optional[int]:
        return UNLABELLED if self.kind == "change" else None


def data_folder() -> str:
    """The folder with anomaly/*.npz and change/*.npz: $HSI_DETECT_DATA, else ../shared/data
    beside the repository (the benchmark's --data default and the studies' data)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get(DATA_VARIABLE, os.path.join(os.path.dirname(repo), "shared", "data"))


def _file_identity(*paths: str) -> str:
    h = hashlib.sha1()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _npz_shape(path: str, key: str) -> tuple:
    with np.load(path) as z:
        return tuple(int(s) for s in z[key].shape)


def anomaly_scenes(data_dir: str) -> list:
    scenes = []
    for path in sorted(glob.glob(os.path.join(data_dir, "anomaly", "*.npz"))):
        name = os.path.splitext(os.path.basename(path))[0]
        scenes.append(Scene(name, "anomaly", "real", _npz_shape(path, "cube"), {"input": path}, path,
                            _file_identity(path)))
    return scenes


def _write_tif(path: str, array: np.ndarray):
    from hsi_detect_engine.io.cube import Georef
    from hsi_detect_engine.io.writer import write_raster

    if not os.path.exists(path):
        write_raster(path, array, Georef(array.shape[0], array.shape[1]), dtype=array.dtype.name)


def change_scenes(data_dir: str, work_dir: str) -> list:
    scenes = []
    for path in sorted(glob.glob(os.path.join(data_dir, "change", "*.npz"))):
        name = os.path.splitext(os.path.basename(path))[0]
        identity = _file_identity(path)
        folder = os.path.join(work_dir, "inputs", f"{name}-{identity}")
        t1, t2, gt = (os.path.join(folder, f) for f in ("t1.tif", "t2.tif", "gt.npy"))
        if not all(os.path.exists(p) for p in (t1, t2, gt)):
            os.makedirs(folder, exist_ok=True)
            with np.load(path) as z:
                _write_tif(t1, z["t1"])
                _write_tif(t2, z["t2"])
                np.save(gt, z["gt"])
        scenes.append(Scene(name, "change", "real", _npz_shape(path, "t1"), {"t1": t1, "t2": t2}, gt, identity))
    return scenes


def simulator():
    """The engine's simulated change-pair maker, or None while it does not exist."""
    try:
        from hsi_detect_engine import simulate
    except ImportError:
        return None
    return simulate


def mosaic(data_dir: str, size: int, seed: int = 0):
    """A size x size x 205 cube and its anomaly map, tiled from real scenes, each tile mirrored at random."""
    tiles = []
    for name in MOSAIC_SOURCES:
        with np.load(os.path.join(data_dir, "anomaly", f"{name}.npz")) as z:
            tiles.append((z["cube"].astype(np.int16), z["gt"]))
    rng = np.random.default_rng(seed)
    n = -(-size // TILE)
    cube = np.empty((n * TILE, n * TILE, tiles[0][0].shape[2]), np.int16)
    gt = np.empty((n * TILE, n * TILE), np.uint8)
    for i in range(n):
        for j in range(n):
            c, g = tiles[rng.integers(len(tiles))]
            if rng.random() < 0.5:
                c, g = c[::-1], g[::-1]
            if rng.random() < 0.5:
                c, g = c[:, ::-1], g[:, ::-1]
            cube[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = c
            gt[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = g
    return cube[:size, :size], gt[:size, :size]


def scaling_scene(data_dir: str, work_dir: str, size: int) -> Optional[Scene]:
    """The size x size mosaic (made on first use: the largest is 400 MB); None when the
    data folder lacks the scenes it is made from."""
    if not all(os.path.exists(os.path.join(data_dir, "anomaly", f"{n}.npz")) for n in MOSAIC_SOURCES):
        return None
    folder = os.path.join(work_dir, "inputs", f"mosaic-{size}")
    path, gt_path = os.path.join(folder, "cube.tif"), os.path.join(folder, "gt.npy")

    def make():
        if not (os.path.exists(path) and os.path.exists(gt_path)):
            os.makedirs(folder, exist_ok=True)
            cube, gt = mosaic(data_dir, size)
            _write_tif(path, cube)
            np.save(gt_path, gt)

    return Scene(f"mosaic-{size}", "anomaly", "scaling", (size, size, 205), {"input": path}, gt_path,
                 f"mosaic-{size}-v1", make=make)


def _simulator_identity(sim) -> str:
    with open(sim.__file__, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()[:12]


def _pair_scene(name: str, group: str, shape: tuple, folder: str, identity: str, build) -> Scene:
    """A change Scene whose t1/t2 GeoTIFFs and gt.npy ``build()`` makes in ``folder`` on first use."""
    t1, t2, gt = (os.path.join(folder, f) for f in ("t1.tif", "t2.tif", "gt.npy"))

    def make():
        if all(os.path.exists(p) for p in (t1, t2, gt)):
            return
        os.makedirs(folder, exist_ok=True)
        pair = build()
        _write_tif(t1, pair.t1)
        _write_tif(t2, pair.t2)
        np.save(gt, pair.gt.astype(np.uint8))

    return Scene(name, "change", group, shape, {"t1": t1, "t2": t2}, gt, identity, make=make)


def simulated_scenes(data_dir: str, work_dir: str) -> list:
    """The engine simulator's preset hyperspectral change pairs (none while there is no simulator)."""
    sim = simulator()
    if sim is None:
        return []
    ident = _simulator_identity(sim)
    scenes = []
    for name, preset in sim.PRESETS.items():
        path = os.path.join(data_dir, "anomaly", preset["scene"])
        if not os.path.exists(path):
            continue
        shape = _npz_shape(path, "cube")
        scenes.append(_pair_scene(name, "simulated", shape, os.path.join(work_dir, "inputs", f"{name}-{ident}"),
                                  ident, lambda name=name: sim.preset_pair(name, os.path.join(data_dir, "anomaly"))))
    return scenes


def scaling_pair(data_dir: str, work_dir: str, size: int, bands: Optional[int] = None) -> Optional[Scene]:
    """A change pair simulated from the size x size mosaic (None while there is no simulator)."""
    sim = simulator()
    if sim is None:
        return None
    ident = _simulator_identity(sim)
    nb = bands or 205
    name = f"sim-mosaic-{size}" + (f"x{bands}" if bands else "")

    def build():
        return sim.simulate_change_pair(mosaic(data_dir, size)[0], seed=0, bands=bands)

    return _pair_scene(name, "scaling", (size, size, nb), os.path.join(work_dir, "inputs", f"{name}-{ident}"),
                       f"{name}-{ident}", build)
