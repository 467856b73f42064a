"""The memory limit and the streamed classical methods: the streamed path, forced by a tiny
--memory-limit on the real demo scenes, gives the in-memory path's outputs; a scene several
times the limit runs within it; no scratch file outlives a run."""

import os
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal

from hsi_detect_engine.accuracy.evaluate import evaluate
from hsi_detect_engine.anomaly import run_anomaly
from hsi_detect_engine.change import run_change
from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.memory import default_memory_limit, memory_limit, parse_memory_size, plan_windows
from measure import StopAt, peak_rss_mb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "data", "demo")
HYDICE = os.path.join(DEMO, "hydice_urban.tif")
T1, T2, TRUTH = (os.path.join(DEMO, f) for f in ("taizhou_2000.tif", "taizhou_2003.tif", "taizhou_gt.tif"))
ROOMY = "4GB"
SCORE_TOLERANCE = 1e-6  # streamed and in-memory scores (0..1, or the raw magnitude relative to its range)
THRESHOLDS = [("otsu", {}), ("kmeans", {}), ("min-error", {}), ("value", {"threshold_value": 0.3}),
              ("hysteresis", {}), ("fraction", {"top_fraction": 0.02})]


def band(path):
    ds = gdal.Open(path)
    return ds.GetRasterBand(1).ReadAsArray().astype(np.float64)


def assert_same_binary(a_path, b_path, score, threshold, tolerance):
    """Identical classes, except where the score lies within the tolerance of the threshold (a tie)."""
    a, b = band(a_path), band(b_path)
    differ = a != b
    assert not differ.any() or np.all(np.abs(score[differ] - threshold) <= tolerance)


def test_memory_sizes_parse_and_nonsense_is_refused():
    assert parse_memory_size("4GB") == 4 << 30
    assert parse_memory_size("512MB") == 512 << 20
    assert parse_memory_size("2G") == 2 << 30
    assert parse_memory_size(" 1.5 GiB ") == 3 << 29
    assert parse_memory_size("1048576") == 1 << 20
    # the default is a share of the memory available at the call, which other processes move a little
    empty, none, default = memory_limit(""), memory_limit(None), default_memory_limit()
    assert default > 0 and empty == pytest.approx(default, rel=0.05) and none == pytest.approx(default, rel=0.05)
    assert default <= 2 << 30  # at most 2 GB: streaming is as fast on the CPU
    for bad in ("lots", "4 GBs", "-1GB", "1KB", ""):
        with pytest.raises(HsiDetectError) as err:
            parse_memory_size(bad)
        assert str(err.value).count(". ") <= 1 and "memory limit" in str(err.value)
    cli = subprocess.run([sys.executable, "-m", "hsi_detect_engine.cli", "anomaly", HYDICE, "-o", "x.tif",
                          "--method", "rx", "--memory-limit", "lots"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "engine")))
    assert cli.returncode == 2 and "is not a size" in cli.stderr and "Traceback" not in cli.stderr


@pytest.mark.parametrize("height, width, budget, block, first", [
    (1000, 1000, 300 << 20, (256, 256), (256, 1000)),  # whole block rows fit: strips of 256 rows
    (1000, 1000, 150 << 20, (256, 256), (256, 512)),  # they do not: a block row in windows of two block columns
    (1000, 1000, 64 << 20, (256, 256), (256, 256)),  # one block column
    (1000, 1000, 4 << 20, (256, 256), (16, 256)),  # not even one block: windows down one block column at a time
    (80, 100, 1 << 20, (256, 256), (10, 100)),  # one block larger than the image
    (300, 70, 3 << 20, (70, 1), (44, 70)),  # a striped file
])
def test_windows_cover_the_image_once_within_the_budget(height, width, budget, block, first):
    per_pixel = 1000.0
    cover = np.zeros((height, width), dtype=int)
    plan = plan_windows(height, width, per_pixel, budget, block)
    assert plan[0][2:] == first
    for r, c, h, w in plan:
        cover[r:r + h, c:c + w] += 1
        assert h * w * per_pixel <= budget or h == 1
        assert c % block[0] == 0 and (w % block[0] == 0 or c + w == width)  # whole block columns
        assert w == width or r // block[1] == (r + h - 1) // block[1]  # narrower windows stay in one block row
    assert (cover == 1).all()


@pytest.mark.parametrize("scene, limit, thresholds", [
    (HYDICE, "12MB", THRESHOLDS[:1] + THRESHOLDS[-1:]),  # 80 x 100 x 162: its one 256-pixel tile is 21 MB
    (T1, "2MB", THRESHOLDS),
])
def test_rx_streamed_equals_in_memory(tmp_path, scene, limit, thresholds):
    for method, extra in thresholds:
        out = {}
        for name, lim in (("memory", ROOMY), ("streamed", limit)):
            score, binary = str(tmp_path / f"{name}-{method}.tif"), str(tmp_path / f"{name}-{method}-map.tif")
            out[name] = run_anomaly(scene, score, binary=binary, method="rx", threshold=method, memory_limit=lim,
                                    **extra)
            out[name]["paths"] = (score, binary)
        assert out["streamed"].get("streamed") and not out["memory"].get("streamed")
        a, b = band(out["memory"]["paths"][0]), band(out["streamed"]["paths"][0])
        assert np.max(np.abs(a - b)) <= SCORE_TOLERANCE
        assert abs(out["memory"]["threshold"] - out["streamed"]["threshold"]) <= SCORE_TOLERANCE
        assert_same_binary(out["memory"]["paths"][1], out["streamed"]["paths"][1], a, out["memory"]["threshold"],
                           SCORE_TOLERANCE)
        assert out["memory"]["valid_pixels"] == out["streamed"]["valid_pixels"]
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no scratch or temporary left


@pytest.mark.parametrize("method, extra", THRESHOLDS)
def test_cva_streamed_equals_in_memory(tmp_path, method, extra):
    runs = {}
    for name, lim in (("memory", ROOMY), ("streamed", "4MB")):
        paths = [str(tmp_path / f"{name}-{k}.tif") for k in ("change", "acd", "map")]
        if method == "value":
            extra = {"threshold_value": 5.0}
        runs[name] = run_change(T1, T2, paths[0], anomalous=paths[1], binary=paths[2], method="cva",
                                threshold=method, memory_limit=lim, **extra), paths
    (mem, mp), (st, sp) = runs["memory"], runs["streamed"]
    assert st.get("streamed") and not mem.get("streamed")
    for a_path, b_path in zip(mp[:2], sp[:2]):
        a, b = band(a_path), band(b_path)
        assert np.max(np.abs(a - b)) <= SCORE_TOLERANCE * np.ptp(a[a != -9999])
    magnitude = band(mp[0])
    assert abs(mem["threshold"] - st["threshold"]) <= SCORE_TOLERANCE * np.ptp(magnitude[magnitude != -9999])
    assert_same_binary(mp[2], sp[2], magnitude, mem["threshold"], 1e-5)
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_cva_streamed_resamples_date_two_window_by_window(tmp_path):
    """Date 2 on another grid (shifted by half a pixel) is warped through a VRT as it is read."""
    ds = gdal.Open(T2)
    gt = list(ds.GetGeoTransform())
    gt[0] += gt[1] / 2
    shifted = str(tmp_path / "t2_shifted.tif")
    gdal.Translate(shifted, ds, outputSRS=ds.GetProjection(), outputBounds=None,
                   options=gdal.TranslateOptions(creationOptions=["TILED=YES"]))
    out = gdal.Open(shifted, gdal.GA_Update)
    out.SetGeoTransform(gt)
    out = None
    runs = {lim: run_change(T1, shifted, str(tmp_path / f"c{lim}.tif"), method="cva", memory_limit=lim)
            for lim in (ROOMY, "4MB")}
    assert runs[ROOMY]["resampled_t2"] and runs["4MB"]["resampled_t2"] and runs["4MB"]["streamed"]
    a, b = band(str(tmp_path / f"c{ROOMY}.tif")), band(str(tmp_path / "c4MB.tif"))
    assert np.array_equal(a == -9999, b == -9999)
    assert np.max(np.abs(a - b)) <= SCORE_TOLERANCE * np.ptp(a[a != -9999])
    assert not [n for n in gdal.ReadDir("/vsimem/") or [] if n.endswith(".vrt")]  # the warped VRT is gone


def test_evaluate_streamed_matches_the_exact_figures(tmp_path):
    change, binary = str(tmp_path / "change.tif"), str(tmp_path / "map.tif")
    run_change(T1, T2, change, binary=binary, method="cva", memory_limit=ROOMY)
    for path in (change, binary):
        exact = evaluate(path, TRUTH, memory_limit=ROOMY)
        report = str(tmp_path / "report.html")
        streamed = evaluate(path, TRUTH, memory_limit="2MB", report=report)
        assert "auc_tolerance" in streamed and "auc_tolerance" not in exact
        assert abs(streamed["auc"] - exact["auc"]) <= streamed["auc_tolerance"] + 1e-12
        assert streamed["auc_tolerance"] < 1e-4
        for key in ("oa", "kappa", "f1", "precision", "recall", "threshold"):
            assert streamed[key] == pytest.approx(exact[key], rel=1e-12, abs=1e-12), key
        for key in ("confusion", "labelled_pixels", "positive_pixels", "binary_input", "unlabelled_value"):
            assert streamed[key] == exact[key], key
        assert os.path.getsize(report) > 1000
    assert binary and exact["binary_input"] and streamed["auc_tolerance"] == 0.0


@pytest.mark.parametrize("how", ["cancel", "failure"])
def test_no_scratch_file_after_a_cancelled_or_failed_streamed_run(tmp_path, how):
    """Stopped in the last pass, when the scratch rasters and the first outputs exist."""
    stop = StopAt(tmp_path, how, lambda e: e.get("stage") == "writing")
    with pytest.raises(stop.expected):
        run_change(T1, T2, str(tmp_path / "c.tif"), anomalous=str(tmp_path / "a.tif"),
                   binary=str(tmp_path / "b.tif"), method="cva", memory_limit="4MB", progress=stop.progress)
    assert any(".partial" in n for n in stop.seen[0])  # the run had written its scratch and temporaries
    assert os.listdir(tmp_path) == []
    stop = StopAt(tmp_path, how, lambda e: e.get("stage") == "writing")
    with pytest.raises(stop.expected):
        run_anomaly(T1, str(tmp_path / "s.tif"), binary=str(tmp_path / "m.tif"), method="rx", memory_limit="2MB",
                    progress=stop.progress)
    assert any("raw" in n for n in stop.seen[0])
    assert os.listdir(tmp_path) == []


def _synthetic_scene(path, rows=1500, cols=1500, bands=64):
    """A tiled int16 GeoTIFF (rows x cols x bands; 288 MB as int16 at the default size) written block row by block row."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal.GDT_Int16,
                                              ["TILED=YES", "INTERLEAVE=PIXEL"])
    ds.SetGeoTransform((500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0))
    rng = np.random.default_rng(0)
    base = rng.normal(1000, 200, size=(bands,))
    for r in range(0, rows, 256):
        n = min(256, rows - r)
        block = (base[:, None, None] + rng.normal(0, 50, size=(bands, n, cols))).astype(np.int16)
        ds.WriteRaster(0, r, cols, n, block.tobytes(), buf_type=gdal.GDT_Int16)
    ds = None
    return str(path)




def test_streamed_rx_stays_within_the_memory_limit(tmp_path):
    """A 1500 x 1500 x 64 scene (576 MB as float32; in memory RX takes about 1.2 GB) with a 64 MB
    limit: the child's peak is at most the limit plus the fixed overhead, measured as the peak of
    the same command on the small demo scene (Python, numpy, GDAL, torch and the engine: about 320 MB)."""
    scene = _synthetic_scene(tmp_path / "big.tif")
    baseline = peak_rss_mb(["anomaly", HYDICE, "--method", "rx", "-o", str(tmp_path / "small.tif")])
    peak = peak_rss_mb(["anomaly", scene, "--method", "rx", "-o", str(tmp_path / "score.tif"),
                            "--binary", str(tmp_path / "map.tif"), "--memory-limit", "64MB"])
    assert peak <= baseline + 64, f"peak {peak:.0f} MB, overhead {baseline:.0f} MB"
    assert sorted(os.listdir(tmp_path)) == ["big.tif", "map.qml", "map.tif", "score.qml", "score.tif", "small.qml",
                                            "small.tif"]
