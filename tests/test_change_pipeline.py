"""The change pipeline around the detectors: CVA baseline, thresholds of heavy-tailed scores,
and a run cancelled while writing."""

import os

import numpy as np
import pytest

from hsi_detect_engine.change import run_change
from hsi_detect_engine.errors import Cancelled
from hsi_detect_engine.accuracy.evaluate import evaluate
from hsi_detect_engine.progress import Progress
from hsi_detect_engine.io.reader import read_single_band
from hsi_detect_engine.thresholds import choose_threshold, otsu_threshold

DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo")
T1, T2, TRUTH = (os.path.join(DEMO, f) for f in ("taizhou_2000.tif", "taizhou_2003.tif", "taizhou_gt.tif"))


def test_cva_baseline_on_the_shipped_pair(tmp_path):
    out, acd, binary = (str(tmp_path / f) for f in ("cva.tif", "acd.tif", "bin.tif"))
    summary = run_change(T1, T2, out, anomalous=acd, binary=binary, method="cva")
    assert summary["method"] == "cva" and set(summary["outputs"]) == {"change", "anomalous_change", "binary"}
    score = evaluate(out, TRUTH, unlabelled=255)
    assert score["auc"] > 0.98  # standardised dates: the strong radiometric offset between them is gone
    assert evaluate(binary, TRUTH, unlabelled=255)["kappa"] > 0.8
    assert evaluate(acd, TRUTH, unlabelled=255)["auc"] > 0.9


@pytest.mark.parametrize("transform", ["sqrt", "log"])
def test_threshold_on_a_transformed_score_is_returned_on_the_score_scale(transform):
    rng = np.random.default_rng(0)
    unchanged, changed = rng.chisquare(3, 20000), 25 * rng.chisquare(3, 2000)
    values = np.concatenate([unchanged, changed])  # squared distances: a long tail
    f = np.sqrt if transform == "sqrt" else np.log
    t = choose_threshold(values, "otsu", transform=transform)
    assert t == pytest.approx((otsu_threshold(f(values)) ** 2) if transform == "sqrt" else np.exp(otsu_threshold(f(values))),
                              rel=1e-6)
    plain = choose_threshold(values, "otsu")
    truth = np.r_[np.zeros(unchanged.size), np.ones(changed.size)].astype(bool)
    missed = lambda cut: ((values <= cut) & truth).sum()  # noqa: E731
    assert missed(t) < missed(plain)  # the plain cut sits far out in the tail and misses changes
    assert choose_threshold(values, "value", value=3.0, transform=transform) == 3.0


def test_minimum_error_threshold_fits_a_narrow_bulk_and_a_wide_tail():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(1.0, 0.1, 20000), rng.normal(3.0, 1.0, 1500)])
    truth = np.r_[np.zeros(20000), np.ones(1500)]
    t = choose_threshold(values, "min-error")
    assert 1.2 < t < 1.8  # Otsu's equal-variance cut lies further out, in the changes' spread
    assert cohen_kappa_score(truth, values > t) > cohen_kappa_score(truth, values > choose_threshold(values, "otsu"))
    assert choose_threshold(np.full(10, 2.0), "min-error") == 2.0


@pytest.fixture
def one_thread():
    """A tiny network: a second thread only adds contention on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_hypernet_binary_map_uses_its_threshold_transform(tmp_path, one_thread):
    from osgeo import gdal

    out, binary = str(tmp_path / "c.tif"), str(tmp_path / "b.tif")
    dates = [str(tmp_path / "t1.tif"), str(tmp_path / "t2.tif")]
    for src, dst in zip((T1, T2), dates):
        gdal.Translate(dst, src, srcWin=[100, 100, 48, 40]).FlushCache()
    params = {"epochs": 2, "threshold_transform": "log"}
    summary = run_change(*dates, out, binary=binary, params=params, device="cpu")
    magnitude, nodata, _ = read_single_band(out)
    valid = magnitude != nodata
    assert summary["threshold"] == pytest.approx(choose_threshold(magnitude[valid], "otsu", transform="log"), rel=1e-4)
    classes, _, _ = read_single_band(binary)
    assert np.array_equal(classes[valid] == 1, magnitude[valid] > summary["threshold"])


def test_cancelled_while_writing_leaves_no_file(tmp_path):
    def on_event(event):
        if event["stage"] == "writing":
            progress.cancel()

    progress = Progress(on_event, min_interval=0.0)
    with pytest.raises(Cancelled):
        run_change(T1, T2, str(tmp_path / "c.tif"), anomalous=str(tmp_path / "a.tif"), binary=str(tmp_path / "b.tif"),
                   method="cva", progress=progress)
    assert os.listdir(tmp_path) == []
