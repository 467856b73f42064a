"""BS3LNet: blind-spot batches, loss, tiled detection, model files, nodata, cancellation, accuracy.

All on the CPU, with tiny training budgets, on the shipped demo scene and small synthetic rasters.
"""

import os

import numpy as np
import pytest
import torch

from hsi_detect_engine.anomaly import run_anomaly
from hsi_detect_engine.bs3lnet.blindspot import BlindSpotBatches, blind_count, masked_loss, reflect_index
from hsi_detect_engine.bs3lnet.detector import detect
from hsi_detect_engine.classical import minmax_normalise
from hsi_detect_engine.errors import Cancelled, HsiDetectError
from hsi_detect_engine.accuracy.metrics import accuracy_figures
from hsi_detect_engine.progress import Progress
from hsi_detect_engine.io.cube import Cube, Georef
from hsi_detect_engine.io.reader import read_cube, read_single_band
from rasters import write_tif

DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo")
SCENE = os.path.join(DEMO, "hydice_urban.tif")
TRUTH = os.path.join(DEMO, "hydice_urban_gt.tif")
# A training budget small enough for tests: a few short iterations.
TINY = {"iterations": 3, "batch_size": 8, "features": 8, "scaling": "standardize"}


def synthetic(rows, cols, bands=12, seed=0):
    """A smooth random scene with a few bright anomalies, as a Cube."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, 1, bands)) + np.linspace(0, 1, cols)[None, :, None] * rng.normal(size=bands)
    data = (base + 0.05 * rng.normal(size=(rows, cols, bands))).astype(np.float32)
    data[rows // 2, cols // 3] += 3.0
    return Cube(data, np.ones((rows, cols), bool), Georef(rows, cols), list(range(1, bands + 1)))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tensors here are tiny: one thread is faster, and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def demo():
    return read_cube(SCENE)


# ----------------------------------------------------------------------------- blind-spot batches

def test_reflection_never_repeats_the_edge_and_handles_tiny_sizes():
    i = torch.arange(-5, 9)
    assert reflect_index(i, 4).tolist() == [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]
    assert reflect_index(i, 1).tolist() == [0] * 14


def test_batch_shapes_and_blind_positions(demo):
    image = torch.from_numpy(demo.data)
    valid = torch.from_numpy(demo.valid)
    p, w, n_batch = 19, 5, 16
    maker = BlindSpotBatches(image, valid, patch=p, ratio=0.9, window=w, batch_size=n_batch, seed=3)
    n = blind_count(p, 0.9)
    assert n == 37 == maker.count
    for _ in range(3):
        pos, off = maker._draw(n_batch)
        assert pos.shape == (n_batch, n) and off.shape == (n_batch, n)
        centres = maker.centres[torch.randperm(maker.pixels)[:n_batch]]
        batch = maker.make(centres, pos, off)
        bands = demo.shape[2]
        assert batch.inputs.shape == batch.targets.shape == (n_batch, bands, p, p)
        assert batch.weights.shape == (n_batch, 1, p, p)
        # The target is the image patch around the centre.
        cy, cx = int(centres[0]) // demo.shape[1], int(centres[0]) % demo.shape[1]
        ry = reflect_index(torch.arange(cy - 9, cy + 10), demo.shape[0])
        rx = reflect_index(torch.arange(cx - 9, cx + 10), demo.shape[1])
        assert torch.equal(batch.targets[0], image[ry][:, rx].permute(2, 0, 1))
        for k in range(n_batch):
            blind = batch.blind[k]
            # the centre is always blind; as many blind positions as distinct drawn positions
            assert blind[p // 2, p // 2]
            assert int(blind.sum()) == len(set(pos[k].tolist()))
            ys, xs = torch.nonzero(blind, as_tuple=True)
            src = batch.source[k][ys, xs]
            sy, sx = src // p, src % p
            # another pixel, inside the window (wrapping around the patch), never its own
            dy = torch.remainder(sy - ys + p // 2, p) - p // 2
            dx = torch.remainder(sx - xs + p // 2, p) - p // 2
            assert bool(((dy != 0) | (dx != 0)).all())
            assert int(dy.abs().max()) <= w // 2 and int(dx.abs().max()) <= w // 2
            assert torch.equal(batch.inputs[k][:, ys, xs], batch.targets[k][:, sy, sx])
            # non-blind positions are untouched; loss weights sit exactly on the blind positions
            assert torch.equal(batch.inputs[k][:, ~blind], batch.targets[k][:, ~blind])
            assert torch.equal(batch.weights[k, 0] > 0, blind)


def test_blind_spots_drawn_once_are_reused_and_redrawn_ones_are_not():
    cube = synthetic(6, 7)
    image, valid = torch.from_numpy(cube.data), torch.from_numpy(cube.valid)
    pixels = 42
    for redraw in (False, True):
        maker = BlindSpotBatches(image, valid, batch_size=pixels, redraw=redraw, seed=1)
        first, second = maker.next(), maker.next()  # two epochs
        order1, order2 = torch.argsort(first.centres), torch.argsort(second.centres)
        same = torch.equal(first.blind[order1], second.blind[order2])
        assert same == (not redraw)


def test_loss_gradient_is_zero_at_non_blind_positions(demo):
    image, valid = torch.from_numpy(demo.data), torch.from_numpy(demo.valid)
    maker = BlindSpotBatches(image, valid, batch_size=6, seed=2)
    batch = maker.next()
    for kind in ("l1", "l2"):
        output = (batch.inputs + torch.randn_like(batch.inputs)).requires_grad_(True)
        masked_loss(output, batch, kind).backward()
        grad = output.grad.abs().sum(dim=1)  # (N, P, P)
        assert float(grad[~batch.blind].max()) == 0.0
        assert bool((grad[batch.blind] > 0).all())


def test_training_centres_are_valid_pixels_only():
    cube = synthetic(20, 30)
    cube.valid[5:9, 10:20] = False
    maker = BlindSpotBatches(torch.from_numpy(cube.data), torch.from_numpy(cube.valid), batch_size=50)
    seen = torch.cat([maker.next().centres for _ in range(20)])
    assert bool(torch.from_numpy(cube.valid).reshape(-1)[seen].all())
    assert maker.pixels == int(cube.valid.sum())


# ----------------------------------------------------------------------------- detection

@pytest.mark.parametrize("rounds,score", [(0, "mse"), (0, "rx"), (1, "mse"), (0, "mse+rx"), (1, "mse+rx")])
def test_tiled_detection_equals_whole_image(tmp_path, rounds, score):
    cube = synthetic(45, 58, bands=10)
    params = dict(TINY, score_rounds=rounds, score=score)
    model = str(tmp_path / "m.hsidm")
    whole, _ = detect(cube, params, device="cpu", seed=4, save_model=model)
    tiled, info = detect(cube, dict(params, tile_size=20), device="cpu", seed=4, model_path=model)
    assert info["model"] == model
    diff = np.abs(minmax_normalise(whole, cube.valid) - minmax_normalise(tiled, cube.valid))
    assert diff.max() < 1e-4
    assert whole.std() > 0


def test_same_seed_same_scores_and_save_load_identical(tmp_path):
    cube = synthetic(24, 33)
    model = str(tmp_path / "bs3lnet.model")
    a, info = detect(cube, TINY, device="cpu", seed=7, save_model=model)
    b, _ = detect(cube, TINY, device="cpu", seed=7)
    c, _ = detect(cube, TINY, device="cpu", seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert info["device"].startswith("cpu") and info["training"]["iterations"] == 3
    assert np.isfinite(info["training"]["final_loss"])
    loaded, _ = detect(cube, {}, device="cpu", seed=99, model_path=model)
    assert np.array_equal(a, loaded)


def test_wrong_band_count_and_non_model_file_are_refused(tmp_path):
    cube = synthetic(16, 16, bands=12)
    model = str(tmp_path / "m.model")
    detect(cube, TINY, device="cpu", save_model=model)
    with pytest.raises(HsiDetectError, match="trained on 12 bands, but the image has 9"):
        detect(synthetic(16, 16, bands=9), {}, device="cpu", model_path=model)
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\x80\x04not a model at all" * 10)
    with pytest.raises(HsiDetectError, match="is not an hsi-detect model file"):
        detect(cube, {}, device="cpu", model_path=str(junk))


def test_non_square_and_smaller_than_patch_scenes_work():
    for rows, cols in ((23, 41), (7, 11), (1, 5)):
        cube = synthetic(rows, cols, bands=6)
        score, _ = detect(cube, TINY, device="cpu")
        assert score.shape == (rows, cols) and np.isfinite(score).all()


def test_bad_parameters_are_refused():
    cube = synthetic(10, 10)
    for bad in ({"patch_size": 18}, {"window": 1}, {"ratio": 1.0}, {"iterations": 0}, {"nonsense": 1}):
        with pytest.raises(HsiDetectError):
            detect(cube, dict(TINY, **bad), device="cpu")


# ----------------------------------------------------------------------------- pipeline

def test_nodata_pixels_stay_nodata(tmp_path, demo):
    data = demo.data[:40, :50].copy()
    data[3:8, 10:30] = -1.0
    data[30, 40] = -1.0
    src = write_tif(tmp_path / "holes.tif", data, nodata=-1.0)
    out = tmp_path / "score.tif"
    summary = run_anomaly(src, str(out), params=TINY, device="cpu")
    assert summary["valid_pixels"] == 40 * 50 - 5 * 20 - 1
    score, nodata, _ = read_single_band(str(out))
    hole = data[:, :, 0] == -1.0
    assert (score[hole] == nodata).all()
    assert (score[~hole] != nodata).all()
    assert score[~hole].min() == 0.0 and score[~hole].max() == pytest.approx(1.0)


def test_cancelled_run_stops_and_leaves_no_file(tmp_path):
    cube_path = write_tif(tmp_path / "scene.tif", synthetic(30, 30).data)
    out, model = tmp_path / "score.tif", tmp_path / "m.model"
    events = []

    def on_event(event):
        events.append(event)
        if event["stage"] == "training" and event["fraction"] > 0:
            progress.cancel()

    progress = Progress(on_event, min_interval=0.0)
    with pytest.raises(Cancelled):
        run_anomaly(cube_path, str(out), binary=str(tmp_path / "bin.tif"), save_model=str(model),
                    params=dict(TINY, iterations=1000), device="cpu", progress=progress)
    steps = [e for e in events if e["stage"] == "training" and e["fraction"] > 0]
    assert len(steps) == 1  # stopped at the next check, within the next iteration
    assert os.listdir(tmp_path) == ["scene.tif"]


def test_progress_reports_training_loss(tmp_path):
    events = []
    detect(synthetic(12, 12), TINY, device="cpu", progress=Progress(events.append, min_interval=0.0))
    losses = [e["loss"] for e in events if e["stage"] == "training" and "loss" in e]
    assert len(losses) == TINY["iterations"] and all(np.isfinite(losses))


def test_cli_passes_method_parameters(tmp_path):
    from hsi_detect_engine.cli import main

    src = write_tif(tmp_path / "s.tif", synthetic(20, 25).data)
    out = tmp_path / "o.tif"
    code = main(["anomaly", src, "--output", str(out), "--iterations", "2", "--batch-size", "4", "--features", "4",
                 "--norm", "instance", "--loss", "l2", "--redraw", "no", "--scaling", "minmax", "--device", "cpu"])
    assert code == 0 and out.exists()
    assert main(["anomaly", src, "--output", str(tmp_path / "p.tif"), "--patch-size", "4"]) == 1


def test_short_training_on_the_real_demo_scene_finds_the_anomalies(demo):
    truth, _, _ = read_single_band(TRUTH)
    score, info = detect(demo, {"iterations": 12, "batch_size": 32}, device="cpu", seed=1)
    auc = accuracy_figures(score[demo.valid], truth[demo.valid] == 1)["auc"]
    assert auc > 0.85, auc
