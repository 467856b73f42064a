"""RX, CVA, thresholds and accuracy figures."""

import os

import numpy as np
import pytest

from hsi_detect_engine import linalg
from hsi_detect_engine.classical import cva_magnitude, rx_scores, safe_inverse
from hsi_detect_engine.accuracy.metrics import accuracy_figures, labelled_pixels
from hsi_detect_engine.io.reader import read_cube
from hsi_detect_engine.thresholds import binarize, choose_threshold, kmeans_threshold, otsu_threshold

DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo")


def test_rx_agrees_with_spectral_package_on_a_real_scene():
    spectral = pytest.importorskip("spectral")
    cube = read_cube(os.path.join(DEMO, "hydice_urban.tif"))
    ours = rx_scores(cube.data, cube.valid)
    theirs = spectral.rx(cube.data.astype(np.float64))
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.999


@pytest.mark.parametrize("with_torch", [True, False])
def test_the_float64_products_equal_their_definitions(monkeypatch, with_torch):
    """Through torch, and through numpy where torch is not installed (Debian's own Python)."""
    if not with_torch:
        monkeypatch.setattr(linalg, "_torch", lambda: None)
    rng = np.random.default_rng(5)
    pixels = (rng.normal(size=(3000, 12)) * 40 + 2000).astype(np.float32)
    d = pixels.astype(np.float64) - pixels.astype(np.float64).mean(axis=0)
    mean, gram = linalg.centred_gram(pixels)
    assert np.allclose(mean, pixels.astype(np.float64).mean(axis=0), rtol=1e-13)
    assert np.allclose(gram, d.T @ d, rtol=1e-10)
    m = rng.normal(size=(12, 12))
    forms = linalg.quadratic_forms(pixels, mean, m)
    assert np.allclose(forms, [x @ m @ x for x in d], rtol=1e-9)
    assert pixels.dtype == np.float32 and np.isclose(pixels.mean(), 2000, rtol=0.01)  # the input is left as it was


def test_rx_is_finite_on_rank_deficient_data():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 30, 3))
    cube = np.concatenate([base, base, base[:, :, :1] * 2], axis=2)  # 7 bands, rank 3
    score = rx_scores(cube, np.ones((30, 30), bool))
    assert np.isfinite(score).all() and score.max() > 0
    inv = safe_inverse(np.zeros((4, 4)))
    assert np.array_equal(inv, np.zeros((4, 4)))


def test_rx_ignores_invalid_pixels():
    rng = np.random.default_rng(1)
    cube = rng.normal(size=(20, 20, 5))
    valid = np.ones((20, 20), bool)
    ref = rx_scores(cube, valid)
    cube2 = cube.copy()
    cube2[0, 0] = 1e6
    valid[0, 0] = False
    got = rx_scores(cube2, valid)
    assert got[0, 0] == 0
    assert not np.allclose(got[valid], ref[valid])  # statistics now exclude the pixel
    assert np.isfinite(got).all() and got[valid].max() < 1e3


def test_cva_sees_a_change_and_ignores_a_global_offset():
    rng = np.random.default_rng(2)
    t1 = rng.normal(100, 10, size=(40, 40, 6))
    t2 = t1 * 1.3 + 50  # radiometric difference only
    t2[10:15, 10:15] += 80
    mag = cva_magnitude(t1, t2, np.ones((40, 40), bool))
    assert mag[10:15, 10:15].min() > np.percentile(mag, 95)


def test_thresholds():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1, 5000), rng.normal(10, 1, 500)])
    for t in (otsu_threshold(values), kmeans_threshold(values)):
        assert 3 < t < 8
    assert choose_threshold(values, "value", value=2.5) == 2.5
    t = choose_threshold(values, "fraction", fraction=0.1)
    assert (values > t).mean() == pytest.approx(0.1, abs=0.002)
    valid = np.ones(values.shape, bool)
    valid[0] = False
    b = binarize(values, valid, 5.0)
    assert b[0] == 255 and set(np.unique(b[1:])) <= {0, 1}


def test_accuracy_figures_match_scikit_learn():
    from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score, roc_auc_score

    rng = np.random.default_rng(4)
    truth = (rng.random(3000) < 0.2).astype(np.uint8)
    score = truth * 1.0 + rng.normal(0, 0.6, 3000)
    fig = accuracy_figures(score, truth, threshold=0.5)
    pred = (score > 0.5).astype(np.uint8)
    assert fig["auc"] == pytest.approx(roc_auc_score(truth, score))
    assert fig["kappa"] == pytest.approx(cohen_kappa_score(truth, pred))
    assert fig["f1"] == pytest.approx(f1_score(truth, pred))
    assert fig["precision"] == pytest.approx(precision_score(truth, pred))
    assert fig["recall"] == pytest.approx(recall_score(truth, pred))
    assert fig["oa"] == pytest.approx((pred == truth).mean())


def test_unlabelled_pixels_are_left_out():
    gt = np.array([[1, 0, 255], [0, 1, 255]])
    score = np.array([[0.9, 0.1, 0.99], [0.2, 0.8, 0.0]])
    s, t = labelled_pixels(score, np.ones(gt.shape, bool), gt, unlabelled=255)
    assert s.tolist() == [0.9, 0.1, 0.2, 0.8] and t.tolist() == [1, 0, 0, 1]
    fig = accuracy_figures(s, t)
    assert fig["auc"] == 1.0 and fig["labelled_pixels"] == 4
