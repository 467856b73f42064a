"""BS3LNet's 'mse+rx' score (bs3lnet/fusion.py): two squared distances fused by their roots' robust z-scores."""

import numpy as np

from hsi_detect_engine.bs3lnet.fusion import fuse


def _parts(seed=0, shape=(60, 50)):
    rng = np.random.default_rng(seed)
    mse = rng.chisquare(5, shape)
    rx = rng.chisquare(30, shape)
    return mse, rx


def test_a_pixel_anomalous_in_either_part_scores_high():
    mse, rx = _parts()
    mse[3, 4] = 200.0  # only the network sees it
    rx[40, 20] = 600.0  # only RX sees it
    valid = np.ones(mse.shape, bool)
    score = fuse([mse, rx], valid)
    top = np.argsort(score.ravel())[-2:]
    assert set(top) == {np.ravel_multi_index((3, 4), mse.shape), np.ravel_multi_index((40, 20), mse.shape)}


def test_neither_part_s_units_decide():
    """Multiplying a part by any positive factor leaves the score as it was: each root is
    standardised by its own median and MAD."""
    mse, rx = _parts(1)
    valid = np.ones(mse.shape, bool)
    np.testing.assert_allclose(fuse([mse * 1e6, rx * 1e-3], valid), fuse([mse, rx], valid), rtol=1e-9, atol=1e-9)


def test_a_squared_distance_from_zero_with_invalid_pixels_zero():
    mse, rx = _parts(2)
    valid = np.ones(mse.shape, bool)
    valid[:5] = False
    mse[:5], rx[:5] = 1e9, np.nan  # what invalid pixels hold must not matter
    score = fuse([mse, rx], valid)
    assert np.all(score[~valid] == 0) and score[valid].min() == 0 and np.isfinite(score).all()
    ref = np.sqrt(mse[valid]), np.sqrt(rx[valid])
    z = sum((r - np.median(r)) / (1.4826 * np.median(np.abs(r - np.median(r)))) for r in ref)
    np.testing.assert_allclose(score[valid], (z - z.min()) ** 2, rtol=1e-12)
