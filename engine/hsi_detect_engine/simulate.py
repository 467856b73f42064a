"""Simulated hyperspectral change pairs, made the way HyperNet's authors made their HyMap data.

No real hyperspectral change pair with a ground truth is at hand, so one is simulated
from a real scene: date 1 is the scene itself; date 2 is the same scene

1. with changed regions of several sizes (irregular ellipses) whose spectra are replaced,
   fully or partly (a linear mixture), by other real materials: a patch of the same scene
   whose mean spectrum differs from the region's, or a patch of another scene (the
   donor), resampled to the band count and brought to the scene's brightness;
2. seen under other conditions: a smooth band-dependent gain that also varies smoothly
   across the scene, a band-dependent offset (path radiance, larger at short
   wavelengths), a slight blur and sensor noise.

The ground truth marks the changed regions (1) and nothing else (0). Everything follows
from the seed: the same arguments give the same pair.

Command line: ``python -m hsi_detect_engine.simulate SCENE.npz OUT_PREFIX [--donor D.npz]
[--seed N] [--size ROWS COLS] [--bands B]`` writes OUT_PREFIX_t1.tif, _t2.tif and _gt.tif.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import HsiDetectError

# The two simulated pairs the studies and the benchmark use: scene and donor files of
# shared/data/anomaly (AVIRIS scenes: San Diego airport; Cat Island beach with urban donor).
PRESETS = {
    "sim-sandiego": {"scene": "sandiego-120x120x189.npz", "donor": "abu-airport-1.npz"},
    "sim-beach": {"scene": "abu-beach-1.npz", "donor": "abu-urban-1.npz"},
}


@dataclass
class SimulatedPair:
    t1: np.ndarray  # (rows, cols, bands) float32
    t2: np.ndarray
    gt: np.ndarray  # (rows, cols) uint8: 1 changed, 0 unchanged
    info: dict = field(default_factory=dict)


def fit_scene(scene: np.ndarray, size: Optional[tuple] = None, bands: Optional[int] = None) -> np.ndarray:
    """The scene as float32, mirrored out (or cut) to ``size`` and with ``bands`` evenly spaced bands."""
    cube = np.asarray(scene, dtype=np.float32)
    if bands is not None:
        if not 3 <= bands <= cube.shape[2]:
            raise HsiDetectError(f"Cannot take {bands} bands from a scene of {cube.shape[2]}.")
        cube = cube[:, :, np.round(np.linspace(0, cube.shape[2] - 1, bands)).astype(int)]
    if size is not None:
        rows, cols = size
        pad = ((0, max(0, rows - cube.shape[0])), (0, max(0, cols - cube.shape[1])), (0, 0))
        cube = np.pad(cube, pad, mode="symmetric")[:rows, :cols]
    return np.ascontiguousarray(cube)


def resample_bands(spectra: np.ndarray, bands: int) -> np.ndarray:
    """Linear interpolation of (..., B0) spectra onto ``bands`` evenly spaced positions."""
    b0 = spectra.shape[-1]
    x_new, x_old = np.linspace(0.0, 1.0, bands), np.linspace(0.0, 1.0, b0)
    flat = spectra.reshape(-1, b0)
    out = np.empty((flat.shape[0], bands), dtype=np.float32)
    for i in range(flat.shape[0]):
        out[i] = np.interp(x_new, x_old, flat[i])
    return out.reshape(spectra.shape[:-1] + (bands,))


def _region_mask(rows, cols, centre, radius, rng) -> np.ndarray:
    """An ellipse with random axes (0.6..1 of the radius) and orientation."""
    a, b = radius * rng.uniform(0.6, 1.0), radius * rng.uniform(0.6, 1.0)
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    dy, dx = yy - centre[0], xx - centre[1]
    u = dx * np.cos(theta) + dy * np.sin(theta)
    v = -dx * np.sin(theta) + dy * np.cos(theta)
    return (u / a) ** 2 + (v / b) ** 2 <= 1.0


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def _smooth_field(rows, cols, rng, scale: float) -> np.ndarray:
    """A smooth random field in [-1, 1]: a plane plus low-frequency noise."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.standard_normal((rows, cols)), sigma=scale, mode="reflect")
    yy, xx = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    angle = rng.uniform(0, 2 * np.pi)
    plane = np.cos(angle) * xx + np.sin(angle) * yy
    f = noise / max(np.abs(noise).max(), 1e-12) + plane / max(np.abs(plane).max(), 1e-12)
    f -= f.mean()
    return f / max(np.abs(f).max(), 1e-12)


def _smooth_spectrum(bands, rng, amplitude: float) -> np.ndarray:
    """1 + a sum of three low-frequency cosines over the band axis (about +-amplitude)."""
    t = np.linspace(0.0, 1.0, bands)
    out = np.ones(bands)
    for k in range(1, 4):
        out += rng.uniform(-amplitude, amplitude) / k * np.cos(np.pi * k * t + rng.uniform(0, 2 * np.pi))
    return out


def simulate_change_pair(scene: np.ndarray, *, seed: int = 0, donor: Optional[np.ndarray] = None,
                         size: Optional[tuple] = None, bands: Optional[int] = None,
                         changed_fraction: float = 0.06, gain: float = 0.12, spatial_gain: float = 0.10,
                         offset: float = 0.05, blur: float = 0.6, noise: float = 0.02) -> SimulatedPair:
    """Make (t1, t2, gt) from a real scene (rows, cols, bands).

    changed_fraction: share of pixels to change; gain: amplitude of the band-dependent
    gain; spatial_gain: amplitude of its smooth variation across the scene; offset:
    path-radiance offset as a share of the mean level; blur: Gaussian sigma (pixels);
    noise: noise sigma as a share of each band's standard deviation.
    """
    from scipy.ndimage import gaussian_filter

    if not 0 < changed_fraction < 0.5:
        raise HsiDetectError(f"The changed fraction must lie in (0, 0.5) (got {changed_fraction}).")
    rng = np.random.default_rng(seed)
    t1 = fit_scene(scene, size, bands)
    rows, cols, nb = t1.shape
    if rows < 16 or cols < 16:
        raise HsiDetectError("The scene is too small to simulate changes in (at least 16 x 16 pixels).")
    level = float(t1.mean())
    if donor is not None:
        donor = resample_bands(np.asarray(donor, dtype=np.float32), nb)
        donor *= level / max(float(donor.mean()), 1e-12)
    changed = t1.copy()
    gt = np.zeros((rows, cols), dtype=np.uint8)
    scale = min(rows, cols) / 150.0
    radii = [max(1.5, r * scale) for r in (1.5, 2.5, 4.0, 6.0, 9.0, 13.0)]
    regions = []
    target = changed_fraction * rows * cols
    attempts = 0
    while gt.sum() < target and attempts < 2000:
        attempts += 1
        radius = radii[len(regions) % len(radii)]
        m = int(np.ceil(radius)) + 1
        centre = (rng.uniform(m, rows - m), rng.uniform(m, cols - m))
        region = _region_mask(rows, cols, centre, radius, rng)
        if not region.any():
            continue
        grown = gaussian_filter(region.astype(np.float32), 1.0) > 0.01  # keep regions a pixel apart
        if (grown & (gt > 0)).any():
            continue
        ys, xs = np.nonzero(region)
        y0, x0 = ys.min(), xs.min()
        h, w = ys.max() - y0 + 1, xs.max() - x0 + 1
        from_donor = donor is not None and rng.random() < 0.5
        source = donor if from_donor else t1
        patch = _pick_patch(source, t1[region].mean(axis=0), (h, w), (y0, x0), from_donor, rng)
        alpha = 1.0 if rng.random() < 0.5 else rng.uniform(0.5, 0.85)
        new = patch[ys - y0, xs - x0]
        changed[ys, xs] = (1 - alpha) * t1[ys, xs] + alpha * new
        gt[region] = 1
        regions.append({"centre": [round(centre[0], 1), round(centre[1], 1)], "radius": round(radius, 2),
                        "pixels": int(region.sum()), "alpha": round(float(alpha), 3),
                        "material": "donor" if from_donor else "scene"})

    g0 = _smooth_spectrum(nb, rng, gain)
    g1 = spatial_gain * _smooth_spectrum(nb, rng, 0.5)
    field2d = _smooth_field(rows, cols, rng, scale=max(rows, cols) / 4)
    t = np.linspace(0.0, 1.0, nb)
    bias = offset * rng.uniform(0.5, 1.0) * level * (1.0 - t) ** 2
    t2 = changed * (g0 * (1.0 + field2d[:, :, None] * g1)).astype(np.float32) + bias.astype(np.float32)
    if blur > 0:
        t2 = gaussian_filter(t2, sigma=(blur, blur, 0), mode="reflect")
    if noise > 0:
        sigma = noise * t1.reshape(-1, nb).std(axis=0)
        t2 = t2 + rng.standard_normal(t2.shape).astype(np.float32) * sigma.astype(np.float32)
    info = {"seed": seed, "regions": regions, "changed_pixels": int(gt.sum()), "shape": [rows, cols, nb]}
    return SimulatedPair(t1, t2.astype(np.float32), gt, info)


def _pick_patch(source, region_mean, shape, avoid, from_donor, rng, candidates: int = 12) -> np.ndarray:
    """A (h, w, B) patch of ``source`` whose mean spectrum differs from ``region_mean``: among
    random candidates (away from the region itself), one of the more different half."""
    h, w = shape
    sr, sc = source.shape[:2]
    if h > sr or w > sc:
        source = np.pad(source, ((0, max(0, h - sr)), (0, max(0, w - sc)), (0, 0)), mode="symmetric")
        sr, sc = source.shape[:2]
    options = []
    for _ in range(candidates):
        r, c = int(rng.integers(0, sr - h + 1)), int(rng.integers(0, sc - w + 1))
        if not from_donor and abs(r - avoid[0]) < 2 * h and abs(c - avoid[1]) < 2 * w:
            continue
        patch = source[r:r + h, c:c + w]
        options.append((_angle(patch.reshape(-1, patch.shape[2]).mean(axis=0), region_mean), patch))
    if not options:
        r, c = int(rng.integers(0, sr - h + 1)), int(rng.integers(0, sc - w + 1))
        return source[r:r + h, c:c + w]
    options.sort(key=lambda o: o[0], reverse=True)
    return options[int(rng.integers(0, max(1, len(options) // 2)))][1]


def load_scene(path: str) -> np.ndarray:
    """The cube of a research file (.npz/.mat/.npy) or of a GDAL raster."""
    from .io.reader import read_cube

    return read_cube(path).data


def preset_pair(name: str, data_dir: str, seed: int = 0, **kwargs) -> SimulatedPair:
    """One of PRESETS, made from the scenes in data_dir (shared/data/anomaly)."""
    if name not in PRESETS:
        raise HsiDetectError(f"Unknown simulated pair '{name}'. Known: {', '.join(PRESETS)}.")
    spec = PRESETS[name]
    donor = load_scene(os.path.join(data_dir, spec["donor"])) if spec.get("donor") else None
    return simulate_change_pair(load_scene(os.path.join(data_dir, spec["scene"])), seed=seed, donor=donor, **kwargs)


def write_pair(pair: SimulatedPair, prefix: str) -> dict:
    """Write prefix_t1.tif, prefix_t2.tif (float32) and prefix_gt.tif (uint8) without georeference."""
    from .io.cube import Georef
    from .io.transaction import FILE, OutputTransaction
    from .io.writer import write_raster

    georef = Georef(pair.gt.shape[0], pair.gt.shape[1])
    with OutputTransaction({k: (f"{prefix}_{k}.tif", FILE) for k in ("t1", "t2", "gt")}) as txn:
        write_raster(txn.path("t1"), pair.t1, georef)
        write_raster(txn.path("t2"), pair.t2, georef)
        write_raster(txn.path("gt"), pair.gt, georef, dtype="uint8")
        return txn.commit()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hsi_detect_engine.simulate", description=__doc__.split("\n\n")[0])
    ap.add_argument("scene", help="real scene (date 1): .npz/.mat/.npy cube or GDAL raster")
    ap.add_argument("prefix", help="output prefix: writes PREFIX_t1.tif, PREFIX_t2.tif, PREFIX_gt.tif")
    ap.add_argument("--donor", help="another scene whose materials may appear in the changed regions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, nargs=2, metavar=("ROWS", "COLS"), help="mirror or cut the scene to this size")
    ap.add_argument("--bands", type=int, help="take this many evenly spaced bands")
    args = ap.parse_args(argv)
    donor = load_scene(args.donor) if args.donor else None
    pair = simulate_change_pair(load_scene(args.scene), seed=args.seed, donor=donor,
                                size=tuple(args.size) if args.size else None, bands=args.bands)
    for path in write_pair(pair, args.prefix).values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
