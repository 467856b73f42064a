"""The hysteresis rule (the anomaly default): seeds at a strict false-alarm cut grown through a looser one,
regions too large to be rare dropped; in memory and over a written score raster alike."""

import numpy as np
import pytest
from osgeo import gdal

from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.cube import Georef
from hsi_detect_engine.io.writer import RasterWriter
from hsi_detect_engine.parameters import FALSE_ALARM_RATE, HYSTERESIS_SPREAD, MAX_OBJECT_SHARE
from hsi_detect_engine.streaming.scores import ScoreRaster, binarize_raster, cut_of_raster
from hsi_detect_engine.thresholds import binary_map, choose_threshold, false_alarm_threshold, hysteresis_thresholds

gdal.UseExceptions()
SIZE = 200
SEED_RATE, GROW_RATE = FALSE_ALARM_RATE.default / HYSTERESIS_SPREAD, FALSE_ALARM_RATE.default * HYSTERESIS_SPREAD


def scene(seed=0, field=None):
    """A background whose distances have the exponential tail the false-alarm model assumes, scattered
    at random over a 200 x 200 map, and 12 compact 3 x 3 objects: a centre far above the seed cut, a rim
    between the grow and seed cuts (as a blurred target's edge). ``field``: pixels set at twice the seed
    cut. Returns (score, valid, objects)."""
    rng = np.random.default_rng(seed)
    score = rng.exponential(1.0, (SIZE, SIZE)) ** 2
    valid = np.ones_like(score, dtype=bool)
    objects = np.zeros_like(valid)
    for _ in range(2):  # the objects and the field move the cuts a little: set them on the final cuts
        seed_t, grow_t = hysteresis_thresholds(score[valid])
        for k in range(12):
            r, c = 10 + 16 * k, 20 + 13 * k
            objects[r - 1:r + 2, c - 1:c + 2] = True
            score[r - 1:r + 2, c - 1:c + 2] = (seed_t + grow_t) / 2
            score[r, c] = 4 * seed_t
        if field is not None:
            score[field] = 2 * seed_t
    assert hysteresis_thresholds(score[valid]) == pytest.approx((seed_t, grow_t), rel=1e-3)
    return score, valid, objects


def test_cuts_are_the_false_alarm_rule_at_the_seed_and_grow_rates():
    score, valid, _ = scene()
    seed_t, grow_t = hysteresis_thresholds(score[valid])
    assert seed_t == pytest.approx(false_alarm_threshold(score[valid], SEED_RATE))
    assert grow_t == pytest.approx(false_alarm_threshold(score[valid], GROW_RATE))
    assert grow_t < seed_t
    # the expected false-alarm rate moves both cuts: a higher rate flags more
    loose = hysteresis_thresholds(score[valid], 0.03)
    assert loose == pytest.approx((false_alarm_threshold(score[valid], 0.01), false_alarm_threshold(score[valid], 0.09)))
    assert loose[0] < seed_t and loose[1] < grow_t
    strict, _ = binary_map(score, valid, "hysteresis", false_alarm_rate=0.0003)
    default, _ = binary_map(score, valid, "hysteresis")
    assert 0 < (strict == 1).sum() < (default == 1).sum()
    with pytest.raises(HsiDetectError, match="between 0 and 0.5"):
        hysteresis_thresholds(score[valid], 0.6)


def test_hysteresis_keeps_whole_objects_and_drops_isolated_pixels_of_the_same_score():
    score, valid, objects = scene()
    classes, info = binary_map(score, valid, "hysteresis")
    flagged = classes == 1
    assert info["threshold_method"] == "hysteresis" and info["grow_threshold"] < info["threshold"]
    assert flagged[objects].all()  # rims included: they touch a seed
    single, _ = binary_map(score, valid, "false-alarm", false_alarm_rate=SEED_RATE)
    assert (single[objects] == 1).sum() == 12  # one cut keeps only the centres
    between = ~objects & (score > info["grow_threshold"]) & (score <= info["threshold"])
    assert between.sum() > 100 and flagged[between].mean() < 0.2  # background between the cuts mostly left out
    background_flagged = flagged[~objects].mean()
    assert background_flagged <= 1.5 * (single[~objects] == 1).mean()


def test_a_region_larger_than_the_share_is_dropped_as_background():
    side = int(np.ceil(np.sqrt(MAX_OBJECT_SHARE * SIZE * SIZE))) + 2  # a field just over the share
    field = np.zeros((SIZE, SIZE), dtype=bool)
    field[-side:, -side:] = True
    score, valid, objects = scene(1, field)
    classes, _ = binary_map(score, valid, "hysteresis")
    assert not (classes[field] == 1).any()
    assert (classes[objects] == 1).all()
    small = np.zeros_like(valid)
    small[-side:, -4:] = True  # well under the share: kept
    classes, _ = binary_map(np.where(field & ~small, 0.0, score), valid, "hysteresis")
    assert (classes[small] == 1).all()


def test_hysteresis_ignores_unit_and_offset_and_marks_invalid_pixels():
    score, valid, _ = scene(2)
    valid[:5] = False
    a, _ = binary_map(score, valid, "hysteresis")
    b, _ = binary_map(3.0 + 7.0 * score, valid, "hysteresis")
    assert np.array_equal(a, b)
    assert (a[:5] == 255).all() and set(np.unique(a[5:])) <= {0, 1}


def test_hysteresis_is_a_map_not_one_threshold():
    with pytest.raises(HsiDetectError, match="binary_map"):
        choose_threshold(np.arange(100.0), "hysteresis")


def test_the_streamed_cut_equals_the_in_memory_one(tmp_path):
    score, valid, _ = scene(3)
    score[:3, :7] = np.nan
    valid = np.isfinite(score)
    path, out = str(tmp_path / "score.tif"), str(tmp_path / "map.tif")
    georef = Georef(SIZE, SIZE, (0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    with RasterWriter(path, georef, dtype="float64", nodata=float("nan")) as w:
        w.write(score, 0, 0)
    raster = ScoreRaster(path, 1 << 16)  # windows of a few rows
    assert raster.step < SIZE
    expected, info = binary_map(score, valid, "hysteresis")
    cut = cut_of_raster(raster, "hysteresis", budget=1 << 16, scratch=str(tmp_path / "regions.tif"))
    assert cut.info == pytest.approx(info)
    with RasterWriter(out, georef, dtype="uint8", nodata=255) as w:
        marked = binarize_raster(raster, w, cut)
    raster.close()
    ds = gdal.Open(out)
    written = ds.GetRasterBand(1).ReadAsArray()
    assert np.array_equal(written, expected) and marked == int((expected == 1).sum()) > 0
