"""Regions labelled window by window over a score raster equal those labelled on the whole map,
and a streamed run's objects layer equals the in-memory run's."""

import os

import numpy as np
import pytest
from osgeo import gdal, ogr
from scipy import ndimage

from hsi_detect_engine.anomaly import run_anomaly
from hsi_detect_engine.io.cube import Georef
from hsi_detect_engine.io.objects import EIGHT, label_objects, label_polygons, object_table
from hsi_detect_engine.io.writer import RasterWriter
from hsi_detect_engine.streaming.regions import Regions
from hsi_detect_engine.streaming.scores import ScoreRaster

gdal.UseExceptions()
ogr.UseExceptions()
GEOTRANSFORM = (500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0)
DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo", "hydice_urban.tif")


def blobby(seed=0, shape=(90, 70)):
    """Smoothed noise: regions of every shape (U-shapes whose arms meet windows later, diagonal
    contacts), a few plateaus of tied peaks, and a nodata corner."""
    rng = np.random.default_rng(seed)
    score = ndimage.gaussian_filter(rng.normal(size=shape), 1.5)
    score[40:44, 10:30] = 0.0
    score[40:50, 10:12] = score[40:50, 28:30] = 2.0  # a U opened upwards: its arms are joined at the bottom
    score[40, 10:30] = 0.0
    score[60, 60] = score[61, 61] = 3.0  # touching by a corner only
    score[70:72, 30:33] = 2.5  # a plateau: the peak is its first pixel
    score[:4, :5] = np.nan
    return score


def raster(tmp_path, score):
    path = str(tmp_path / "score.tif")
    with RasterWriter(path, Georef(*score.shape, GEOTRANSFORM), dtype="float64", nodata=float("nan")) as w:
        w.write(score)
    return ScoreRaster(path, score.shape[1] * 24 * 7)  # windows of 7 rows


@pytest.mark.parametrize("seed", [0, 1])
def test_regions_of_windows_equal_the_whole_maps_regions_and_objects(tmp_path, seed):
    score = blobby(seed)
    valid = np.isfinite(score)
    cut = float(np.nanpercentile(score, 80))
    src = raster(tmp_path, score)
    assert src.step == 7
    regions = Regions(src, cut, str(tmp_path / "labels.tif"), seed=float(np.nanpercentile(score, 97)))
    labels, count = ndimage.label(valid & (score > cut), structure=EIGHT)
    assert regions.count == count > 10
    keep = np.ones(count, dtype=bool)
    lookup = regions.lookup(keep, np.arange(1, count + 1))
    streamed = lookup[regions.read(0, score.shape[0])]
    assert np.array_equal(streamed, labels)  # the same regions, numbered alike
    seeded = np.zeros(count + 1, dtype=bool)
    seeded[np.unique(labels[valid & (score > np.nanpercentile(score, 97))])] = True
    assert np.array_equal(regions.seeded, seeded[1:])
    georef = Georef(*score.shape, GEOTRANSFORM)
    big = regions.pixels >= 3
    expected = object_table(*label_objects(labels > 0, min_size=3), np.nan_to_num(score), georef)
    got = regions.object_rows(big, georef)
    assert [(r["id"], r["rank"], r["pixels"], r["peak_x"], r["peak_y"]) for r in got] == \
           [(r["id"], r["rank"], r["pixels"], r["peak_x"], r["peak_y"]) for r in expected]
    for a, b in zip(got, expected):
        assert a == pytest.approx(b, rel=1e-12)
    polygons = regions.polygons(big, str(tmp_path / "objects.tif"), georef)
    whole = label_polygons(label_objects(labels > 0, min_size=3)[0], georef)
    assert sorted(polygons) == sorted(whole) == list(range(1, int(big.sum()) + 1))
    assert all(polygons[k].Equals(whole[k]) for k in whole)
    regions.close()
    src.close()


def test_a_streamed_runs_objects_equal_the_in_memory_runs(tmp_path):
    layers = {}
    for name, limit in (("memory", "4GB"), ("streamed", "12MB")):
        objects = str(tmp_path / f"{name}-objects.gpkg")
        summary = run_anomaly(DEMO, str(tmp_path / f"{name}.tif"), method="rx", objects=objects, memory_limit=limit)
        assert summary.get("streamed", False) == (name == "streamed") and summary["objects"] > 3
        ds = ogr.Open(objects)
        layer = ds.GetLayerByName("detected_objects")
        layers[name] = sorted(([f.GetField(k) for k in ("rank", "pixels", "peak_x", "peak_y", "centroid_x")],
                               f.GetGeometryRef().ExportToWkt()) for f in layer)
        del layer
        ds = None
    assert [f[0][:4] for f in layers["memory"]] == [f[0][:4] for f in layers["streamed"]]
    assert [f[0][4] for f in layers["memory"]] == pytest.approx([f[0][4] for f in layers["streamed"]])
    assert [f[1] for f in layers["memory"]] == [f[1] for f in layers["streamed"]]
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith(".")) == []  # no scratch left
