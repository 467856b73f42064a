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
    n = -(-size // TILE)
    cube = np.empty((n * TILE, n * TILE, tiles[0][0].shape[2]), np.int16)
    gt = np.empty((n * TILE, n * TILE), np.uint8)
    for i, j, c, g in _tile_choices(tiles, n, seed):
        cube[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = c
        gt[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] = g
    return cube[:size, :size], gt[:size, :size]


def _tile_choices(tiles: list, n: int, seed: int):
    """(row, column, cube, anomaly map) of each tile of an n x n mosaic, row by row: a source tile
    drawn at random and mirrored at random."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        for j in range(n):
            c, g = tiles[rng.integers(len(tiles))]
            if rng.random() < 0.5:
                c, g = c[::-1], g[::-1]
            if rng.random() < 0.5:
                c, g = c[:, ::-1], g[:, ::-1]
            yield i, j, c, g


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


# Full-size scenes: the sizes of the sensors' products, as a user's file holds them.
FULL_BANDS = 224  # EnMAP's band count
FULL_BLOCK = 256  # GeoTIFF tile side
FULL_CHUNK = 1000  # side of the chunks the full-size change pair is simulated in


def _tiled_int16(path: str, rows: int, cols: int, bands: int):
    """An empty int16 tiled (256 x 256), pixel-interleaved, uncompressed GeoTIFF, as products are delivered."""
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, bands, gdal.GDT_Int16,
                                              ["TILED=YES", f"BLOCKXSIZE={FULL_BLOCK}", f"BLOCKYSIZE={FULL_BLOCK}",
                                               "INTERLEAVE=PIXEL", "BIGTIFF=YES"])
    ds.SetGeoTransform((500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0))
    return ds


def _write_rows(ds, row: int, block: np.ndarray):
    """Write (rows, cols, bands) values at ``row``, band by band."""
    for b in range(block.shape[2]):
        ds.GetRasterBand(b + 1).WriteArray(np.ascontiguousarray(block[:, :, b]), 0, row)


def _full_tiles(data_dir: str, bands: int) -> list:
    """The mosaic's source tiles resampled to ``bands`` evenly spaced bands (int16) with their anomaly maps."""
    from hsi_detect_engine.simulate import resample_bands

    tiles = []
    for name in MOSAIC_SOURCES:
        with np.load(os.path.join(data_dir, "anomaly", f"{name}.npz")) as z:
            cube = resample_bands(z["cube"].astype(np.float32), bands)
            tiles.append((np.round(cube).astype(np.int16), z["gt"]))
    return tiles


def _full_strips(data_dir: str, size: int, bands: int, seed: int = 0):
    """(row, strip (TILE, size, bands) int16, anomaly map) of the size x size mosaic, one tile row at a
    time, so that no whole cube is ever held."""
    n = -(-size // TILE)
    strip = np.empty((TILE, n * TILE, bands), np.int16)
    gt = np.empty((TILE, n * TILE), np.uint8)
    for i, j, c, g in _tile_choices(_full_tiles(data_dir, bands), n, seed):
        strip[:, j * TILE:(j + 1) * TILE] = c
        gt[:, j * TILE:(j + 1) * TILE] = g
        if j == n - 1:
            h = min(TILE, size - i * TILE)
            yield i * TILE, strip[:h, :size].copy(), gt[:h, :size].copy()


def full_scene(data_dir: str, work_dir: str, size: int, bands: int = FULL_BANDS) -> Optional[Scene]:
    """A size x size x ``bands`` int16 tiled GeoTIFF mosaic of real scenes (bands resampled from 205),
    written strip by strip on first use (3000 x 3000 x 224: 4 GB)."""
    if not all(os.path.exists(os.path.join(data_dir, "anomaly", f"{n}.npz")) for n in MOSAIC_SOURCES):
        return None
    folder = os.path.join(work_dir, "inputs", f"full-{size}x{bands}")
    path, gt_path = os.path.join(folder, "cube.tif"), os.path.join(folder, "gt.npy")

    def make():
        if os.path.exists(path) and os.path.exists(gt_path):
            return
        os.makedirs(folder, exist_ok=True)
        gt = np.zeros((size, size), np.uint8)
        ds = _tiled_int16(path + ".partial", size, size, bands)
        for row, strip, g in _full_strips(data_dir, size, bands):
            _write_rows(ds, row, strip)
            gt[row:row + g.shape[0]] = g
        ds = None
        np.save(gt_path, gt)
        os.replace(path + ".partial", path)

    return Scene(f"full-{size}x{bands}", "anomaly", "full", (size, size, bands), {"input": path}, gt_path,
                 f"full-{size}x{bands}-v1", make=make)


def full_pair(data_dir: str, work_dir: str, size: int, bands: int = FULL_BANDS) -> Optional[Scene]:
    """Two int16 tiled GeoTIFFs of a size x size x ``bands`` change pair: the engine's simulator applied
    to the full-size mosaic chunk by chunk (FULL_CHUNK square chunks, each with its own seed), so that
    no whole date is ever held."""
    sim = simulator()
    if sim is None or not all(os.path.exists(os.path.join(data_dir, "anomaly", f"{n}.npz")) for n in MOSAIC_SOURCES):
        return None
    ident = _simulator_identity(sim)
    name = f"full-pair-{size}x{bands}"
    folder = os.path.join(work_dir, "inputs", f"{name}-{ident}")
    t1, t2, gt_path = (os.path.join(folder, f) for f in ("t1.tif", "t2.tif", "gt.npy"))

    def make():
        if all(os.path.exists(p) for p in (t1, t2, gt_path)):
            return
        os.makedirs(folder, exist_ok=True)
        gt = np.zeros((size, size), np.uint8)
        d1, d2 = _tiled_int16(t1 + ".partial", size, size, bands), _tiled_int16(t2 + ".partial", size, size, bands)
        rows = _full_strips(data_dir, size, bands)
        band, seed = None, 0
        for row, strip, _ in rows:
            band = strip if band is None else np.concatenate([band, strip])
            if band.shape[0] < FULL_CHUNK and row + strip.shape[0] < size:
                continue
            top = row + strip.shape[0] - band.shape[0]
            for col in range(0, size, FULL_CHUNK):
                part = sim.simulate_change_pair(band[:, col:col + FULL_CHUNK], seed=seed)
                seed += 1
                for ds, date in ((d1, part.t1), (d2, part.t2)):
                    values = np.clip(np.round(date), -32768, 32767).astype(np.int16)
                    for b in range(bands):
                        ds.GetRasterBand(b + 1).WriteArray(np.ascontiguousarray(values[:, :, b]), col, top)
                gt[top:top + band.shape[0], col:col + part.gt.shape[1]] = part.gt
                del part
            band = None
        d1 = d2 = None
        np.save(gt_path, gt)
        os.replace(t1 + ".partial", t1)
        os.replace(t2 + ".partial", t2)

    return Scene(name, "change", "full", (size, size, bands), {"t1": t1, "t2": t2}, gt_path, f"{name}-{ident}",
                 make=make)
