"""BS3LNet's 'mse+rx' score (bs3lnet/fusion.py): two squared distances fused by their roots' robust z-scores,
smoothed among spectrally alike neighbours; its RX part measures each pixel half averaged with its alike
neighbours."""

import numpy as np
import pytest

from hsi_detect_engine.bs3lnet import fusion
from hsi_detect_engine.bs3lnet.fusion import WIDTH, adjacent_distances, fuse, projection, smooth, spacing_of


def _flat(shape):
    """A guide without differences: the smoothing's sigma is 0 and the sum is left as it is."""
    return np.zeros(shape + (3,))


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
    score = fuse([mse, rx], valid, _flat(mse.shape))
    top = np.argsort(score.ravel())[-2:]
    assert set(top) == {np.ravel_multi_index((3, 4), mse.shape), np.ravel_multi_index((40, 20), mse.shape)}


def test_neither_part_s_units_decide():
    """Multiplying a part by any positive factor leaves the score as it was: each root is
    standardised by its own median and MAD."""
    mse, rx = _parts(1)
    valid = np.ones(mse.shape, bool)
    guide = np.random.default_rng(3).normal(size=mse.shape + (3,))
    np.testing.assert_allclose(fuse([mse * 1e6, rx * 1e-3], valid, guide), fuse([mse, rx], valid, guide), rtol=1e-9,
                               atol=1e-9)


def test_a_squared_distance_from_zero_with_invalid_pixels_zero():
    mse, rx = _parts(2)
    valid = np.ones(mse.shape, bool)
    valid[:5] = False
    mse[:5], rx[:5] = 1e9, np.nan  # what invalid pixels hold must not matter
    score = fuse([mse, rx], valid, _flat(mse.shape))
    assert np.all(score[~valid] == 0) and score[valid].min() == 0 and np.isfinite(score).all()
    ref = np.sqrt(mse[valid]), np.sqrt(rx[valid])
    z = sum((r - np.median(r)) / (1.4826 * np.median(np.abs(r - np.median(r)))) for r in ref)
    np.testing.assert_allclose(score[valid], (z - z.min()) ** 2, rtol=1e-12)


def test_smoothing_shares_scores_within_an_object_and_not_across_its_edge():
    """A 4 x 4 object whose pixels look alike (the guide) but score unevenly, on a background unlike
    it: its pixels' scores even out, the background beside it stays as it was."""
    guide = np.zeros((20, 20, 3))
    guide[8:12, 8:12] = 10.0  # the object, far from the background in the guide
    guide += np.random.default_rng(0).normal(0, 0.01, guide.shape)
    total = np.zeros((20, 20))
    total[8:12, 8:12] = np.array([[9, 1, 9, 1], [1, 9, 1, 9], [9, 1, 9, 1], [1, 9, 1, 9]], float)
    valid = np.ones((20, 20), bool)
    out = smooth(total, guide, valid, WIDTH * spacing_of(adjacent_distances(guide, valid)))
    inside = out[8:12, 8:12]
    assert inside.std() < 0.5 * total[8:12, 8:12].std() and inside.mean() == pytest.approx(5.0, abs=0.5)
    assert np.abs(out[7, 8:12]).max() < 1e-6 and np.abs(out[8:12, 12]).max() < 1e-6


def test_a_one_pixel_target_keeps_its_score_a_plain_mean_would_spread():
    guide = np.random.default_rng(1).normal(0, 0.1, (15, 15, 3))
    guide[7, 7] = 5.0
    total = np.zeros((15, 15))
    total[7, 7] = 30.0
    valid = np.ones((15, 15), bool)
    alike = smooth(total, guide, valid, WIDTH * spacing_of(adjacent_distances(guide, valid)))
    plain = smooth(total, guide, valid, np.inf)
    assert alike[7, 7] > 29.0 and alike[6, 6] < 0.01
    assert plain[7, 7] == pytest.approx(30.0 / 9) and plain[6, 6] == pytest.approx(30.0 / 9)


def test_invalid_pixels_neither_count_nor_score():
    guide = np.zeros((6, 6, 3))  # all alike: the smoothing is a plain mean over the valid neighbours
    total = np.arange(36, dtype=float).reshape(6, 6)
    valid = np.ones((6, 6), bool)
    valid[2, 3] = False
    junk = total.copy()
    junk[2, 3] = 1e12
    out = smooth(junk, guide, valid, 1.0)
    assert out[2, 3] == 0.0 and np.isfinite(out).all()
    assert out[1, 3] == pytest.approx(np.mean([total[r, c] for r in (0, 1, 2) for c in (2, 3, 4) if (r, c) != (2, 3)]))
    assert out[0, 0] == pytest.approx(np.mean(total[:2, :2]))  # the image's corner: its four pixels


def test_the_spacing_is_the_median_distance_between_adjacent_pixels_and_sigma_zero_leaves_the_sum():
    guide = np.zeros((4, 5, 1))
    guide[:, :, 0] = np.array([0.0, 1.0, 3.0, 6.0, 10.0])  # horizontal steps 1, 2, 3, 4 in every row
    valid = np.ones((4, 5), bool)
    assert spacing_of(adjacent_distances(guide, valid)) == pytest.approx(2.5)
    assert spacing_of(np.empty(0)) == 0.0
    total = np.random.default_rng(2).normal(size=(4, 5))
    np.testing.assert_array_equal(smooth(total, guide, valid, 0.0), total)


def test_the_guide_is_the_first_three_components_at_unit_variance():
    rng = np.random.default_rng(4)
    pixels = rng.normal(size=(5000, 6)) * np.array([10.0, 5.0, 2.0, 1.0, 0.5, 0.0])  # one band without variance
    matrix = projection(np.cov(pixels, rowvar=False))
    assert matrix.shape == (6, 3)
    components = (pixels - pixels.mean(axis=0)) @ matrix
    np.testing.assert_allclose(np.cov(components, rowvar=False), np.eye(3), atol=1e-9)
    np.testing.assert_allclose(np.abs(matrix[:3]), np.diag([0.1, 0.2, 0.5]), atol=0.02)
    np.testing.assert_array_equal(projection(np.zeros((4, 4))), np.zeros((4, 1)))  # a scene without variance


def test_the_streamed_fusion_read_in_windows_of_rows_equals_the_whole_image(tmp_path):
    """FusedRows and GuideRows (bs3lnet/streamed.py) read the parts and the guide back from rasters in
    windows of a few rows, each with a row above and below: the spacing and smoothed sums are the
    in-memory ones."""
    from hsi_detect_engine.bs3lnet.streamed import FUSED_PER_PIXEL, FusedRows, GuideRows
    from hsi_detect_engine.io.cube import Georef
    from hsi_detect_engine.io.writer import RasterWriter
    from hsi_detect_engine.progress import Progress

    rows, cols = 23, 17
    rng = np.random.default_rng(7)
    mse, rx = _parts(7, (rows, cols))
    guide = rng.normal(size=(rows, cols, 3))
    guide[5:9, 4:8] += 4.0  # an object the smoothing keeps apart
    valid = rng.random((rows, cols)) > 0.1
    paths = [str(tmp_path / name) for name in ("mse.tif", "rx.tif", "guide.tif")]
    for path, values in zip(paths, (mse, rx, guide)):
        bands = 1 if values.ndim == 2 else values.shape[2]
        with RasterWriter(path, Georef(rows, cols), bands=bands, dtype="float64", nodata=np.nan) as w:
            stored = np.array(values, float)
            stored[~valid] = np.nan
            w.write(stored, 0, 0)
    statistics = []
    total = np.zeros((rows, cols))
    for part in (mse, rx):
        r = np.sqrt(part[valid])
        median = float(np.median(r))
        mad = float(np.median(np.abs(r - median)))
        statistics.append((median, mad))
        total[valid] += (r - median) / (1.4826 * mad)
    flat_guide = np.where(valid[..., None], guide, 0.0)
    spacing = spacing_of(adjacent_distances(flat_guide, valid))
    sigma = WIDTH * spacing
    guide_rows = GuideRows(paths[2], cols * (8 * 3 + FUSED_PER_PIXEL) * 4, Progress())
    fused = FusedRows(tuple(paths[:2]), statistics, guide_rows)
    try:
        assert guide_rows.step == 4  # six windows, the last of three rows
        assert guide_rows.spacing() == pytest.approx(spacing, rel=1e-12)
        got = np.zeros((rows, cols))
        for r, values, ok in fused.windows(sigma):
            np.testing.assert_array_equal(ok, valid[r:r + ok.shape[0]])
            got[r:r + ok.shape[0]][ok] = values[ok]
    finally:
        fused.close()
        guide_rows.close()
    np.testing.assert_allclose(got, smooth(total, flat_guide, valid, sigma), rtol=1e-10, atol=1e-12)


def _scene(seed=5, shape=(30, 30), bands=12):
    """Background noise, a faint 5 x 5 object and a strong one-pixel target; the guide tells both apart."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=shape + (bands,))
    image[10:15, 10:15] += 0.8  # faint in every band: RX of single noisy pixels hardly sees it
    image[24, 5] += 4.0
    guide = rng.normal(0, 0.1, shape + (3,))
    guide[10:15, 10:15] += 3.0
    guide[24, 5] -= 3.0
    valid = np.ones(shape, bool)
    valid[0, :4] = False
    return image, guide, valid


def _plain_rx(image, valid):
    from hsi_detect_engine.classical import rx_scores

    return rx_scores(image, valid)


def _rx_part(image, guide, valid):
    from hsi_detect_engine.classical import mean_cov, safe_inverse

    mean, cov = mean_cov(image[valid])
    return fusion.rx_part(image, valid, guide, spacing_of(adjacent_distances(guide, valid)), mean, safe_inverse(cov))


def test_the_rx_part_lifts_an_extended_object_above_the_noise_and_keeps_a_one_pixel_target():
    image, guide, valid = _scene()
    plain, part = _plain_rx(image, valid), _rx_part(image, guide, valid)
    obj = np.zeros(valid.shape, bool)
    obj[10:15, 10:15] = True
    background = valid & ~obj
    background[24, 5] = False

    def separation(score):  # the object's median against the background's 99th percentile
        return np.median(score[obj]) / np.quantile(score[background], 0.99)

    assert separation(part) > 1.5 * separation(plain)
    assert part[24, 5] > 0.9 * plain[24, 5]
    assert np.all(part[~valid] == 0)


def test_the_rx_part_in_windows_of_rows_equals_one_window(monkeypatch):
    """rx_part reads windows of a few rows, each with a row above and below: the same as one window."""
    image, guide, valid = _scene(6, (30, 9), 5)
    whole = _rx_part(image, guide, valid)
    monkeypatch.setattr(fusion, "WINDOW_VALUES", 4 * 9 * 5)  # windows of four rows
    np.testing.assert_allclose(_rx_part(image, guide, valid), whole, rtol=1e-12, atol=1e-12)
    from hsi_detect_engine.classical import mean_cov, safe_inverse

    mean, cov = mean_cov(image[valid])
    one = fusion.rx_rows(image, guide, valid, spacing_of(adjacent_distances(guide, valid)), mean, safe_inverse(cov))
    np.testing.assert_allclose(whole, one, rtol=1e-12, atol=1e-12)
