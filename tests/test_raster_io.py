"""GDAL raster I/O: round trips, band subsets, nodata, wavelengths, tiles, atomic writes."""

import os

import numpy as np
import pytest
from osgeo import gdal, osr

from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.bands import parse_band_ranges, select_bands
from hsi_detect_engine.io.cube import Georef
from hsi_detect_engine.io.reader import RasterSource, read_cube, read_single_band
from hsi_detect_engine.io.tiles import iter_tiles
from hsi_detect_engine.io.transaction import RASTER, OutputTransaction
from hsi_detect_engine.io.writer import RasterWriter, write_raster

gdal.UseExceptions()
DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo")
GT = (500000.0, 2.5, 0.0, 4100000.0, 0.0, -2.5)


def utm_wkt(epsg=32633):
    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    return s.ExportToWkt()


def make_raster(path, cube, nodata=None, dtype=gdal.GDT_Float32, driver="GTiff", wavelengths=None, geotransform=GT):
    rows, cols, bands = cube.shape
    ds = gdal.GetDriverByName(driver).Create(str(path), cols, rows, bands, dtype)
    ds.SetGeoTransform(geotransform)
    ds.SetProjection(utm_wkt())
    for i in range(bands):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(cube[:, :, i])
        if nodata is not None:
            b.SetNoDataValue(nodata)
    if wavelengths is not None:
        if driver == "ENVI":
            ds.SetMetadata({"wavelength": "{" + ", ".join(f"{w:g}" for w in wavelengths) + "}",
                            "wavelength_units": "Nanometers"}, "ENVI")
        else:
            for i, w in enumerate(wavelengths):
                ds.GetRasterBand(i + 1).SetMetadataItem("wavelength", f"{w:g}")
                ds.GetRasterBand(i + 1).SetMetadataItem("wavelength_units", "nm")
    ds = None
    return str(path)


@pytest.fixture
def cube():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1000, size=(23, 31, 7)).astype(np.float32)


def test_round_trip_values_georef_band_subset_and_wavelengths(tmp_path, cube):
    waves = [400.0 + 10 * i for i in range(7)]
    path = make_raster(tmp_path / "in.tif", cube, wavelengths=waves)
    c = read_cube(path, bands=[2, 5, 7])
    assert c.data.shape == (23, 31, 3) and c.data.dtype == np.float32
    np.testing.assert_array_equal(c.data, cube[:, :, [1, 4, 6]])
    assert c.georef.geotransform == GT
    assert osr.SpatialReference(c.georef.crs_wkt).IsSame(osr.SpatialReference(utm_wkt()))
    assert c.wavelengths == [410.0, 440.0, 460.0] and c.wavelength_units == "nm"
    assert c.band_numbers == [2, 5, 7]
    out = write_raster(str(tmp_path / "out.tif"), c.data[:, :, 0], c.georef)
    back = gdal.Open(out)
    assert back.GetGeoTransform() == GT
    assert osr.SpatialReference(back.GetProjection()).IsSame(osr.SpatialReference(utm_wkt()))
    np.testing.assert_array_equal(back.ReadAsArray(), cube[:, :, 1])
    opts = back.GetMetadata("IMAGE_STRUCTURE")
    assert opts.get("COMPRESSION") == "DEFLATE"
    assert back.GetRasterBand(1).GetBlockSize()[0] < 31 or back.GetRasterBand(1).GetBlockSize() == [256, 256]


def test_envi_wavelengths_are_kept(tmp_path, cube):
    waves = [450.5 + i for i in range(7)]
    path = make_raster(tmp_path / "cube.img", cube, driver="ENVI", wavelengths=waves)
    c = read_cube(path, bands=[1, 3, 7])
    assert c.wavelengths == pytest.approx([450.5, 452.5, 456.5])


def test_nodata_and_non_finite_become_invalid_and_are_written_as_nodata(tmp_path, cube):
    cube = cube.copy()
    cube[0, 0, 3] = -9999.0
    cube[5, 6, :] = -9999.0
    cube[7, 8, 1] = np.nan
    path = make_raster(tmp_path / "nd.tif", cube, nodata=-9999.0)
    c = read_cube(path)
    assert not c.valid[0, 0] and not c.valid[5, 6] and not c.valid[7, 8]
    assert c.valid.sum() == 23 * 31 - 3
    assert np.isfinite(c.data).all()
    out = write_raster(str(tmp_path / "o.tif"), c.data[:, :, 0], c.georef, valid=c.valid, nodata=-1.0)
    arr, nodata, _ = read_single_band(out)
    assert nodata == -1.0 and arr[5, 6] == -1.0 and arr[1, 1] == pytest.approx(cube[1, 1, 0])


def test_windowed_reads_and_tiles_equal_whole_read(tmp_path, cube):
    path = make_raster(tmp_path / "t.tif", cube)
    with RasterSource(path) as src:
        whole, _ = src.read()
        win, _ = src.read(3, 4, 10, 12)
        np.testing.assert_array_equal(win, whole[3:13, 4:16])
        rebuilt = np.full_like(whole, np.nan)
        for t in iter_tiles(src.height, src.width, tile_size=8, overlap=3):
            block, _ = src.read(t.row, t.col, t.rows, t.cols)
            rs, cs = t.core_in_tile
            rebuilt[t.core_row:t.core_row + t.core_rows, t.core_col:t.core_col + t.core_cols] = block[rs, cs]
    np.testing.assert_array_equal(rebuilt, whole)


def test_tiles_partition_the_image_and_overlap_is_clipped():
    seen = np.zeros((50, 37), dtype=int)
    for t in iter_tiles(50, 37, 16, 5):
        seen[t.core_row:t.core_row + t.core_rows, t.core_col:t.core_col + t.core_cols] += 1
        assert t.row >= 0 and t.col >= 0 and t.row + t.rows <= 50 and t.col + t.cols <= 37
        assert t.core_row - t.row in (0, 5) and t.core_col - t.col in (0, 5)
    assert (seen == 1).all()


def test_failed_write_leaves_no_file(tmp_path, cube):
    target = tmp_path / "result.tif"
    georef = Georef(23, 31, GT, utm_wkt())
    with pytest.raises(RuntimeError):
        with OutputTransaction({"r": (str(target), RASTER)}) as txn:
            with RasterWriter(txn.path("r"), georef) as w:
                w.write(cube[:12, :, 0])
                raise RuntimeError("failure half-way")
    assert os.listdir(tmp_path) == []


def test_existing_output_is_kept_when_a_rewrite_fails(tmp_path, cube):
    target = tmp_path / "result.tif"
    georef = Georef(23, 31, GT, utm_wkt())
    write_raster(str(target), cube[:, :, 0], georef)
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with OutputTransaction({"r": (str(target), RASTER)}) as txn:
            with RasterWriter(txn.path("r"), georef) as w:
                w.write(cube[:, :, 1])
            raise RuntimeError("cancelled")
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["result.tif"]


def test_demo_scene_reads_with_its_georeference():
    c = read_cube(os.path.join(DEMO, "hydice_urban.tif"))
    assert c.shape == (80, 100, 162) and c.valid.all()
    assert c.georef.geotransform[1] == 2.0
    assert "UTM zone 14N" in c.georef.crs_wkt


@pytest.mark.parametrize("text,expected", [("1,2,5-7", [1, 2, 5, 6, 7]), (" 3 ", [3]), ("10-10", [10])])
def test_parse_band_list(text, expected):
    assert select_bands(text, 10) == expected
    assert parse_band_ranges(text)[-1][1] == expected[-1]


# --------------------------------------------------------------------------- clear errors

def test_missing_file(tmp_path):
    with pytest.raises(HsiDetectError, match="not found"):
        read_cube(str(tmp_path / "nope.tif"))


def test_not_a_raster(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("this is not an image")
    with pytest.raises(HsiDetectError, match="not a raster GDAL can read"):
        read_cube(str(p))


def test_folder_given_as_input(tmp_path):
    with pytest.raises(HsiDetectError, match="folder"):
        read_cube(str(tmp_path))


@pytest.mark.parametrize("bands", [1, 2])
def test_too_few_bands(tmp_path, cube, bands):
    path = make_raster(tmp_path / "few.tif", cube[:, :, :bands])
    with pytest.raises(HsiDetectError, match="hyperspectral cube needs at least 3"):
        read_cube(path)


def test_band_out_of_range(tmp_path, cube):
    path = make_raster(tmp_path / "b.tif", cube)
    with pytest.raises(HsiDetectError, match="Band 8 is out of range.*bands 1 to 7"):
        read_cube(path, bands=[1, 2, 8])
    with pytest.raises(HsiDetectError, match="Band 0 is out of range"):
        read_cube(path, bands=[0, 1, 2])


def test_no_valid_pixel(tmp_path, cube):
    path = make_raster(tmp_path / "empty.tif", np.full_like(cube, -1.0), nodata=-1.0)
    with pytest.raises(HsiDetectError, match="no valid pixel"):
        read_cube(path)


def test_output_folder_missing(tmp_path, cube):
    georef = Georef(23, 31, GT, utm_wkt())
    with pytest.raises(HsiDetectError, match="Output folder .* does not exist"):
        OutputTransaction({"r": (str(tmp_path / "missing" / "o.tif"), RASTER)})


def test_output_equal_to_input_is_refused_and_input_kept(tmp_path, cube):
    path = make_raster(tmp_path / "in.tif", cube)
    with open(path, "rb") as f:
        before = f.read()
    c = read_cube(path)
    with pytest.raises(HsiDetectError, match="same file as input"):
        OutputTransaction({"r": (path, RASTER)}, [path])
    os.symlink(path, tmp_path / "alias.tif")
    with pytest.raises(HsiDetectError, match="same file as input"):
        OutputTransaction({"r": (str(tmp_path / "alias.tif"), RASTER)}, [path])
    with open(path, "rb") as f:
        assert f.read() == before


def test_integer_raster_with_nodata_outside_its_range(tmp_path):
    cube = np.arange(4 * 5 * 3, dtype=np.uint16).reshape(4, 5, 3)
    path = make_raster(tmp_path / "u16.tif", cube, nodata=-9999.0, dtype=gdal.GDT_UInt16)
    c = read_cube(path)
    assert c.valid.all()  # -9999 cannot occur in uint16: no pixel is nodata
    cube[1, 2, 0] = 1000
    path = make_raster(tmp_path / "u16b.tif", cube, nodata=1000, dtype=gdal.GDT_UInt16)
    c = read_cube(path)
    assert not c.valid[1, 2] and c.valid.sum() == 19
