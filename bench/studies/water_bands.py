"""Does dropping the water-vapour windows (--bad-bands drop) change the default detectors' AUC?

The benchmark scenes carry no wavelengths. Only one has a documented band list: HYDICE
Urban's 162-band version keeps 162 of 210 bands (400-2500 nm) after removing bands 1-4, 76,
87, 101-111, 136-153 and 198-210 (the list published with the Urban unmixing data). The
80 x 100 anomaly crop is ASSUMED to keep that same list; its band centres are then taken as
evenly spaced, 400 + (k - 1) * 2100 / 209 nm. The AVIRIS (ABU, San Diego) scenes' removed
bands are not documented, so they cannot be measured. The scene is written as a GeoTIFF
with these wavelengths and run through run_anomaly with --bad-bands keep and drop.

Run: python -m bench.studies.water_bands [--seeds 1 2]  (results: bench/results/studies/water_bands.md)
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from ..scenes import data_folder

SCENE = "anomaly/hydice-urban-80x100x162.npz"  # in the benchmark's data folder
REMOVED = set(range(1, 5)) | {76, 87} | set(range(101, 112)) | set(range(136, 154)) | set(range(198, 211))


def assumed_wavelengths() -> list:
    kept = [k for k in range(1, 211) if k not in REMOVED]
    assert len(kept) == 162
    return [400.0 + (k - 1) * 2100.0 / 209.0 for k in kept]


def main(argv=None):
    from osgeo import gdal

    from hsi_detect_engine.accuracy.metrics import accuracy_figures
    from hsi_detect_engine.anomaly import run_anomaly
    from hsi_detect_engine.progress import Progress

    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = p.parse_args(argv)
    gdal.UseExceptions()
    data = np.load(os.path.join(data_folder(), SCENE))
    cube, gt = data["cube"].astype(np.float32), data["gt"]
    waves = assumed_wavelengths()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "hydice.tif")
        ds = gdal.GetDriverByName("GTiff").Create(path, cube.shape[1], cube.shape[0], cube.shape[2], gdal.GDT_Float32)
        for i, w in enumerate(waves):
            band = ds.GetRasterBand(i + 1)
            band.WriteArray(cube[:, :, i])
            band.SetMetadataItem("wavelength", f"{w:.2f}")
            band.SetMetadataItem("wavelength_units", "nm")
        ds = None
        for method in ("rx", "bs3lnet"):
            for mode in ("keep", "drop"):
                for seed in args.seeds if method == "bs3lnet" else [1]:
                    logs = []
                    out = os.path.join(tmp, f"{method}_{mode}_{seed}.tif")
                    result = run_anomaly(path, out, method=method, bad_bands=mode, seed=seed, device="cpu",
                                         progress=Progress(lambda e: logs.append(e["message"]) if e["stage"] == "log" else None))
                    out_ds = gdal.Open(out)
                    score = out_ds.GetRasterBand(1).ReadAsArray()
                    out_ds = None
                    auc = accuracy_figures(score, gt)["auc"]
                    dropped = [m for m in logs if m.startswith("Dropped")]
                    print(f"{method:8s} {mode:5s} seed {seed}: bands {result['bands']:3d} AUC {auc:.4f} {' '.join(dropped)}",
                          flush=True)


if __name__ == "__main__":
    main()
