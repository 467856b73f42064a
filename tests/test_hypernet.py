"""HyperNet: loss, training pixels, tiled features, model files, nodata, cancellation, accuracy.

All on the CPU, with tiny training budgets, on the shipped Taizhou pair and small synthetic rasters.
"""

import os

import numpy as np
import pytest
import torch

from hsi_detect_engine.change import run_change
from hsi_detect_engine.classical import cva_magnitude, rx_scores
from hsi_detect_engine.errors import Cancelled, HsiDetectError
from hsi_detect_engine.hypernet.detector import detect
from hsi_detect_engine.hypernet.network import HyperNetModel, focal_cosine, hidden_width
from hsi_detect_engine.hypernet.features import extract_features
from hsi_detect_engine.accuracy.metrics import accuracy_figures, labelled_pixels
from hsi_detect_engine.io.pairs import Pair, read_pair
from hsi_detect_engine.progress import Progress
from hsi_detect_engine.io.cube import Cube, Georef
from hsi_detect_engine.io.reader import read_single_band
from hsi_detect_engine.simulate import simulate_change_pair
from hsi_detect_engine.hypernet.training_pixels import select_training_pixels
from rasters import write_tif

DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo")
T1, T2, TRUTH = (os.path.join(DEMO, f) for f in ("taizhou_2000.tif", "taizhou_2003.tif", "taizhou_gt.tif"))
TINY = {"epochs": 2, "crop_size": 0, "hidden": 16}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic_pair(rows=40, cols=48, bands=8, seed=0, nodata_at=()):
    """Date 2 = date 1 under another gain and offset, plus noise; a changed square (the truth)."""
    rng = np.random.default_rng(seed)
    t1 = (rng.normal(size=(1, 1, bands)) + np.linspace(0, 1, cols)[None, :, None] * rng.normal(size=bands)
          + 0.1 * rng.normal(size=(rows, cols, bands))).astype(np.float32)
    t2 = (1.3 * t1 + 0.5 + 0.03 * rng.normal(size=t1.shape)).astype(np.float32)
    truth = np.zeros((rows, cols), bool)
    truth[8:16, 10:20] = True
    t2[truth] = (rng.normal(size=(int(truth.sum()), bands)) * 2 + 3).astype(np.float32)
    valid = np.ones((rows, cols), bool)
    for r, c in nodata_at:
        valid[r, c] = False
    t1[~valid] = 0
    t2[~valid] = 0
    cubes = [Cube(t, valid.copy(), Georef(rows, cols), list(range(1, bands + 1))) for t in (t1, t2)]
    return Pair(cubes[0], cubes[1], valid), truth


# ----------------------------------------------------------------------------- loss and network

def test_focal_weight_makes_a_harder_pair_weigh_more():
    torch.manual_seed(0)
    z = torch.randn(1, 32, 1, 2)
    noise = torch.randn(1, 32, 1, 2)
    p = z.clone()
    p[..., 0] = z[..., 0] + 0.2 * noise[..., 0]  # easy pair: cosine near 1
    p[..., 1] = -0.3 * z[..., 1] + noise[..., 1]  # hard pair: low cosine
    pixels = torch.arange(2)

    def per_pixel_gradient(gamma):
        q = p.clone().requires_grad_(True)
        focal_cosine(q, q, z, z, pixels, gamma).backward()
        return q.grad.flatten(2)[0].norm(dim=0)

    cos = torch.nn.functional.cosine_similarity(p.flatten(2)[0], z.flatten(2)[0], dim=0)
    assert cos[0] > 0.9 and cos[1] < 0.2
    plain, focal = per_pixel_gradient(0.0), per_pixel_gradient(1.0)
    weight = focal / plain  # d/dc[(2 - c) c] = 2 - 2c relative to d/dc[c] = 1
    assert torch.allclose(weight, 2 - 2 * cos, rtol=1e-4)
    assert weight[1] > 3 * weight[0]


def test_stop_gradient_no_gradient_reaches_the_target_branch():
    torch.manual_seed(1)
    p1, p2, z1, z2 = (torch.randn(1, 16, 4, 5, requires_grad=True) for _ in range(4))
    focal_cosine(p1, p2, z1, z2, torch.tensor([0, 3, 7, 19]), 1.0).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0
    # only the training pixels carry a gradient
    grad = p1.grad.flatten(2)[0].abs().sum(dim=0)
    assert set(torch.nonzero(grad).flatten().tolist()) == {0, 3, 7, 19}


def test_hidden_width_follows_the_band_count():
    assert [hidden_width(b) for b in (6, 126, 127, 224)] == [16, 64, 64, 112]
    assert hidden_width(154, 72) == 72
    assert sum(p.numel() for p in HyperNetModel(10, 16).parameters()) > 0


def test_bad_parameters_are_refused():
    pair, _ = synthetic_pair()
    for bad in ({"hidden": 8}, {"epochs": 0}, {"crop_size": 5}, {"training_fraction": 0.0}, {"learning_rate": -1.0},
                {"scaling": "minmax"}, {"unknown": 1}):
        with pytest.raises(HsiDetectError):
            detect(pair, dict(TINY, **bad), device="cpu")


# ----------------------------------------------------------------------------- training pixels

@pytest.mark.parametrize("rule", ["cva-fraction", "cva-otsu", "angle-fraction"])
def test_training_pixels_avoid_known_changes(rule):
    pair, truth = synthetic_pair(nodata_at=[(0, 0), (20, 30)])
    chosen = select_training_pixels(pair.t1.data, pair.t2.data, pair.valid, rule, 0.5)
    assert not (chosen & ~pair.valid).any()
    assert (chosen & truth).sum() <= 0.02 * truth.sum()
    assert chosen.sum() >= 0.4 * (~truth & pair.valid).sum()


def test_training_mask_replaces_the_rule_and_all_takes_every_valid_pixel():
    pair, truth = synthetic_pair(nodata_at=[(1, 1)])
    mask = np.zeros(truth.shape, bool)
    mask[30:, :] = True
    mask[1, 1] = True  # nodata: never trained on
    got = select_training_pixels(pair.t1.data, pair.t2.data, pair.valid, "cva-fraction", 0.5, mask)
    assert np.array_equal(got, mask & pair.valid)
    assert np.array_equal(select_training_pixels(pair.t1.data, pair.t2.data, pair.valid, "all"), pair.valid)
    with pytest.raises(HsiDetectError):
        select_training_pixels(pair.t1.data, pair.t2.data, pair.valid, mask=np.zeros(truth.shape, bool))


# ----------------------------------------------------------------------------- detection

def test_rx_of_the_feature_difference_is_safe_when_features_are_rank_deficient():
    pair, _ = synthetic_pair()
    _, diff, _ = detect(pair, TINY, device="cpu")
    # a dead (all-zero) channel and a copy of another: the covariance is singular
    dead = np.concatenate([diff, np.zeros_like(diff[..., :1]), diff[..., :1]], axis=2)
    ref, got = rx_scores(diff, pair.valid), rx_scores(dead, pair.valid)
    assert np.isfinite(got).all()
    assert np.allclose(got, ref, rtol=1e-3, atol=1e-6 * ref.max())


def test_magnitude_is_the_mean_squared_difference_over_2h_channels():
    pair, _ = synthetic_pair(bands=10)  # 2h = 32 != B = 10: the authors' reshape bug would break here
    magnitude, diff, info = detect(pair, dict(TINY, score="mse"), device="cpu")
    assert diff.shape == (40, 48, 32) and info["hidden"] == 16
    assert np.allclose(magnitude, (diff.astype(np.float64) ** 2).mean(axis=2), rtol=1e-5)


def test_cosine_score_is_one_minus_the_cosine_of_the_features():
    from hsi_detect_engine.hypernet.detector import change_score

    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(5, 6, 32)).astype(np.float32)
    f2 = f1 * 3.0  # same direction, three times longer: no change for the cosine, a change for the mse
    f2[0, 0] = -f1[0, 0]
    cos = change_score(f1, f2, "cosine")
    assert cos[0, 0] == pytest.approx(2.0) and np.allclose(cos.ravel()[1:], 0.0, atol=1e-6)
    assert (change_score(f1, f2, "mse") > 0).all()


def test_default_score_is_the_root_cosine_distance_times_the_change_vector_magnitude():
    pair, _ = synthetic_pair(nodata_at=((3, 4),))
    cosine, _, _ = detect(pair, dict(TINY, score="cosine"), device="cpu", seed=4)
    combined, _, _ = detect(pair, TINY, device="cpu", seed=4)  # same seed: the same network
    cva = cva_magnitude(pair.t1.data, pair.t2.data, pair.valid)
    assert np.allclose(combined, np.sqrt(cosine) * cva, rtol=1e-5, atol=1e-7)
    assert combined[3, 4] == 0 and (combined[pair.valid] > 0).mean() > 0.99
    pair.t2.data[:] = pair.t1.data  # identical spectra score 0, whatever the features say
    same, _, _ = detect(pair, TINY, device="cpu", seed=4)
    assert np.abs(same).max() < 1e-6


def feature_image(bands=9, rows=61, cols=70):
    """A scaled image with nodata inside, and a network whose BatchNorm layers have non-trivial
    running statistics."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    image = (rng.normal(size=(rows, cols, bands)) + np.linspace(0, 2, cols)[None, :, None]).astype(np.float32)
    valid = np.ones((rows, cols), bool)
    valid[5:9, 40:52] = False  # nodata inside: left out of the global statistics
    image[~valid] = 0
    model = HyperNetModel(bands, 16)
    with torch.no_grad():
        for _ in range(3):
            model.features(torch.from_numpy(image.transpose(2, 0, 1))[None] * 2 + 1)
    return model, image, valid


@pytest.mark.parametrize("date_norm", [False, True])
@pytest.mark.parametrize("bands", [9, 16])  # 16 = h: residual first blocks, identity shortcut
def test_tiled_features_equal_whole_image_features(date_norm, bands, tmp_path):
    model, image, valid = feature_image(bands)
    model.stats.date_norm = date_norm
    whole = extract_features(model, image, valid, "cpu", None, Progress())
    scale = np.abs(whole).max()
    for tile, budget in ((16, None), (23, 0)):  # in memory; on disk
        tiled = extract_features(model, image, valid, "cpu", tile, Progress(), scratch=str(tmp_path),
                                 memory_budget=budget)
        assert np.abs(tiled - whole).max() <= 1e-5 * scale
    assert os.listdir(tmp_path) == []


def test_tiled_features_cost_about_one_whole_image_pass():
    """Every global statistic is computed once, layer after layer: the convolutions see about
    as many pixels as in one whole-image pass (one pass per statistic would be 16 times)."""
    model, image, valid = feature_image()
    model.stats.date_norm = True
    seen = []
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append(out.shape[2] * out.shape[3]))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    extract_features(model, image, valid, "cpu", None, Progress())
    whole = sum(seen)
    seen.clear()
    extract_features(model, image, valid, "cpu", 32, Progress())
    for h in hooks:
        h.remove()
    assert whole < sum(seen) < 1.5 * whole  # the excess: the tiles' overlaps


def tiled_run_with_scratch(tmp_path, on_detecting):
    """Tiled features stored on disk under tmp_path/'scratch'; on_detecting(progress, folders) is
    called at each progress event with the scratch folders then present."""
    model, image, valid = feature_image()
    model.stats.date_norm = True
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    progress = Progress(lambda event: on_detecting(progress, os.listdir(scratch)), min_interval=0.0)
    return extract_features(model, image, valid, "cpu", 16, progress, scratch=str(scratch), memory_budget=0), scratch


def test_tiled_scratch_folder_is_removed_after_success(tmp_path):
    seen = set()
    _, scratch = tiled_run_with_scratch(tmp_path, lambda progress, folders: seen.update(folders))
    assert len(seen) == 1 and next(iter(seen)).startswith("hsi-detect-hypernet-")  # the activations were on disk
    assert os.listdir(scratch) == []


class DiskFailed(Exception):
    pass


@pytest.mark.parametrize("ending", [Cancelled, DiskFailed])
def test_tiled_scratch_folder_is_removed_after_cancel_or_failure(tmp_path, ending):
    events = []

    def on_event(progress, folders):
        events.append(folders)
        if len(events) == 40:  # some passes in, with activations on disk
            assert folders
            if ending is Cancelled:
                progress.cancel()
            else:
                raise DiskFailed()

    with pytest.raises(ending):
        tiled_run_with_scratch(tmp_path, on_event)
    assert os.listdir(tmp_path / "scratch") == []


def test_tiled_features_refuse_a_scratch_folder_without_room_before_starting(tmp_path):
    model = HyperNetModel(4, 16)
    rows = cols = 400_000  # 4h channels of float32: 41 TB
    image = np.broadcast_to(np.zeros(4, np.float32), (rows, cols, 4))
    valid = np.broadcast_to(True, (rows, cols))
    events = []
    with pytest.raises(HsiDetectError, match="free some space there or set TMPDIR"):
        extract_features(model, image, valid, "cpu", 1024, Progress(events.append), scratch=str(tmp_path),
                         memory_budget=0)
    assert events == [] and os.listdir(tmp_path) == []


def test_date_statistics_remove_a_radiometric_change_that_running_statistics_keep():
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    image = rng.normal(size=(48, 48, 6)).astype(np.float32)
    gain = (1.7 * image).astype(np.float32)
    gain_offset = (gain + rng.normal(size=6) * 3).astype(np.float32)  # and a per-band offset
    valid = np.ones((48, 48), bool)
    model = HyperNetModel(6, 16)
    with torch.no_grad():  # running statistics of the first date only
        model.train()
        model.features(torch.from_numpy(image.transpose(2, 0, 1))[None])

    def gap(other, date_norm, inner=slice(None)):
        model.stats.date_norm = date_norm
        f1 = extract_features(model, image, valid, "cpu", None, Progress())[inner, inner]
        f2 = extract_features(model, other, valid, "cpu", None, Progress())[inner, inner]
        return np.abs(f1 - f2).max() / np.abs(f1).max()

    # a gain alone is removed exactly; an offset too, but for the zero padding at the
    # border (the receptive field reaches 14 pixels in), which also shifts the global statistics
    assert gap(gain, True) < 1e-4 and gap(gain, False) > 0.1
    inner = slice(15, 33)
    assert gap(gain_offset, True, inner) < 0.1 * gap(gain_offset, False, inner)


@pytest.mark.parametrize("bn", ["running", "date"])
def test_tiled_detection_equals_whole_image_detection_through_the_pipeline(bn):
    pair, _ = synthetic_pair(rows=50, cols=45)
    whole, _, a = detect(pair, dict(TINY, tile_size=0, bn_statistics=bn), device="cpu", seed=3)
    tiled, _, b = detect(pair, dict(TINY, tile_size=20, bn_statistics=bn), device="cpu", seed=3)
    assert a["tile_size"] == 0 and b["tile_size"] == 20
    assert np.allclose(tiled, whole, rtol=1e-4, atol=1e-6 * whole.max())


def test_crops_are_used_when_asked_and_runs_are_repeatable():
    pair, _ = synthetic_pair()
    m1, _, info = detect(pair, dict(TINY, crop_size=32), device="cpu", seed=5)
    m2, _, _ = detect(pair, dict(TINY, crop_size=32), device="cpu", seed=5)
    m3, _, _ = detect(pair, dict(TINY, crop_size=32), device="cpu", seed=6)
    assert info["crop_size"] == 32
    assert np.array_equal(m1, m2) and not np.array_equal(m1, m3)


def test_save_and_load_give_identical_results(tmp_path):
    pair, _ = synthetic_pair()
    path = str(tmp_path / "hn.model")
    trained, _, info = detect(pair, dict(TINY, scaling="standardize"), device="cpu", save_model=path)
    assert info["saved_model"] == path
    applied, _, info2 = detect(pair, {}, device="cpu", model_path=path)
    assert info2["scaling"] == "standardize" and info2["hidden"] == 16
    assert np.array_equal(trained, applied)
    other, _ = synthetic_pair(bands=7)
    with pytest.raises(HsiDetectError, match="trained on 8 bands"):
        detect(other, {}, device="cpu", model_path=path)


# ----------------------------------------------------------------------------- pipeline on rasters

def test_grid_mismatch_is_resampled_or_refused(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(100, 10, size=(30, 32, 5)).astype(np.float32)
    a = write_tif(tmp_path / "a.tif", data)
    # date 2 covers only data[4:, 3:], georeferenced where it lies: after resampling onto
    # date 1's grid it matches date 1 there and is nodata in the first 4 rows and 3 columns
    shifted = write_tif(tmp_path / "b.tif", data[4:, 3:], (500000.0 + 90.0, 30.0, 0.0, 4000000.0 - 120.0, 0.0, -30.0))
    with pytest.raises(HsiDetectError, match="extent"):
        read_pair(a, shifted, grid="refuse")
    pair = read_pair(a, shifted, grid="resample")
    assert pair.resampled and pair.t2.shape == (30, 32, 5)
    assert np.allclose(pair.t2.data[4:, 3:], data[4:, 3:], atol=1e-3)
    assert not pair.valid[:4, :].any() and not pair.valid[:, :3].any() and pair.valid[4:, 3:].all()
    finer = write_tif(tmp_path / "c.tif", data, (500000.0, 15.0, 0.0, 4000000.0, 0.0, -15.0))
    with pytest.raises(HsiDetectError, match="pixel size"):
        read_pair(a, finer, grid="refuse")
    other_crs = write_tif(tmp_path / "d.tif", data, epsg=32650)
    with pytest.raises(HsiDetectError, match="CRS"):
        read_pair(a, other_crs, grid="refuse")


def test_band_count_mismatch_is_refused(tmp_path):
    data = np.ones((10, 12, 6), np.float32)
    a, b = write_tif(tmp_path / "a.tif", data), write_tif(tmp_path / "b.tif", data[:, :, :5])
    with pytest.raises(HsiDetectError, match="different band counts"):
        run_change(a, b, str(tmp_path / "c.tif"), method="cva")
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "b.tif"]


def test_nodata_is_left_out_of_training_and_rx_and_written_as_nodata(tmp_path):
    pair, _ = synthetic_pair()
    t1, t2 = pair.t1.data.copy(), pair.t2.data.copy()
    t1[2:5, 3:9] = -9999.0  # nodata in date 1 only
    t2[30, 40] = -9999.0  # and in date 2 only
    a = write_tif(tmp_path / "a.tif", t1, nodata=-9999.0)
    b = write_tif(tmp_path / "b.tif", t2, nodata=-9999.0)
    out, acd, binary = (str(tmp_path / f) for f in ("change.tif", "acd.tif", "binary.tif"))
    summary = run_change(a, b, out, anomalous=acd, binary=binary, params=TINY, device="cpu")
    hole = np.zeros((40, 48), bool)
    hole[2:5, 3:9] = True
    hole[30, 40] = True
    assert summary["valid_pixels"] == 40 * 48 - hole.sum()
    for path in (out, acd, binary):
        values, nodata, _ = read_single_band(path)
        assert (values[hole] == nodata).all() and (values[~hole] != nodata).all()
    # the anomalous-change statistics are those of the valid pixels only
    pair2 = read_pair(a, b)
    _, diff, _ = detect(pair2, TINY, device="cpu")
    expected = rx_scores(diff, pair2.valid)
    written, _, _ = read_single_band(acd)
    assert np.allclose(written[~hole], expected[~hole], rtol=1e-4)


@pytest.mark.parametrize("stage", ["training", "detecting"])
def test_cancelled_run_writes_nothing(tmp_path, stage):
    pair, _ = synthetic_pair()
    a, b = write_tif(tmp_path / "a.tif", pair.t1.data), write_tif(tmp_path / "b.tif", pair.t2.data)

    def on_event(event):
        if event["stage"] == stage and event.get("fraction", 0) > 0:
            progress.cancel()

    progress = Progress(on_event, min_interval=0.0)
    with pytest.raises(Cancelled):
        run_change(a, b, str(tmp_path / "c.tif"), anomalous=str(tmp_path / "acd.tif"),
                   binary=str(tmp_path / "bin.tif"), save_model=str(tmp_path / "m.model"),
                   params=dict(TINY, epochs=50 if stage == "training" else 2, tile_size=16), device="cpu",
                   progress=progress)
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "b.tif"]


def test_cli_change_with_method_parameters(tmp_path):
    from hsi_detect_engine.cli import main

    pair, _ = synthetic_pair()
    a, b = write_tif(tmp_path / "a.tif", pair.t1.data), write_tif(tmp_path / "b.tif", pair.t2.data)
    out = tmp_path / "c.tif"
    code = main(["change", a, b, "--output", str(out), "--binary", str(tmp_path / "m.tif"), "--epochs", "2",
                 "--hidden", "16", "--scaling", "none", "--training-pixels", "angle-fraction",
                 "--training-fraction", "0.4", "--gamma", "2", "--crop-size", "32", "--device", "cpu"])
    assert code == 0 and out.exists()
    assert main(["change", a, b, "--output", str(tmp_path / "d.tif"), "--hidden", "8"]) == 1


# ----------------------------------------------------------------------------- accuracy

def test_short_run_on_the_shipped_pair_separates_changed_from_unchanged():
    pair = read_pair(T1, T2)
    truth, _, _ = read_single_band(TRUTH)
    magnitude, diff, info = detect(pair, {"epochs": 20}, device="cpu", seed=1)  # the default otherwise
    s, t = labelled_pixels(magnitude, pair.valid, truth, 255)
    assert accuracy_figures(s, t)["auc"] > 0.9
    s, t = labelled_pixels(rx_scores(diff, pair.valid), pair.valid, truth, 255)
    assert accuracy_figures(s, t)["auc"] > 0.9


def test_simulated_pair_is_repeatable_and_marks_its_changes():
    rng = np.random.default_rng(0)
    materials = rng.uniform(500, 1500, size=(4, 30))  # four materials in quadrants, plus noise
    quadrant = (np.arange(40)[:, None] >= 20) * 2 + (np.arange(50)[None, :] >= 25)
    scene = (materials[quadrant] + rng.normal(size=(40, 50, 30)) * 10).astype(np.float32)
    a = simulate_change_pair(scene, seed=4, size=(60, 64), bands=20)
    b = simulate_change_pair(scene, seed=4, size=(60, 64), bands=20)
    c = simulate_change_pair(scene, seed=5, size=(60, 64), bands=20)
    assert a.t1.shape == a.t2.shape == (60, 64, 20) and a.gt.shape == (60, 64)
    assert np.array_equal(a.t2, b.t2) and np.array_equal(a.gt, b.gt) and not np.array_equal(a.gt, c.gt)
    assert 0.04 < a.gt.mean() < 0.12 and len(a.info["regions"]) >= 6
    # the changed regions differ far more between the dates than the radiometric change elsewhere
    d = np.linalg.norm(a.t2 / a.t2.mean(axis=(0, 1)) - a.t1 / a.t1.mean(axis=(0, 1)), axis=2)
    assert accuracy_figures(d[a.gt < 2], a.gt[a.gt < 2])["auc"] > 0.9
