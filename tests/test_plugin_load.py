"""The plugin loads as QGIS loads it, registers the provider and its algorithms, and imports no torch."""

import os
import re
import shutil
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
BAND_CHOICE = {"BANDS", "WAVELENGTHS", "BAD_BANDS", "MASK_CLOUDS"}
ONE_IMAGE = {"INPUT", "INPUT_FILE"} | BAND_CHOICE
TWO_DATES = {"INPUT_T1", "INPUT_T1_FILE", "INPUT_T2", "INPUT_T2_FILE"} | BAND_CHOICE
MAPS = {"OUTPUT", "OUTPUT_OBJECTS", "MIN_OBJECT_SIZE", "FALSE_ALARM_RATE"}
PARAMETERS = {
    "bs3lnet": ONE_IMAGE | MAPS | {"OUTPUT_BINARY"} | NETWORK_RUN,
    "rx": ONE_IMAGE | MAPS | {"OUTPUT_BINARY"},
    "hypernet": TWO_DATES | MAPS | {"OUTPUT_ANOMALOUS", "OUTPUT_BINARY", "TRAINING_MASK"} | NETWORK_RUN,
    "cva": TWO_DATES | MAPS | {"OUTPUT_ANOMALOUS", "OUTPUT_BINARY"},
    "accuracy": {"INPUT", "GROUND_TRUTH", "UNLABELLED_VALUE", "OUTPUT_REPORT"},
}
for _names in PARAMETERS.values():
    _names.add("MEMORY_LIMIT")
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


@pytest.mark.parametrize("name, declared", [("bs3lnet", "BS3LNET"), ("hypernet", "HYPERNET")])
def test_network_parameters_are_built_from_the_engine_declaration(hsidetect, name, declared):
    from qgis.core import QgsProcessingParameterDefinition, QgsProcessingParameterNumber

    from hsi_detect_engine import parameters

    algorithm = hsidetect.algorithm(name)
    params = getattr(parameters, declared)
    lowest = QgsProcessingParameterNumber("X", "", QgsProcessingParameterNumber.Double)
    for p in params:
        d = algorithm.parameterDefinition(p.name.upper())
        assert d is not None, p.name
        assert (d.description(), d.defaultValue()) == (p.label, p.default), p.name
        assert d.help().startswith(p.help), p.name
        if p.paper is not None:
            assert "The paper: " in d.help(), p.name
        assert bool(d.flags() & QgsProcessingParameterDefinition.FlagAdvanced) == p.advanced, p.name
        if p.choices:
            assert d.type() == "enum" and d.options() == list(p.choices) and d.usesStaticStrings(), p.name
        elif p.type is bool:
            assert d.type() == "boolean", p.name
        else:
            kind = QgsProcessingParameterNumber.Integer if p.type is int else QgsProcessingParameterNumber.Double
            assert d.type() == "number" and d.dataType() == kind, p.name
            assert d.minimum() == (lowest.minimum() if p.minimum is None else p.minimum), p.name
            assert d.maximum() == (lowest.maximum() if p.maximum is None else p.maximum), p.name
    assert algorithm.parameterDefinition("WEIGHT_DECAY").metadata()["widget_wrapper"]["decimals"] >= 8
    assert algorithm.parameterDefinition("THRESHOLD_METHOD").options() == list(parameters.THRESHOLDS)
    seed = algorithm.parameterDefinition("SEED")
    assert (seed.minimum(), seed.maximum(), seed.defaultValue()) == \
           (parameters.SEED.minimum, parameters.SEED.maximum, parameters.SEED.default)
    own = {d.name() for d in algorithm.parameterDefinitions()} - PARAMETERS[name]
    assert own - {"THRESHOLD_METHOD", "THRESHOLD_VALUE", "TOP_FRACTION", "GRID"} == {p.name.upper() for p in params}


def test_without_the_engine_source_the_provider_loads_and_a_run_says_how_to_reinstall(tmp_path):
    """The plugin folder alone (no engine/ inside or beside it): QGIS still lists every algorithm."""
    shutil.copytree(os.path.join(REPO, "hsi_detect_plugin"), tmp_path / "plugins" / "hsi_detect_plugin",
                    ignore=shutil.ignore_patterns("__pycache__", "engine"))
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], '/usr/share/qgis/python/plugins']\n"
        "from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback\n"
        "app = QgsApplication([], False); app.initQgis()\n"
        "import hsi_detect_plugin\n"
        "plugin = hsi_detect_plugin.classFactory(None); plugin.initProcessing()\n"
        "provider = QgsApplication.processingRegistry().providerById('hsidetect')\n"
        "print(sorted(a.name() for a in provider.algorithms()))\n"
        "algorithm = provider.algorithm('bs3lnet').create()\n"
        "try:\n"
        "    algorithm.processAlgorithm({}, QgsProcessingContext(), QgsProcessingFeedback())\n"
        "except QgsProcessingException as exc:\n"
        "    print(exc)\n"
        "plugin.unload()\n")
    done = subprocess.run([VENV_PYTHON, "-c", code, str(tmp_path / "plugins")], capture_output=True, text=True,
                          timeout=120, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin",
                                            "HOME": str(tmp_path), "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == str(sorted(ALGORITHMS))
    assert "engine's source is missing" in lines[-1] and "Reinstall the plugin" in lines[-1]


@pytest.mark.parametrize("name, rate", [("bs3lnet", 0.001), ("rx", 0.003), ("hypernet", 0.003), ("cva", 0.003)])
def test_the_false_alarm_rate_defaults_to_the_method_s_own(hsidetect, name, rate):
    """BS3LNet's smoothed default score has a default rate of its own (parameters.default_false_alarm_rate)."""
    from hsi_detect_engine.parameters import default_false_alarm_rate

    assert default_false_alarm_rate(name) == rate
    assert hsidetect.algorithm(name).parameterDefinition("FALSE_ALARM_RATE").defaultValue() == rate


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
        wrappers = dialog.mainWidget().wrappers
        assert set(wrappers) == {p.name() for p in algorithm.parameterDefinitions()}
        for p in algorithm.parameterDefinitions():  # the widgets hold the declared defaults (no overflow, no rounding)
            if p.type() == "number" and p.defaultValue() is not None:
                assert wrappers[p.name()].parameterValue() == pytest.approx(p.defaultValue()), p.name()
        assert batch.mainWidget().tblParameters.columnCount() >= len(algorithm.parameterDefinitions())
    finally:
        dialog.deleteLater()
        batch.deleteLater()


@pytest.mark.parametrize("name", ALGORITHMS)
def test_help_url_opens_the_readme_section_of_the_algorithm(hsidetect, name):
    alg = hsidetect.algorithm(name)
    url, anchor = alg.helpUrl().split("#")
    assert url.endswith("/README.md")
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        headings = [line.lstrip("#").strip() for line in f if line.startswith("#")]
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    assert anchor in slugs
    assert alg.displayName() in headings
