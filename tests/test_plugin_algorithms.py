"""Every algorithm through processing.run on the shipped scenes, in this QGIS process.

The engine runs for real in its child process; the networks run with tiny budgets.
"""

import os
import stat
import time

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

from conftest import DEMO, VENV_PYTHON

HYDICE = os.path.join(DEMO, "hydice_urban.tif")
HYDICE_GT = os.path.join(DEMO, "hydice_urban_gt.tif")
T1 = os.path.join(DEMO, "taizhou_2000.tif")
T2 = os.path.join(DEMO, "taizhou_2003.tif")
TAIZHOU_GT = os.path.join(DEMO, "taizhou_gt.tif")
TINY_BS3LNET = {"ITERATIONS": 3, "BATCH_SIZE": 16, "FEATURES": 8, "BLOCKS": 1, "DEVICE": "cpu"}
TINY_HYPERNET = {"EPOCHS": 2, "CROP_SIZE": 48, "HIDDEN": 16, "DEVICE": "cpu"}

gdal.UseExceptions()


class LogFeedback(QgsProcessingFeedback):
    """Feedback that keeps what the run reported."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def pushInfo(self, info):
        self.lines.append(info)
        super().pushInfo(info)

    def pushCommandInfo(self, info):
        self.lines.append(info)
        super().pushCommandInfo(info)

    def setProgressText(self, text):
        self.lines.append(text)
        super().setProgressText(text)


def run(algorithm, params, feedback=None):
    import processing

    return processing.run(f"hsidetect:{algorithm}", params, feedback=feedback or LogFeedback())


def read(path):
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    return band.ReadAsArray(), band.GetNoDataValue()


def assert_same_grid(path, reference):
    a, b = gdal.Open(path), gdal.Open(reference)
    assert (a.RasterXSize, a.RasterYSize) == (b.RasterXSize, b.RasterYSize)
    assert a.GetGeoTransform() == pytest.approx(b.GetGeoTransform())
    assert osr.SpatialReference(a.GetProjection()).IsSame(osr.SpatialReference(b.GetProjection()))


def assert_styled(path, renderer):
    qml = os.path.splitext(path)[0] + ".qml"
    with open(qml, encoding="utf-8") as f:
        assert f'type="{renderer}"' in f.read()


def truth():
    return read(HYDICE_GT)[0]


@pytest.fixture(scope="module")
def rx_score(hsidetect, tmp_path_factory):
    out = tmp_path_factory.mktemp("rx")
    return run("rx", {"INPUT": HYDICE, "OUTPUT": str(out / "score.tif"), "OUTPUT_BINARY": str(out / "binary.tif")})


def test_rx_writes_georeferenced_styled_score_and_binary_maps(rx_score):
    score, nodata = read(rx_score["OUTPUT"])
    binary, _ = read(rx_score["OUTPUT_BINARY"])
    for path in (rx_score["OUTPUT"], rx_score["OUTPUT_BINARY"]):
        assert_same_grid(path, HYDICE)
    assert_styled(rx_score["OUTPUT"], "singlebandpseudocolor")
    assert_styled(rx_score["OUTPUT_BINARY"], "paletted")
    assert score.min() == 0 and score.max() == pytest.approx(1.0) and nodata == -9999
    assert set(np.unique(binary)) == {0, 1}
    gt = truth()
    assert np.median(score[gt == 1]) > np.percentile(score[gt == 0], 95)  # the targets stand out


def test_cva_writes_all_three_change_maps(hsidetect, tmp_path):
    results = run("cva", {"INPUT_T1": T1, "INPUT_T2": T2, "OUTPUT": "TEMPORARY_OUTPUT",
                          "OUTPUT_ANOMALOUS": str(tmp_path / "acd.tif"), "OUTPUT_BINARY": str(tmp_path / "changed.tif")})
    for name in ("OUTPUT", "OUTPUT_ANOMALOUS", "OUTPUT_BINARY"):
        assert_same_grid(results[name], T1)
    magnitude, _ = read(results["OUTPUT"])
    changed, _ = read(results["OUTPUT_BINARY"])
    gt, _ = read(TAIZHOU_GT)
    assert magnitude.min() >= 0
    assert magnitude[gt == 1].mean() > 2 * magnitude[gt == 0].mean()
    assert changed[gt == 1].mean() > 0.5 > changed[gt == 0].mean()
    assert_styled(results["OUTPUT_ANOMALOUS"], "singlebandpseudocolor")


def test_accuracy_reports_figures_and_an_html_page_with_the_roc_plot(rx_score, tmp_path):
    results = run("accuracy", {"INPUT": rx_score["OUTPUT"], "GROUND_TRUTH": HYDICE_GT,
                               "OUTPUT_REPORT": str(tmp_path / "report.html")})
    assert results["AUC"] > 0.95  # global RX on HYDICE Urban
    for name in ("OA", "KAPPA", "F1", "PRECISION", "RECALL"):
        assert 0 <= results[name] <= 1
    with open(results["OUTPUT_REPORT"], encoding="utf-8") as f:
        assert "data:image/png;base64," in f.read()


def test_accuracy_leaves_the_unlabelled_value_out(hsidetect, tmp_path):
    """taizhou_gt.tif marks unlabelled pixels 255 and says so as nodata; a copy without the nodata
    flag needs UNLABELLED_VALUE=255 to give the same figures."""
    bare = str(tmp_path / "gt_without_nodata.tif")
    gdal.Translate(bare, TAIZHOU_GT, noData="none")
    change = run("cva", {"INPUT_T1": T1, "INPUT_T2": T2, "OUTPUT": str(tmp_path / "change.tif")})["OUTPUT"]

    def figures(gt, **extra):
        return run("accuracy", {"INPUT": change, "GROUND_TRUTH": gt, "OUTPUT_REPORT": "TEMPORARY_OUTPUT", **extra})

    flagged, told, unaware = figures(TAIZHOU_GT), figures(bare, UNLABELLED_VALUE=255), figures(bare)
    assert told["AUC"] == pytest.approx(flagged["AUC"]) and told["KAPPA"] == pytest.approx(flagged["KAPPA"])
    assert unaware["OA"] != pytest.approx(flagged["OA"])


def test_a_layer_that_is_not_a_plain_file_is_exported_first(hsidetect, tmp_path):
    from qgis.core import QgsRasterLayer

    cube = gdal.Open(HYDICE)
    mem = "/vsimem/hsi_detect_test/hydice_with_nodata.tif"
    copy = gdal.GetDriverByName("GTiff").CreateCopy(mem, cube)
    for b in range(1, copy.RasterCount + 1):
        band = copy.GetRasterBand(b)
        data = band.ReadAsArray()
        data[:5, :] = 65535
        band.WriteArray(data)
        band.SetNoDataValue(65535)
    copy = None
    layer = QgsRasterLayer(mem, "in memory", "gdal")
    try:
        assert layer.isValid()
        feedback = LogFeedback()
        results = run("rx", {"INPUT": layer, "BANDS": [1, 2, 3, 160], "OUTPUT": str(tmp_path / "score.tif")}, feedback)
    finally:
        del layer
        gdal.Unlink(mem)
    assert any("exported it to" in line for line in feedback.lines)
    assert any("--bands 1,2,3,160" in line for line in feedback.lines)
    assert_same_grid(results["OUTPUT"], HYDICE)
    score, nodata = read(results["OUTPUT"])
    assert (score[:5] == nodata).all() and (score[5:] != nodata).all()


def test_loaded_outputs_are_styled_and_nodata_is_transparent(hsidetect, tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsProject

    # QGIS 3.40's Processing asks iface for its layer tree view when it loads results, which
    # pytest-qgis's stand-in iface lacks; without an iface it adds them to the project, as
    # qgis_process does (QGIS 3.22's Processing never asks).
    monkeypatch.setattr("processing.gui.Postprocessing.iface", None, raising=False)
    source = str(tmp_path / "with_nodata.tif")
    gdal.Translate(source, HYDICE, bandList=[1, 20, 40, 60, 80], noData=65535)
    ds = gdal.Open(source, gdal.GA_Update)
    for b in range(1, 6):
        data = ds.GetRasterBand(b).ReadAsArray()
        data[:, :3] = 65535
        ds.GetRasterBand(b).WriteArray(data)
    ds = None
    score_path, binary_path = str(tmp_path / "score.tif"), str(tmp_path / "binary.tif")
    processing.runAndLoadResults("hsidetect:rx", {"INPUT": source, "OUTPUT": score_path, "OUTPUT_BINARY": binary_path},
                                 feedback=LogFeedback())
    project = QgsProject.instance()
    try:
        layers = {os.path.basename(layer.source()): layer for layer in project.mapLayers().values()}
        score, binary = layers["score.tif"], layers["binary.tif"]
        assert score.renderer().type() == "singlebandpseudocolor"
        shader = score.renderer().shader().rasterShaderFunction()
        values, nodata = read(score_path)
        assert (shader.minimumValue(), shader.maximumValue()) == pytest.approx(
            tuple(np.percentile(values[values != nodata], [2, 98])), rel=1e-4)
        assert binary.renderer().type() == "paletted"
        colours = {c.value: c.color for c in binary.renderer().classes()}
        assert colours[1].name() == "#e31a1c" and colours[1].alpha() == 255 and colours[0].alpha() == 0

        def alpha(layer, col, row):
            block = layer.renderer().block(1, layer.extent(), layer.width(), layer.height())
            return (block.color(row, col) >> 24) & 0xFF

        classes, _ = read(binary_path)
        background = np.argwhere(classes == 0)[0]
        assert alpha(score, 0, 10) == 0 and alpha(binary, 0, 10) == 0  # nodata
        assert alpha(score, 50, 10) == 255
        assert alpha(binary, background[1], background[0]) == 0
    finally:
        project.removeAllMapLayers()


def test_bs3lnet_trains_saves_and_reapplies_its_model(hsidetect, tmp_path):
    first = run("bs3lnet", {"INPUT": HYDICE, **TINY_BS3LNET, "OUTPUT": str(tmp_path / "score.tif"),
                            "OUTPUT_BINARY": str(tmp_path / "binary.tif"), "SAVE_MODEL": str(tmp_path / "m.safetensors")})
    assert_same_grid(first["OUTPUT"], HYDICE)
    assert_styled(first["OUTPUT"], "singlebandpseudocolor")
    assert_styled(first["OUTPUT_BINARY"], "paletted")
    score, _ = read(first["OUTPUT"])
    assert score.min() == 0 and score.max() == pytest.approx(1.0)
    assert os.path.getsize(first["SAVE_MODEL"]) > 0
    again = run("bs3lnet", {"INPUT": HYDICE, "DEVICE": "cpu", "TRAINED_MODEL": first["SAVE_MODEL"],
                            "OUTPUT": str(tmp_path / "again.tif")})
    np.testing.assert_allclose(read(again["OUTPUT"])[0], score, atol=1e-5)


def test_hypernet_writes_its_change_maps_with_a_training_mask(hsidetect, tmp_path):
    gt, _ = read(TAIZHOU_GT)
    mask = str(tmp_path / "unchanged.tif")
    gdal.Translate(mask, TAIZHOU_GT, noData="none")
    ds = gdal.Open(mask, gdal.GA_Update)
    ds.GetRasterBand(1).WriteArray((gt == 0).astype(np.uint8))
    ds = None
    feedback = LogFeedback()
    results = run("hypernet", {"INPUT_T1": T1, "INPUT_T2": T2, "TRAINING_MASK": mask, **TINY_HYPERNET,
                               "OUTPUT": str(tmp_path / "change.tif"), "OUTPUT_ANOMALOUS": str(tmp_path / "acd.tif"),
                               "OUTPUT_BINARY": str(tmp_path / "changed.tif")}, feedback)
    for name in ("OUTPUT", "OUTPUT_ANOMALOUS", "OUTPUT_BINARY"):
        assert_same_grid(results[name], T1)
    assert_styled(results["OUTPUT_BINARY"], "paletted")
    magnitude, _ = read(results["OUTPUT"])
    assert np.isfinite(magnitude).all() and magnitude.min() >= 0 and magnitude.max() > 0
    assert set(np.unique(read(results["OUTPUT_BINARY"])[0])) <= {0, 1}
    assert any(line.startswith("training") and "(loss " in line for line in feedback.lines)


# ------------------------------------------------------------------ bad parameters and failures

def assert_fails(algorithm, params, *phrases):
    with pytest.raises(QgsProcessingException) as failure:
        run(algorithm, params)
    for phrase in phrases:
        assert phrase in str(failure.value)
    return str(failure.value)


def test_band_out_of_range(hsidetect, tmp_path):
    assert_fails("rx", {"INPUT": HYDICE, "BANDS": [1, 500], "OUTPUT": str(tmp_path / "s.tif")},
                 "Band 500 is out of range", "1 to 162")
    assert os.listdir(tmp_path) == []


def test_a_typed_band_list_reaches_the_engine_unchanged(hsidetect, tmp_path):
    feedback = LogFeedback()
    run("rx", {"INPUT": HYDICE, "BANDS": " 5-7, 60", "OUTPUT": str(tmp_path / "s.tif")}, feedback)
    assert any("--bands '5-7, 60'" in line for line in feedback.lines)
    assert_fails("rx", {"INPUT": HYDICE, "BANDS": "1-999999999", "OUTPUT": str(tmp_path / "t.tif")},
                 "Band 999999999 is out of range")
    assert_fails("rx", {"INPUT": HYDICE, "BANDS": "5,,x", "OUTPUT": str(tmp_path / "t.tif")},
                 "'x' is not a band number")


def test_a_failed_run_keeps_the_earlier_output_and_its_style(hsidetect, tmp_path):
    """Issue 11, case 1: the plugin deleted the earlier OUTPUT and its .qml when a run failed."""
    earlier = run("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "s.tif")})["OUTPUT"]
    before = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    assert set(before) == {"s.tif", "s.qml"} and earlier == str(tmp_path / "s.tif")
    assert_fails("rx", {"INPUT": HYDICE, "THRESHOLD_METHOD": "value", "OUTPUT": str(tmp_path / "s.tif"),
                        "OUTPUT_BINARY": str(tmp_path / "b.tif")}, "needs a threshold value")
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == before
def test_a_value_the_engine_refuses_reaches_qgis_as_the_engine_sentence(hsidetect, tmp_path):
    """BETA1 1 is inside the QGIS bounds [0, 1]; the engine's declaration refuses 1 itself."""
    assert_fails("bs3lnet", dict(TINY_BS3LNET, INPUT=HYDICE, BETA1=1, OUTPUT=str(tmp_path / "s.tif")),
                 "BS3LNet parameter beta1 must be at least 0 and below 1 (got 1.0).")
    assert os.listdir(tmp_path) == []


def test_dates_with_different_band_counts(hsidetect, tmp_path):
    assert_fails("cva", {"INPUT_T1": T1, "INPUT_T2": HYDICE, "OUTPUT": str(tmp_path / "c.tif")},
                 "different band counts")
    assert os.listdir(tmp_path) == []


def test_a_file_that_is_not_a_model(hsidetect, tmp_path):
    fake = tmp_path / "model.safetensors"
    fake.write_text("these are not weights")
    assert_fails("bs3lnet", {"INPUT": HYDICE, "TRAINED_MODEL": str(fake), "OUTPUT": str(tmp_path / "s.tif")},
                 "is not an hsi-detect model file")
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors"]


def test_no_engine_interpreter(hsidetect, tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_DETECT_PYTHON", str(tmp_path / "nowhere" / "python"))
    assert_fails("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "s.tif")},
                 "does not exist", "environment variable HSI_DETECT_PYTHON", "pip install")
    monkeypatch.setenv("HSI_DETECT_PYTHON", "/bin/false")
    assert_fails("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "s.tif")},
                 "/bin/false (from environment variable HSI_DETECT_PYTHON) is not a working Python interpreter")
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """A real Python without numpy, GDAL or torch."""
    import subprocess

    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    return str(venv / "bin" / "python")


def test_an_interpreter_without_the_engine_requirements(hsidetect, bare_python, tmp_path, monkeypatch):
    monkeypatch.setenv("HSI_DETECT_PYTHON", bare_python)
    assert_fails("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "s.tif")}, "cannot import", "numpy", "pip install")
    assert not os.path.exists(tmp_path / "s.tif")


def test_another_python_runs_the_engine_from_source_and_networks_need_torch(hsidetect, tmp_path, monkeypatch):
    """Debian's /usr/bin/python3 has numpy and GDAL but neither torch nor an installed engine."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("HSI_DETECT_PYTHON", "python3")  # a command name, looked up on PATH
    feedback = LogFeedback()
    results = run("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "s.tif")}, feedback)
    assert_same_grid(results["OUTPUT"], HYDICE)
    assert any(line.endswith("(/usr/bin/python3)") for line in feedback.lines)
    assert_fails("bs3lnet", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "b.tif")},
                 "/usr/bin/python3", "cannot import", "No module named 'torch'")
    assert not os.path.exists(tmp_path / "b.tif")


def test_the_interpreter_setting_in_processing_options_is_used(hsidetect, bare_python, tmp_path, monkeypatch):
    from processing.core.ProcessingConfig import ProcessingConfig

    monkeypatch.delenv("HSI_DETECT_PYTHON", raising=False)
    ProcessingConfig.setSettingValue("HSI_DETECT_PYTHON", bare_python)
    try:
        assert_fails("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "s.tif")}, bare_python, "Processing options")
    finally:
        ProcessingConfig.setSettingValue("HSI_DETECT_PYTHON", "")
    assert run("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "s.tif")})["OUTPUT"]  # the checkout's .venv again


def test_an_engine_killed_like_by_the_oom_killer_gives_a_processing_error(hsidetect, tmp_path, monkeypatch):
    wrapper = tmp_path / "python"
    wrapper.write_text(
        "#!/bin/sh\n# the real interpreter; an engine run is killed after a second, as the kernel's OOM killer does\n"
        'case "$1 $2" in "-m hsi_detect_engine.cli")\n'
        f'  exec 3<&0; "{VENV_PYTHON}" "$@" <&3 3<&- & pid=$!; sleep 1; kill -9 $pid; wait $pid; exit $?;;\nesac\n'
        f'exec "{VENV_PYTHON}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HSI_DETECT_PYTHON", str(wrapper))
    out = tmp_path / "out"
    out.mkdir()
    assert_fails("hypernet", {"INPUT_T1": T1, "INPUT_T2": T2, "EPOCHS": 500, "DEVICE": "cpu",
                              "OUTPUT": str(out / "c.tif"), "OUTPUT_BINARY": str(out / "b.tif")},
                 "killed (signal 9)", "out of memory")
    assert os.listdir(out) == []


def test_cancel_stops_the_run_quickly_and_leaves_no_file(hsidetect, tmp_path):
    class CancelWhenTraining(LogFeedback):
        cancelled_at = None

        def setProgressText(self, text):
            super().setProgressText(text)
            if text.startswith("training") and self.cancelled_at is None:
                self.cancelled_at = time.monotonic()
                self.cancel()

    feedback = CancelWhenTraining()
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run("hypernet", {"INPUT_T1": T1, "INPUT_T2": T2, "EPOCHS": 5000, "CROP_SIZE": 64, "DEVICE": "cpu",
                         "OUTPUT": str(tmp_path / "c.tif"), "OUTPUT_ANOMALOUS": str(tmp_path / "a.tif"),
                         "OUTPUT_BINARY": str(tmp_path / "b.tif"), "SAVE_MODEL": str(tmp_path / "m.safetensors")},
            feedback)
    assert feedback.cancelled_at is not None
    assert time.monotonic() - feedback.cancelled_at < 2.0
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ the Graphical Modeler

def test_a_saved_hypernet_to_accuracy_model_runs_headless(hsidetect, tmp_path):
    import processing
    from qgis.core import (QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource as Source, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterRasterLayer)

    model = QgsProcessingModelAlgorithm("HyperNet and its accuracy", "hsi-detect tests")
    for name in ("T1", "T2", "TRUTH"):
        model.addModelParameter(QgsProcessingParameterRasterLayer(name, name), QgsProcessingModelParameter(name))
    hypernet = QgsProcessingModelChildAlgorithm("hsidetect:hypernet")
    hypernet.setChildId("hypernet")
    hypernet.addParameterSources("INPUT_T1", [Source.fromModelParameter("T1")])
    hypernet.addParameterSources("INPUT_T2", [Source.fromModelParameter("T2")])
    for name, value in TINY_HYPERNET.items():
        hypernet.addParameterSources(name, [Source.fromStaticValue(value)])
    accuracy = QgsProcessingModelChildAlgorithm("hsidetect:accuracy")
    accuracy.setChildId("accuracy")
    accuracy.addParameterSources("INPUT", [Source.fromChildOutput("hypernet", "OUTPUT")])
    accuracy.addParameterSources("GROUND_TRUTH", [Source.fromModelParameter("TRUTH")])
    report = QgsProcessingModelOutput("report", "Accuracy report")
    report.setChildId("accuracy")
    report.setChildOutputName("OUTPUT_REPORT")
    accuracy.setModelOutputs({"report": report})
    model.addChildAlgorithm(hypernet)
    model.addChildAlgorithm(accuracy)
    path = str(tmp_path / "hypernet_accuracy.model3")
    assert model.toFile(path)

    loaded = QgsProcessingModelAlgorithm()
    assert loaded.fromFile(path)
    context = QgsProcessingContext()
    # The model's output parameter: "accuracy:report" up to QGIS 3.3x, "accuracy_report" in 3.40.
    [report_parameter] = [p.name() for p in loaded.destinationParameterDefinitions()]
    results = processing.run(loaded, {"T1": T1, "T2": T2, "TRUTH": TAIZHOU_GT,
                                      report_parameter: str(tmp_path / "report.html")},
                             feedback=LogFeedback(), context=context)
    with open(results[report_parameter], encoding="utf-8") as f:
        assert "AUC" in f.read()
    figures = results["CHILD_RESULTS"]["accuracy"]
    assert -1 <= figures["KAPPA"] <= 1 and 0 <= figures["AUC"] <= 1


def test_memory_limit_reaches_the_engine(hsidetect, tmp_path):
    """MEMORY_LIMIT: a tiny one streams RX (the log says so) to the same map; nonsense is refused."""
    outputs = {}
    for name, limit in (("whole", ""), ("streamed", "12MB")):
        feedback = LogFeedback()
        outputs[name] = run("rx", {"INPUT": HYDICE, "MEMORY_LIMIT": limit, "OUTPUT": str(tmp_path / f"{name}.tif")},
                            feedback)["OUTPUT"]
        assert any("streaming RX" in line for line in feedback.lines) == (name == "streamed")
    assert np.abs(read(outputs["whole"])[0] - read(outputs["streamed"])[0]).max() <= 1e-6
    assert_fails("rx", {"INPUT": HYDICE, "MEMORY_LIMIT": "lots", "OUTPUT": str(tmp_path / "s.tif")}, "is not a size")
