"""What a first run gives a QGIS user: a binary map and the detected objects without asking, layer
names that say the method, the objects layer styled (outline, labels by rank) from the Toolbox
and from qgis_process, and a dialog whose options do not share the outputs' names."""

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from conftest import DEMO, run_qgis_process
from test_plugin_algorithms import HYDICE, LogFeedback, read, run

gdal.UseExceptions()


def descriptions(algorithm):
    return {p.name(): p.description() for p in algorithm.parameterDefinitions()}


def test_result_layers_name_their_method_and_options_do_not_share_output_names(hsidetect):
    names = {a: descriptions(hsidetect.algorithm(a)) for a in ("bs3lnet", "rx", "hypernet", "cva")}
    assert names["bs3lnet"]["OUTPUT"] == "Anomaly score (BS3LNet)" and names["rx"]["OUTPUT"] == "Anomaly score (RX)"
    assert names["rx"]["OUTPUT_OBJECTS"] == "Detected objects (RX)"
    assert names["hypernet"]["OUTPUT"] == "Change magnitude (HyperNet)"
    assert names["cva"]["OUTPUT_OBJECTS"] == "Changed regions (CVA)"
    assert names["bs3lnet"]["SCORE"] == "Score formula"
    assert names["hypernet"]["SCORE"] == "Change magnitude formula"
    for algorithm in names.values():
        outputs = {v for k, v in algorithm.items() if k.startswith("OUTPUT")}
        options = {v for k, v in algorithm.items() if not k.startswith("OUTPUT")}
        assert not outputs & options


def test_maps_are_created_by_default_and_the_thresholds_fit_each_kind(hsidetect):
    for name in ("bs3lnet", "rx", "hypernet", "cva"):
        algorithm = hsidetect.algorithm(name)
        for output in ("OUTPUT_BINARY", "OUTPUT_OBJECTS") + (("OUTPUT_ANOMALOUS",) if name in ("hypernet", "cva") else ()):
            assert algorithm.parameterDefinition(output).createByDefault(), (name, output)
        default = algorithm.parameterDefinition("THRESHOLD_METHOD").defaultValue()
        assert default == ("hysteresis" if name in ("bs3lnet", "rx") else "otsu")
    device = hsidetect.algorithm("bs3lnet").parameterDefinition("DEVICE")
    assert device.metadata()["widget_wrapper"]["value_hints"][:3] == ["auto", "cpu", "cuda"]


def test_algorithms_show_the_provider_icon(hsidetect):
    for algorithm in hsidetect.algorithms():
        assert algorithm.svgIconPath() == hsidetect.svgIconPath()
        assert not algorithm.icon().isNull()


def test_progress_text_names_the_stage_once():
    from hsi_detect_plugin.engine_runner import _with_stage

    assert _with_stage("training", "training: 3/10 iterations") == "training: 3/10 iterations"
    assert _with_stage("detecting", "RX") == "detecting: RX"
    assert _with_stage("writing", "") == "writing"


def test_a_run_without_output_names_writes_the_binary_map_and_the_objects(hsidetect, tmp_path):
    from qgis.core import QgsVectorLayer

    results = run("rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "score.tif")})
    binary, objects = results["OUTPUT_BINARY"], results["OUTPUT_OBJECTS"]
    assert binary and os.path.exists(binary) and objects.endswith(".gpkg") and os.path.exists(objects)
    classes, _ = read(binary)
    layer = QgsVectorLayer(objects, "objects", "ogr")
    assert layer.isValid() and layer.featureCount() > 0
    assert sum(f["pixels"] for f in layer.getFeatures()) == int((classes == 1).sum())
    del layer


def test_the_maps_made_by_default_can_still_be_skipped(hsidetect, tmp_path):
    results = run("cva", {"INPUT_T1": os.path.join(DEMO, "taizhou_2000.tif"), "INPUT_T2": os.path.join(DEMO, "taizhou_2003.tif"),
                          "OUTPUT": str(tmp_path / "c.tif"), "OUTPUT_ANOMALOUS": None, "OUTPUT_BINARY": None,
                          "OUTPUT_OBJECTS": None})
    assert results["OUTPUT"] == str(tmp_path / "c.tif")
    assert results["OUTPUT_ANOMALOUS"] is None and results["OUTPUT_BINARY"] is None and results["OUTPUT_OBJECTS"] is None
    assert sorted(os.listdir(tmp_path)) == ["c.qml", "c.tif"]


def assert_objects_style(layer):
    assert layer.isValid() and layer.featureCount() > 0
    assert layer.renderer().type() == "singleSymbol"
    fill = layer.renderer().symbol().symbolLayer(0)
    assert fill.brushStyle() == 0 and fill.strokeColor().name() == "#e31a1c"  # Qt.NoBrush, red outline
    assert layer.labelsEnabled() and layer.labeling().settings().fieldName == "rank"


def test_objects_layer_loads_styled_from_the_toolbox(hsidetect, tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsProject

    # As in test_loaded_outputs_are_styled_and_nodata_is_transparent: QGIS 3.40's Processing asks
    # iface for a layer tree view that pytest-qgis's stand-in lacks; without iface it loads into
    # the project.
    monkeypatch.setattr("processing.gui.Postprocessing.iface", None, raising=False)
    processing.runAndLoadResults("hsidetect:rx", {"INPUT": HYDICE, "OUTPUT": str(tmp_path / "score.tif"),
                                                  "OUTPUT_BINARY": "TEMPORARY_OUTPUT",
                                                  "OUTPUT_OBJECTS": str(tmp_path / "objects.gpkg")},
                                 feedback=LogFeedback())
    project = QgsProject.instance()
    try:
        layers = {layer.name(): layer for layer in project.mapLayers().values()}
        assert {"Anomaly score (RX)", "Binary anomaly map (RX)", "Detected objects (RX)"} <= set(layers)
        assert_objects_style(layers["Detected objects (RX)"])
        score = layers["Anomaly score (RX)"]
        values, nodata = read(str(tmp_path / "score.tif"))
        shader = score.renderer().shader().rasterShaderFunction()
        assert (shader.minimumValue(), shader.maximumValue()) == pytest.approx(
            tuple(np.percentile(values[values != nodata], [2, 98])), rel=1e-4)
    finally:
        project.removeAllMapLayers()


def test_objects_written_by_qgis_process_open_styled(qgis_process_profile, tmp_path):
    from qgis.core import QgsVectorLayer

    _, env = qgis_process_profile
    objects = tmp_path / "objects.gpkg"
    done = run_qgis_process(env, "--json", "run", "hsidetect:cva", "--",
                            f"INPUT_T1={os.path.join(DEMO, 'taizhou_2000.tif')}",
                            f"INPUT_T2={os.path.join(DEMO, 'taizhou_2003.tif')}", f"OUTPUT={tmp_path / 'c.tif'}",
                            f"OUTPUT_OBJECTS={objects}", "MIN_OBJECT_SIZE=4")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["results"]["OUTPUT_OBJECTS"] == str(objects)
    # made by default (in qgis_process's temporary folder, which it removes when it exits)
    assert answer["results"]["OUTPUT_BINARY"].endswith(".tif") and answer["results"]["OUTPUT_ANOMALOUS"].endswith(".tif")
    layer = QgsVectorLayer(str(objects), "changed", "ogr")
    assert_objects_style(layer)
    assert min(f["pixels"] for f in layer.getFeatures()) >= 4
    assert "mean_change" in layer.fields().names()
    del layer
