"""Sensor products in the plugin: the file alternative to a layer, wavelength ranges and bad
bands, in this QGIS process and in one qgis_process run."""

import json
import os
import re
import sys

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

from conftest import DEMO, REPO, run_qgis_process

sys.path.insert(0, os.path.join(REPO, "scripts"))
import make_product_samples as samples  # noqa: E402

HYDICE = os.path.join(DEMO, "hydice_urban.tif")
gdal.UseExceptions()


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    return samples.make_all(str(tmp_path_factory.mktemp("plugin_products")))


def run(algorithm, params):
    import processing

    return processing.run(f"hsidetect:{algorithm}", params)


def test_a_product_file_runs_with_wavelength_ranges_and_lands_on_its_map_grid(hsidetect, products, tmp_path):
    out = str(tmp_path / "score.tif")
    results = run("rx", {"INPUT_FILE": products["prisma"], "WAVELENGTHS": "400-1340, 1460-1790", "OUTPUT": out})
    ds = gdal.Open(results["OUTPUT"])
    assert ds.GetGeoTransform() == (500000.0, 30.0, 0.0, 4100000.0, 0.0, -30.0)
    waves = [float(w) for w in ds.GetMetadataItem("wavelengths").split(",")]
    assert min(waves) >= 400 and max(waves) <= 1790 and not any(1340 < w < 1460 for w in waves)


def test_a_layer_and_a_file_exclude_each_other(hsidetect, products, tmp_path):
    for params, ending in (({}, "one of them."), ({"INPUT": HYDICE, "INPUT_FILE": products["emit"]}, "not both.")):
        sentence = "Hyperspectral image: give either a layer (INPUT) or a file (INPUT_FILE), " + ending
        with pytest.raises(QgsProcessingException, match=re.escape(sentence)):
            run("rx", {**params, "OUTPUT": str(tmp_path / "s.tif")})
    with pytest.raises(QgsProcessingException, match=r"First date: give either a layer \(INPUT_T1\)"):
        run("cva", {"INPUT_T2_FILE": products["prisma"], "OUTPUT": str(tmp_path / "c.tif")})
    assert os.listdir(tmp_path) == []


def test_qgis_process_runs_bs3lnet_on_an_emit_file(qgis_process_profile, products, tmp_path):
    _, env = qgis_process_profile
    out = tmp_path / "emit_score.tif"
    done = run_qgis_process(env, "--json", "run", "hsidetect:bs3lnet", "--", f"INPUT_FILE={products['emit']}",
                            f"OUTPUT={out}", "ITERATIONS=2", "BATCH_SIZE=8", "FEATURES=8", "BLOCKS=1", "DEVICE=cpu",
                            "BAD_BANDS=drop")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    ds = gdal.Open(str(out))
    assert (ds.RasterYSize, ds.RasterXSize) == samples.EMIT_ORTHO and ds.GetGeoTransform() == samples.EMIT_GT
    info = "\n".join(answer["log"]["info"])
    assert "flagged bad by the product" in info and "EMIT L2A" in info
    assert "--bad-bands drop" in next(line for line in answer["log"]["info"] if "hsi_detect_engine.cli" in line)
