"""Sensor products (ENVI, EnMAP L2A, PRISMA L2D, EMIT L2A): the readers' cube, mask, grid and
wavelengths against what each layout implies, band choice by wavelength, bad and empty bands,
wrong-level and damaged files, and end-to-end runs through the CLI.

The product files are made by scripts/make_product_samples.py from a real scene.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from osgeo import gdal, osr

from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.products.wavelengths import WATER_VAPOUR_WINDOWS, in_water_vapour, parse_ranges
from hsi_detect_engine.io.reader import read_cube

gdal.UseExceptions()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import make_product_samples as samples  # noqa: E402

PYTHON = sys.executable


class Log(list):
    def log(self, message):
        self.append(message)


@pytest.fixture(scope="session")
def products(tmp_path_factory):
    folder = tmp_path_factory.mktemp("products")
    return samples.make_all(str(folder))


@pytest.fixture(scope="session")
def scene():
    return samples.load_scene()


def epsg(wkt):
    s = osr.SpatialReference()
    s.ImportFromWkt(wkt)
    s.AutoIdentifyEPSG()
    return int(s.GetAuthorityCode(None))


# ------------------------------------------------------------------------------------ wavelengths

def test_wavelength_ranges_parse_and_refuse():
    assert parse_ranges("400-1340, 1460-1790,1960-2450") == [(400, 1340), (1460, 1790), (1960, 2450)]
    with pytest.raises(HsiDetectError, match="runs backwards"):
        parse_ranges("900-400")
    with pytest.raises(HsiDetectError, match="not a wavelength range"):
        parse_ranges("400:900")
    assert WATER_VAPOUR_WINDOWS == ((1340.0, 1460.0), (1790.0, 1960.0))


# ------------------------------------------------------------------------------------ ENVI

def test_envi_header_and_data_file_read_alike_with_units_bbl_nodata_scale_and_map_info(products, scene):
    hdr = products["envi"]
    log = Log()
    c = read_cube(hdr, bad_bands="keep", progress=log)
    d = read_cube(hdr[:-4] + ".bil", bad_bands="keep")
    np.testing.assert_array_equal(c.data, d.data)
    assert c.kind == "ENVI" and c.shape == (40, 50, 120)
    assert c.wavelengths[0] == pytest.approx(400.0) and c.wavelengths[-1] == pytest.approx(2500.0)  # from um
    assert c.fwhm[0] == pytest.approx(10.0)
    assert c.georef.geotransform == pytest.approx((500000.0, 30.0, 0.0, 4100000.0, 0.0, -30.0))
    assert not c.valid[:3, :4].any() and c.valid.sum() == 40 * 50 - 12  # data ignore value
    expected = np.round(samples.resample(scene, samples.ENVI_WAVES_UM * 1000) * 10000) / 10000
    np.testing.assert_allclose(c.data[c.valid], expected[c.valid], atol=1e-6)  # reflectance scale factor
    dropped = read_cube(hdr, progress=log)
    flagged = {1, 2, 120}
    water = {i + 1 for i, w in enumerate(samples.ENVI_WAVES_UM * 1000) if in_water_vapour(w)}
    assert dropped.band_numbers == [n for n in range(1, 121) if n not in flagged | water]
    assert any("flagged bad" in m and "1-2 (400-418 nm), 120 (2500 nm)" in m for m in log)
    assert any("water-vapour" in m for m in log)


def test_envi_header_without_data_file(tmp_path, products):
    hdr = tmp_path / "lonely.hdr"
    shutil.copy(products["envi"], hdr)
    with pytest.raises(HsiDetectError, match="ENVI header, but its data file is missing"):
        read_cube(str(hdr))


def test_band_nodata_everywhere_is_dropped_not_every_pixel(tmp_path):
    rng = np.random.default_rng(1)
    cube = rng.uniform(1, 100, size=(12, 15, 6)).astype(np.float32)
    cube[:, :, 3] = -1.0
    cube[2, 3, 0] = -1.0
    path = str(tmp_path / "one_empty_band.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 15, 12, 6, gdal.GDT_Float32)
    for i in range(6):
        ds.GetRasterBand(i + 1).WriteArray(cube[:, :, i])
        ds.GetRasterBand(i + 1).SetNoDataValue(-1.0)
    ds = None
    log = Log()
    c = read_cube(path, progress=log)
    assert c.band_numbers == [1, 2, 3, 5, 6]
    assert c.valid.sum() == 12 * 15 - 1 and not c.valid[2, 3]
    assert log == ["Dropped band 4: nodata everywhere."]


def test_choice_by_wavelength_needs_wavelengths(tmp_path, products):
    c = read_cube(products["envi"], wavelengths=[(500, 700), (2000, 2100)], bad_bands="keep")
    assert all(500 <= w <= 700 or 2000 <= w <= 2100 for w in c.wavelengths) and c.shape[2] == 12 + 6
    with pytest.raises(HsiDetectError, match="No band of .* lies in the wavelength ranges given; its bands span 400-2500 nm"):
        read_cube(products["envi"], wavelengths=[(2600, 2700)])
    plain = str(tmp_path / "plain.tif")
    ds = gdal.GetDriverByName("GTiff").Create(plain, 5, 4, 3, gdal.GDT_Float32)
    ds.WriteArray(np.ones((3, 4, 5), dtype=np.float32))
    ds = None
    with pytest.raises(HsiDetectError, match="carries no wavelengths, so bands cannot be chosen by wavelength"):
        read_cube(plain, wavelengths=[(400, 900)])


# ------------------------------------------------------------------------------------ EnMAP L2A

def test_enmap_folder_xml_and_image_read_alike(products, scene):
    folder = products["enmap"]
    xml = glob.glob(os.path.join(folder, "*-METADATA.XML"))[0]
    image = glob.glob(os.path.join(folder, "*-SPECTRAL_IMAGE.TIF"))[0]
    c = read_cube(folder)
    for other in (xml, image):
        np.testing.assert_array_equal(read_cube(other).data, c.data)
    waves = samples.ENMAP_WAVES
    vnir, first_swir = set(samples.ENMAP_VNIR), samples.ENMAP_SWIR.min()
    keep = [i for i, w in enumerate(waves)
            if not (samples.ENMAP_EMPTY[0] < w < samples.ENMAP_EMPTY[1])  # delivered empty
            and not (w in vnir and w >= first_swir)  # VNIR side of the overlap
            and not in_water_vapour(w)]
    assert c.kind == "EnMAP L2A" and c.band_numbers == [i + 1 for i in keep]
    assert c.wavelengths == pytest.approx(list(waves[keep])) and np.all(np.diff(c.wavelengths) > 0)
    assert c.georef.geotransform == (500000.0, 30.0, 0.0, 4100000.0, 0.0, -30.0) and epsg(c.georef.crs_wkt) == 32633
    assert not c.valid[36:, :6].any() and c.valid.sum() == 40 * 50 - 24
    dn = np.round(samples.resample(scene, waves) * 10000)
    np.testing.assert_allclose(c.data[c.valid], (dn[:, :, keep] * 1e-4)[c.valid], atol=1e-6)  # gain 1e-4


def test_enmap_cloud_masks(products):
    plain = read_cube(products["enmap"])
    masked = read_cube(products["enmap"], mask_clouds=True)
    assert plain.valid[5:10, 5:12].all() and not masked.valid[5:10, 5:12].any()
    assert not masked.valid[30:33, 40:45].any()  # haze
    assert masked.valid.sum() == plain.valid.sum() - 35 - 15


def test_enmap_keep_bad_bands_still_drops_empty_bands(products):
    log = Log()
    c = read_cube(products["enmap"], bad_bands="keep", progress=log)
    empty = sum(samples.ENMAP_EMPTY[0] < w < samples.ENMAP_EMPTY[1] for w in samples.ENMAP_WAVES)
    assert c.shape[2] == 224 - empty and any("nodata everywhere" in m for m in log)


# ------------------------------------------------------------------------------------ PRISMA L2D

def test_prisma_cubes_joined_scaled_and_georeferenced(products):
    path = products["prisma"]
    c = read_cube(path, bad_bands="keep")
    vnir = samples.PRISMA_VNIR[samples.PRISMA_VNIR > 0]
    swir = samples.PRISMA_SWIR[samples.PRISMA_SWIR > 0]
    waves = np.sort(np.concatenate([vnir[vnir < swir.min()], swir]))
    assert c.kind == "PRISMA L2D" and c.shape == (40, 50, len(waves))
    assert c.wavelengths == pytest.approx(list(waves), abs=1e-3)
    assert c.georef.geotransform == (500000.0, 30.0, 0.0, 4100000.0, 0.0, -30.0) and epsg(c.georef.crs_wkt) == 32633
    assert not c.valid[:3, 45:].any() and c.valid.sum() == 40 * 50 - 15  # all-zero pixels
    with h5py.File(path) as f:  # (rows, bands, cols): a transposed read would not match
        dn = f["HDFEOS/SWATHS/PRS_L2D_HCO/Data Fields/SWIR_Cube"][()]
    slot = int(np.flatnonzero(samples.PRISMA_SWIR == swir.min())[0])
    lo, hi = samples.PRISMA_SCALE["Swir"]
    k = c.wavelengths.index(pytest.approx(float(swir.min()), abs=1e-3))
    np.testing.assert_allclose(c.data[10, 30, k], lo + dn[10, slot, 30] * (hi - lo) / 65535, rtol=1e-5)
    np.testing.assert_allclose(c.data[:, :, k][c.valid], (lo + dn[:, slot, :] * (hi - lo) / 65535)[c.valid],
                               rtol=1e-5)


# ------------------------------------------------------------------------------------ EMIT L2A

def test_emit_orthorectified_with_the_glt(products):
    path = products["emit"]
    c = read_cube(path, bad_bands="keep")
    with h5py.File(path) as f:
        refl, gx, gy = f["reflectance"][()], f["location/glt_x"][()], f["location/glt_y"][()]
    assert c.kind == "EMIT L2A" and c.shape == samples.EMIT_ORTHO + (285,)
    assert c.georef.geotransform == samples.EMIT_GT and epsg(c.georef.crs_wkt) == 4326
    hit = (gx != 0) & (gy != 0)
    filled = np.zeros_like(hit)
    filled[hit] = (refl[gy[hit] - 1, gx[hit] - 1] == -9999).any(axis=1)
    assert 0 < hit.sum() < hit.size  # a rotated swath leaves corners empty
    np.testing.assert_array_equal(c.valid, hit & ~filled)
    np.testing.assert_array_equal(c.data[c.valid], refl[gy[c.valid] - 1, gx[c.valid] - 1])
    good = read_cube(path, bad_bands="drop")
    flagged = ((samples.EMIT_WAVES > 1325) & (samples.EMIT_WAVES < 1435)) | \
              ((samples.EMIT_WAVES > 1770) & (samples.EMIT_WAVES < 1962))
    keep = [i for i, w in enumerate(samples.EMIT_WAVES) if not flagged[i] and not in_water_vapour(w)]
    assert good.band_numbers == [i + 1 for i in keep]


# ------------------------------------------------------------------------------------ wrong and damaged

@pytest.fixture(scope="session")
def wrong(tmp_path_factory, scene):
    folder = str(tmp_path_factory.mktemp("wrong"))
    paths = {
        "emit_l1b": samples.make_emit(folder, scene, "EMIT_L1B_RAD_001_20230101T100000_2300107_002.nc", "radiance"),
        "enmap_l1b": samples.make_enmap(folder, scene, samples.ENMAP_NAME.replace("L2A", "L1B")),
        "prisma_l1": samples.make_prisma(folder, scene, "PRS_L1_STD_OFFL_20220609100231_20220609100235_0001.he5", "L1"),
    }
    good = samples.make_prisma(folder, scene, "good.he5")
    with open(good, "rb") as f:
        head = f.read(2048)
    paths["truncated_he5"] = os.path.join(folder, "PRS_L2D_STD_truncated.he5")
    with open(paths["truncated_he5"], "wb") as f:
        f.write(head)
    paths["not_hdf5_nc"] = os.path.join(folder, samples.EMIT_NAME)
    with open(paths["not_hdf5_nc"], "wb") as f:
        f.write(b"<html>download failed</html>")
    enmap = samples.make_enmap(folder, scene, samples.ENMAP_NAME.replace("DT0000004950", "DT0000009999"))
    xml = glob.glob(os.path.join(enmap, "*-METADATA.XML"))[0]
    with open(xml) as f:
        text = f.read()
    with open(xml, "w") as f:
        f.write(text[: len(text) // 2])
    paths["broken_xml"] = enmap
    return paths


@pytest.mark.parametrize("kind, message", [
    ("emit_l1b", r"is an EMIT L1B radiance file; this tool reads EMIT L2A surface reflectance"),
    ("enmap_l1b", r"is an EnMAP L1B product; this tool reads EnMAP L2A"),
    ("prisma_l1", r"is a PRISMA L1 product \(PRS_L1_HCO\); this tool reads PRISMA L2D"),
    ("truncated_he5", r"is an HDF5 file that cannot be opened .*damaged or incomplete"),
    ("not_hdf5_nc", r"is named like a EMIT product but is not an HDF5/netCDF-4 file: it is damaged"),
    ("broken_xml", r"is not a readable XML file .*the product is damaged"),
])
def test_wrong_level_and_damaged_files_get_one_sentence(wrong, kind, message):
    with pytest.raises(HsiDetectError, match=message) as info:
        read_cube(wrong[kind])
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------ end to end

def cli(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "engine"))
    return subprocess.run([PYTHON, "-m", "hsi_detect_engine.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def result_line(done):
    assert done.returncode == 0, done.stderr
    lines = [json.loads(l) for l in done.stdout.splitlines() if l.startswith("{")]
    return next(l["result"] for l in lines if "result" in l), [l["message"] for l in lines if l.get("stage") == "log"]


@pytest.mark.parametrize("kind", ["envi", "enmap", "prisma", "emit"])
def test_bs3lnet_end_to_end_on_each_product(tmp_path, products, kind):
    out = str(tmp_path / f"{kind}_score.tif")
    done = cli("anomaly", products[kind], "-o", out, "--iterations", "2", "--batch-size", "8", "--device", "cpu",
               "--json-progress")
    result, logs = result_line(done)
    expected = read_cube(products[kind])
    assert result["bands"] == expected.shape[2] and result["wavelengths"] == pytest.approx(expected.wavelengths)
    assert any(m.startswith(f"Using {expected.shape[2]} bands") for m in logs)
    ds = gdal.Open(out)
    assert (ds.RasterYSize, ds.RasterXSize) == expected.shape[:2]
    assert ds.GetGeoTransform() == pytest.approx(expected.georef.geotransform)
    assert epsg(ds.GetProjection()) == epsg(expected.georef.crs_wkt)
    saved = [float(w) for w in ds.GetMetadataItem("wavelengths").split(",")]
    assert saved == pytest.approx(expected.wavelengths, abs=1e-3)
    score = ds.GetRasterBand(1).ReadAsArray()
    assert ((score != -9999) == expected.valid).all()


def test_hypernet_end_to_end_on_two_prisma_dates_and_model_wavelengths(tmp_path, scene):
    d1 = samples.make_prisma(str(tmp_path), scene, "PRS_L2D_STD_20220609100231_20220609100235_0001.he5")
    later = samples.load_scene(offset=(12, 22))
    d2 = samples.make_prisma(str(tmp_path), later, "PRS_L2D_STD_20230609100231_20230609100235_0001.he5")
    model = str(tmp_path / "hypernet.safetensors")
    done = cli("change", d1, d2, "-o", str(tmp_path / "change.tif"), "--epochs", "2", "--device", "cpu",
               "--wavelengths", "400-1340,1460-1790,1960-2450", "--save-model", model, "--json-progress")
    result, _ = result_line(done)
    assert all(400 <= w <= 1340 or 1460 <= w <= 1790 or 1960 <= w <= 2450 for w in result["wavelengths"])
    ds = gdal.Open(str(tmp_path / "change.tif"))
    assert ds.GetGeoTransform() == (500000.0, 30.0, 0.0, 4100000.0, 0.0, -30.0)
    n = result["bands"]
    # the same band count at other wavelengths: refused by wavelength, not only by count
    done = cli("change", d1, d2, "-o", str(tmp_path / "other.tif"), "--model", model, "--device", "cpu",
               "--bad-bands", "keep", "--bands", f"2-{n + 1}")
    assert done.returncode == 1
    assert "was trained on bands at" in done.stderr and "Choose the same wavelengths" in done.stderr
    assert not os.path.exists(tmp_path / "other.tif")


def test_an_xml_that_is_a_gdal_vrt_is_read_by_gdal(tmp_path, products):
    vrt = str(tmp_path / "mosaic.xml")
    gdal.BuildVRT(vrt, [products["envi"][:-4] + ".bil"]).FlushCache()
    c = read_cube(vrt, bad_bands="keep")
    assert c.kind == "" and c.shape == (40, 50, 120)
