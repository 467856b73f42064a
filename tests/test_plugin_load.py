"""The plugin loads as QGIS loads it, registers the provider and its algorithms, and imports no torch."""

import re
import subprocess
import sys

import pytest

from conftest import REPO, VENV_PYTHON

ALGORITHMS = {
    "hypernet": "Hyperspectral Change Detection (HyperNet)",
    "bs3lnet": "Hyperspectral Anomaly Detection (BS3LNet)",
    "rx": "Anomaly Detection (RX)",
    "cva": "Change Detection (Change Vector Analysis)",
    "accuracy": "Detection Accuracy Assessment",
}
NETWORK_RUN = {"DEVICE", "SEED", "TRAINED_MODEL", "SAVE_MODEL"}
PARAMETERS = {
    "bs3lnet": {"INPUT", "BANDS", "OUTPUT", "OUTPUT_BINARY", "OUTPUT_OBJECTS", "FALSE_ALARM_RATE"} | NETWORK_RUN,
    "rx": {"INPUT", "BANDS", "OUTPUT", "OUTPUT_BINARY", "OUTPUT_OBJECTS", "FALSE_ALARM_RATE"},
    "hypernet": {"INPUT_T1", "INPUT_T2", "BANDS", "OUTPUT", "OUTPUT_ANOMALOUS", "OUTPUT_BINARY", "OUTPUT_OBJECTS",
                 "TRAINING_MASK"} | NETWORK_RUN,
    "cva": {"INPUT_T1", "INPUT_T2", "BANDS", "OUTPUT", "OUTPUT_ANOMALOUS", "OUTPUT_BINARY", "OUTPUT_OBJECTS"},
    "accuracy": {"INPUT", "GROUND_TRUTH", "UNLABELLED_VALUE", "OUTPUT_REPORT"},
}
HTML_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def test_importing_and_loading_the_plugin_imports_neither_torch_nor_the_engine(tmp_path):
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], '/usr/share/qgis/python/plugins']\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "import hsi_detect_plugin\n"
        "plugin = hsi_detect_plugin.classFactory(None); plugin.initProcessing()\n"
        "provider = QgsApplication.processingRegistry().providerById('hsidetect')\n"
        "assert provider is not None and len(provider.algorithms()) == 5\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'hsi_detect_engine'))\n"
        "plugin.unload(); print(bad)\n")
    done = subprocess.run([VENV_PYTHON, "-c", code, REPO], capture_output=True, text=True, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_provider_registers_every_algorithm_with_its_stable_id_and_name(hsidetect):
    assert hsidetect.name() == "Hyperspectral Detection"
    assert not hsidetect.icon().isNull()
    assert {a.name(): a.displayName() for a in hsidetect.algorithms()} == ALGORITHMS
    assert {a.id() for a in hsidetect.algorithms()} == {f"hsidetect:{n}" for n in ALGORITHMS}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_parameters_have_the_documented_names_and_a_help_text(hsidetect, name):
    algorithm = hsidetect.algorithm(name)
    names = {p.name() for p in algorithm.parameterDefinitions()}
    assert PARAMETERS[name] <= names
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in names)
    for p in algorithm.parameterDefinitions():
        assert len(p.help()) > 20, f"{name}:{p.name()} has no help text"
        assert not HTML_TAG.search(p.help())


def test_accuracy_declares_its_figures_as_numeric_outputs(hsidetect):
    outputs = {o.name(): o.type() for o in hsidetect.algorithm("accuracy").outputDefinitions()}
    for figure in ("AUC", "OA", "KAPPA", "F1", "PRECISION", "RECALL"):
        assert outputs[figure] == "outputNumber"
    assert outputs["OUTPUT_REPORT"] == "outputHtml"


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_help_is_plain_text_that_cites_the_paper_and_gives_times(hsidetect, name):
    text = hsidetect.algorithm(name).shortHelpString()
    assert not HTML_TAG.search(text)
    assert "Reference:" in text and re.search(r"(19|20)\d\d", text)
    assert "Time:" in text
    if name != "accuracy":
        for output in (d.name() for d in hsidetect.algorithm(name).destinationParameterDefinitions()):
            assert output in text, f"the help of {name} does not explain {output}"


@pytest.mark.parametrize("name, engine_list", [("bs3lnet", "BS3LNET"), ("hypernet", "HYPERNET")])
def test_network_parameters_mirror_the_engine(hsidetect, name, engine_list):
    from hsi_detect_engine import parameters

    algorithm = hsidetect.algorithm(name)
    engine = {p.name: p for p in getattr(parameters, engine_list)}
    plugin = {p.name: p for p in algorithm.METHOD_PARAMETERS}
    assert sorted(plugin) == sorted(engine)
    for key, mine in plugin.items():
        theirs = engine[key]
        assert (mine.type, mine.default, tuple(mine.choices or ())) == \
               (theirs.type, theirs.default, tuple(theirs.choices or ())), key
        definition = algorithm.parameterDefinition(key.upper())
        assert definition is not None and definition.defaultValue() == theirs.default


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_toolbox_dialog_and_the_batch_panel_build_a_widget_for_every_parameter(hsidetect, monkeypatch, name):
    from processing.gui import BatchPanel, ParametersPanel
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog

    for module in (ParametersPanel, BatchPanel):  # no main window here (pytest-qgis's stand-in lacks parts)
        monkeypatch.setattr(module, "iface", None, raising=False)

    algorithm = hsidetect.algorithm(name)
    dialog = AlgorithmDialog(algorithm.create(), False, None)
    batch = BatchAlgorithmDialog(algorithm.create())
    try:
        assert set(dialog.mainWidget().wrappers) == {p.name() for p in algorithm.parameterDefinitions()}
        assert batch.mainWidget().tblParameters.columnCount() >= len(algorithm.parameterDefinitions())
    finally:
        dialog.deleteLater()
        batch.deleteLater()
