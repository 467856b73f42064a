"""Time and peak memory of `hsi-detect anomaly` (BS3LNet, default settings) on a real
100 x 100 x 205 scene and on a 1000 x 1000 x 224 scene built from real scenes.

    python -m bench.studies.bs3lnet_speed [small|large|both] [--device cpu] [--work DIR] [-- OPTIONS]

The command (`python -m hsi_detect_engine.cli anomaly`, OPTIONS appended) runs in a child
process measured as every benchmark run is (bench.child: wall time, CPU time, its own peak
resident memory). Prints one JSON object per scene.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from ..child import run_child
from ..runner import REPO
from . import bs3lnet_common as common


def write_tif(path: str, cube: np.ndarray):
    from osgeo import gdal

    gdal.UseExceptions()
    rows, cols, bands = cube.shape
    ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, bands, gdal.GDT_Int16,
                                              ["TILED=YES", "INTERLEAVE=PIXEL", "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform((500000.0, 20.0, 0.0, 4000000.0, 0.0, -20.0))
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(cube[:, :, b])
    ds = None


def small_scene(work: str) -> str:
    path = os.path.join(work, "abu-airport-1_100x100x205.tif")
    if not os.path.exists(path):
        cube, _, _ = common.load_scene("abu-airport-1")
        write_tif(path, cube.astype(np.int16))
    return path


def large_scene(work: str) -> str:
    """A 2 x 2 mosaic of four real 100 x 100 x 205 AVIRIS scenes, mirrored out to
    1000 x 1000, with 19 bands mirrored at the spectral end to make 224."""
    path = os.path.join(work, "mosaic_1000x1000x224.tif")
    if not os.path.exists(path):
        parts = [common.load_scene(n)[0].astype(np.int16)
                 for n in ("abu-airport-1", "abu-airport-2", "abu-urban-4", "abu-urban-5")]
        mosaic = np.concatenate([np.concatenate(parts[:2], 1), np.concatenate(parts[2:], 1)], 0)  # 200 x 200
        mosaic = np.concatenate([mosaic, mosaic[:, :, -20:-1][:, :, ::-1]], 2)  # 224 bands
        big = np.pad(mosaic, ((0, 800), (0, 800), (0, 0)), mode="symmetric")
        write_tif(path, big)
    return path


def measure(scene: str, work: str, device: str, extra: list) -> dict:
    out = os.path.join(work, "score.tif")
    cmd = [sys.executable, "-m", "hsi_detect_engine.cli", "anomaly", scene,
           "--output", out, "--device", device, "--json-progress", *extra]
    r = run_child(cmd)
    result = {}
    for line in r.stdout_lines:
        obj = json.loads(line)
        if "result" in obj:
            result = obj["result"]
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]  # 1-minute load average: how busy the machine was
    return {"scene": os.path.basename(scene), "returncode": r.returncode, "wall_s": round(r.seconds, 1),
            "cpu_s": round(r.cpu_seconds, 1),
            "peak_rss_gb": round(r.peak_rss_bytes / 1024 ** 3, 3), "load_after": load,
            "device": result.get("device"), "training": result.get("training"),
            "detection_s": result.get("detection_seconds"), "error": r.stderr[-500:] if r.returncode else None}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser(prog="python -m bench.studies.bs3lnet_speed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="?", default="both", choices=("small", "large", "both"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", default=os.path.join(REPO, "bench", "work", "bs3lnet_speed"))
    a = ap.parse_args(argv[:cut])
    extra = argv[cut + 1:]  # options for hsi-detect anomaly
    os.makedirs(a.work, exist_ok=True)
    scenes = {"small": [small_scene], "large": [large_scene], "both": [small_scene, large_scene]}[a.which]
    for make in scenes:
        print(json.dumps(measure(make(a.work), a.work, a.device, extra)), flush=True)


if __name__ == "__main__":
    main()
