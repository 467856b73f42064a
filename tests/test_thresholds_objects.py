"""The false-alarm threshold rule, the detected-objects layer and the object-level accuracy figures."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from hsi_detect_engine.accuracy.metrics import object_figures
from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.cube import Georef
from hsi_detect_engine.io.objects import check_objects_output, label_objects, object_table, write_detected_objects
from hsi_detect_engine.thresholds import choose_threshold, false_alarm_threshold

from rasters import write_tif

gdal.UseExceptions()
ogr.UseExceptions()
GEOTRANSFORM = (500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0)


def chi_like(n, seed=0):
    """Squared distances of a Gaussian background (chi-square, 10 degrees of freedom) and 20 far outliers."""
    rng = np.random.default_rng(seed)
    background = (rng.standard_normal((n, 10)) ** 2).sum(axis=1)
    return background, 200.0 + 50.0 * rng.random(20)


def test_false_alarm_rule_flags_the_outliers_and_the_requested_share_of_a_modelled_background():
    """A background whose distances (roots of the scores) have an exponential tail, as the rule
    models it, and 20 outliers: about the requested share of the background is flagged."""
    rng = np.random.default_rng(0)
    background = rng.exponential(1.0, 10000) ** 2
    outliers = 150.0 + 50.0 * rng.random(20)
    scores = np.concatenate([background, outliers])
    for rate in (0.001, 0.01, 0.03):
        t = false_alarm_threshold(scores, rate)
        assert (outliers > t).all()
        assert rate / 1.5 <= (background > t).mean() <= rate * 1.5
    assert false_alarm_threshold(scores, 0.001) > false_alarm_threshold(scores, 0.01)


def test_false_alarm_rule_flags_fewer_than_the_rate_of_a_gaussian_background():
    """A Gaussian background's squared distances have a lighter tail than the model: the rule errs
    towards fewer false alarms, and still flags every far outlier."""
    background, outliers = chi_like(10000)
    scores = np.concatenate([background, outliers])
    for rate in (0.01, 0.03):
        t = false_alarm_threshold(scores, rate)
        assert (outliers > t).all()
        assert 0 < (background > t).mean() <= rate


def test_false_alarm_rule_ignores_unit_and_offset_as_min_max_normalisation_does():
    background, outliers = chi_like(5000, seed=1)
    scores = np.concatenate([background, outliers])
    t = false_alarm_threshold(scores, 0.01)
    normalised = (scores - scores.min()) / (scores.max() - scores.min())
    t_norm = false_alarm_threshold(normalised, 0.01)
    assert ((scores > t) == (normalised > t_norm)).all()
    assert choose_threshold(scores, "false-alarm", false_alarm_rate=0.01) == pytest.approx(t)


def test_a_gaussian_bulk_model_would_flag_far_more_of_a_heavy_tailed_background():
    """Why the rule models the tail: with median and MAD as a Gaussian it flags many times the rate."""
    rng = np.random.default_rng(2)
    background = rng.lognormal(0.0, 0.6, 20000)
    t = false_alarm_threshold(background, 0.01)
    median = np.median(background)
    gaussian = median + 1.4826 * np.median(np.abs(background - median)) * 2.326
    assert (background > gaussian).mean() > 3 * 0.01
    assert (background > t).mean() < 3 * 0.01


def test_false_alarm_rate_out_of_range_is_refused():
    with pytest.raises(HsiDetectError, match="between 0 and 0.5"):
        false_alarm_threshold(np.arange(100.0), 0.7)


def blobs():
    """A 20 x 30 score map with three detected blobs: 4 pixels (peak 0.9), a diagonal pair (0.5), 1 pixel (0.95)."""
    score = np.full((20, 30), 0.1)
    detected = np.zeros((20, 30), dtype=bool)
    detected[2:4, 3:5] = True
    score[2:4, 3:5] = [[0.6, 0.7], [0.8, 0.9]]
    detected[10, 10] = detected[11, 11] = True  # 8-connected, not 4-connected
    score[10, 10], score[11, 11] = 0.5, 0.4
    detected[15, 25] = True
    score[15, 25] = 0.95
    return detected, score


def test_objects_are_8_connected_ranked_by_peak_with_areas_and_map_coordinates():
    detected, score = blobs()
    labels, count = label_objects(detected)
    assert count == 3
    table = object_table(labels, count, score, Georef(20, 30, GEOTRANSFORM, ""))
    assert [(r["rank"], r["pixels"], r["peak_score"]) for r in table] == [(1, 1, 0.95), (2, 4, 0.9), (3, 2, 0.5)]
    assert [r["area"] for r in table] == [900.0, 3600.0, 1800.0]
    single, square, pair = table
    assert (single["peak_x"], single["peak_y"]) == (500000 + 25.5 * 30, 4000000 - 15.5 * 30)
    assert (square["peak_x"], square["peak_y"]) == (500000 + 4.5 * 30, 4000000 - 3.5 * 30)
    assert (square["centroid_x"], square["centroid_y"]) == (500000 + 4.0 * 30, 4000000 - 3.0 * 30)
    assert square["mean_score"] == pytest.approx(0.75)
    assert label_objects(detected, min_size=2)[1] == 2


def test_objects_layer_on_a_georeferenced_raster(tmp_path):
    detected, score = blobs()
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32651)
    out = tmp_path / "objects.gpkg"
    found = write_detected_objects(str(out), detected, score, Georef(20, 30, GEOTRANSFORM, srs.ExportToWkt()))
    assert found == {"path": str(out), "objects": 3}
    ds = ogr.Open(str(out))
    layer = ds.GetLayerByName("detected_objects")
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "32651"
    features = sorted(layer, key=lambda f: f.GetField("rank"))
    assert [f.GetField("pixels") for f in features] == [1, 4, 2]
    assert [f.GetGeometryRef().GetArea() for f in features] == pytest.approx([900.0, 3600.0, 1800.0])
    assert [f.GetField("area") for f in features] == [900.0, 3600.0, 1800.0]
    x0, x1, y0, y1 = features[1].GetGeometryRef().GetEnvelope()
    assert (x0, x1, y0, y1) == (500090.0, 500150.0, 3999880.0, 3999940.0)
    for f in features:
        peak = ogr.Geometry(ogr.wkbPoint)
        peak.AddPoint_2D(f.GetField("peak_x"), f.GetField("peak_y"))
        assert f.GetGeometryRef().Contains(peak)
    styles = ds.GetLayerByName("layer_styles")
    style = next(iter(styles))
    assert style.GetField("f_table_name") == "detected_objects" and style.GetField("useAsDefault") == 1
    assert 'fieldName="rank"' in style.GetField("styleQML")
    del features, layer, style, styles
    ds = None
    assert (tmp_path / "objects.qml").exists()
    assert sorted(os.listdir(tmp_path)) == ["objects.gpkg", "objects.qml"]


def test_an_empty_map_gives_an_empty_layer(tmp_path):
    out = write_detected_objects(str(tmp_path / "none.gpkg"), np.zeros((5, 5), bool), np.zeros((5, 5)),
                                 Georef(5, 5, GEOTRANSFORM, ""))
    assert out["objects"] == 0
    ds = ogr.Open(out["path"])
    assert ds.GetLayerByName("detected_objects").GetFeatureCount() == 0


def test_objects_need_a_geopackage_name_and_a_minimum_size_of_one_pixel(tmp_path):
    with pytest.raises(HsiDetectError, match=".gpkg"):
        check_objects_output(str(tmp_path / "objects.shp"), 1)
    with pytest.raises(HsiDetectError, match="at least 1 pixel"):
        check_objects_output(str(tmp_path / "objects.gpkg"), 0)
    assert os.listdir(tmp_path) == []


def test_object_figures_count_hit_truth_objects_and_false_objects():
    truth = np.zeros((20, 20), bool)
    truth[1:3, 1:3] = True  # hit
    truth[10, 10] = True  # missed
    detected = np.zeros((20, 20), bool)
    detected[2, 2] = True
    detected[15:17, 15] = True  # false
    detected[5, 5] = True  # false
    assert object_figures(detected, truth) == {"truth_objects": 2, "objects_hit": 1, "objects_hit_share": 0.5,
                                               "detected_objects": 3, "false_objects": 2}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "hsi_detect_engine.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_objects_with_the_hysteresis_default_and_evaluate_reports_objects(tmp_path):
    rng = np.random.default_rng(3)
    cube = rng.normal(0.0, 1.0, (40, 50, 6)).astype(np.float32)
    cube[5:7, 5:7] += 12.0
    cube[30, 40] += 15.0
    image = write_tif(tmp_path / "image.tif", cube)
    gt = np.zeros((40, 50, 1), np.float32)
    gt[5:7, 5:7] = gt[30, 40] = 1
    truth = write_tif(tmp_path / "gt.tif", gt)
    done = cli("anomaly", image, "-o", str(tmp_path / "s.tif"), "--binary", str(tmp_path / "b.tif"), "--method", "rx",
               "--objects", str(tmp_path / "o.gpkg"), "--min-object-size", "1", "--json-progress")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])["result"]
    assert result["threshold_method"] == "hysteresis" and result["grow_threshold"] < result["threshold"]
    assert result["outputs"]["objects"] == str(tmp_path / "o.gpkg")
    ds = ogr.Open(str(tmp_path / "o.gpkg"))
    layer = ds.GetLayerByName("detected_objects")
    assert layer.GetFeatureCount() == result["objects"] >= 2
    top = sorted(layer, key=lambda f: f.GetField("rank"))[0]
    assert top.GetField("peak_score") == pytest.approx(1.0)
    done = cli("evaluate", str(tmp_path / "b.tif"), truth)
    assert done.returncode == 0, done.stderr
    assert "2 of 2 ground-truth objects hit" in done.stdout


def test_cli_refuses_an_objects_file_that_is_not_a_geopackage_before_any_work(tmp_path):
    image = write_tif(tmp_path / "image.tif", np.random.default_rng(5).normal(size=(10, 10, 4)).astype(np.float32))
    done = cli("anomaly", image, "-o", str(tmp_path / "s.tif"), "--method", "rx", "--objects", str(tmp_path / "o.shp"))
    assert done.returncode == 1 and "must be a GeoPackage" in done.stderr and "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["image.tif"]


def test_cli_change_writes_changed_regions(tmp_path):
    rng = np.random.default_rng(4)
    t1 = rng.normal(0.0, 1.0, (30, 30, 4)).astype(np.float32)
    t2 = t1 + rng.normal(0.0, 0.1, t1.shape).astype(np.float32)
    t2[10:14, 10:14] += 8.0
    a, b = write_tif(tmp_path / "t1.tif", t1), write_tif(tmp_path / "t2.tif", t2)
    done = cli("change", a, b, "-o", str(tmp_path / "c.tif"), "--method", "cva", "--objects", str(tmp_path / "r.gpkg"))
    assert done.returncode == 0, done.stderr
    ds = ogr.Open(str(tmp_path / "r.gpkg"))
    layer = ds.GetLayerByName("changed_regions")
    names = [layer.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(layer.GetLayerDefn().GetFieldCount())]
    assert {"area", "mean_change", "peak_change"} <= set(names)
    biggest = max(layer, key=lambda f: f.GetField("pixels"))
    assert biggest.GetField("pixels") == 16 and biggest.GetField("area") == 16 * 900.0
