"""QGIS 3.22 to 3.40 and QGIS 4 readiness: the plugin names no deprecated enum and triggers no
DeprecationWarning of its own under the QGIS it runs with, and imports Qt only through qgis.PyQt."""

import json
import os
import re
import subprocess

import pytest

from conftest import REPO, VENV_PYTHON

PLUGIN = os.path.join(REPO, "hsi_detect_plugin")
COMPAT = os.path.join(PLUGIN, "qgis_compat.py")
# Enum and flag spellings that QGIS 3.36+ moved into the Qgis namespace (and QGIS 4 removes).
OLD_ENUM = re.compile(
    r"\bQgs\w+\.(Flag[A-Z]\w*|Type[A-Z]\w*|Integer\b|Double\b|NoError\b|File\b|Folder\b)"
    r"|\bQgis\.(Info|Warning|Critical|Success|NoLevel)\b")
QT_BINDING = re.compile(r"^\s*(from|import)\s+(PyQt5|PyQt6|PySide2|PySide6|sip)\b", re.M)


def plugin_sources():
    for folder, dirs, files in os.walk(PLUGIN):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "engine")]
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def test_only_the_compat_module_names_qgis_enums_the_old_way():
    found = []
    for path in plugin_sources():
        if path == COMPAT:
            continue
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if OLD_ENUM.search(line.split("#")[0]):
                    found.append(f"{os.path.relpath(path, REPO)}:{number}: {line.strip()}")
    assert not found, "use hsi_detect_plugin/qgis_compat.py instead:\n" + "\n".join(found)


def test_qt_comes_only_through_qgis_pyqt():
    for path in plugin_sources():
        with open(path, encoding="utf-8") as f:
            assert not QT_BINDING.search(f.read()), f"{path} imports a Qt binding directly; use qgis.PyQt"


def test_compat_names_come_from_the_qgis_namespace_where_this_qgis_has_it(qgis_processing):
    from qgis.core import Qgis

    from hsi_detect_plugin import qgis_compat

    expected = {"PARAMETER_ADVANCED": ("ProcessingParameterFlag", "Advanced"),
                "NUMBER_INTEGER": ("ProcessingNumberParameterType", "Integer"),
                "NUMBER_DOUBLE": ("ProcessingNumberParameterType", "Double"),
                "FILE_PARAMETER_FILE": ("ProcessingFileParameterBehavior", "File"),
                "SOURCE_RASTER": ("ProcessingSourceType", "Raster"),
                "ALGORITHM_NO_THREADING": ("ProcessingAlgorithmFlag", "NoThreading"),
                "RASTER_WRITE_SUCCESS": ("RasterFileWriterResult", "Success")}
    for name, (enum, member) in expected.items():
        value = getattr(qgis_compat, name)
        if hasattr(Qgis, enum):
            assert value is getattr(getattr(Qgis, enum), member) or value == getattr(getattr(Qgis, enum), member)
        assert value is not None


def test_an_advanced_parameter_keeps_its_other_flags(qgis_processing):
    from qgis.core import QgsProcessingParameterNumber

    from hsi_detect_plugin.qgis_compat import NUMBER_INTEGER, PARAMETER_ADVANCED, PARAMETER_OPTIONAL, with_flag

    p = with_flag(QgsProcessingParameterNumber("N", "n", NUMBER_INTEGER, optional=True), PARAMETER_ADVANCED)
    assert p.flags() & PARAMETER_ADVANCED and p.flags() & PARAMETER_OPTIONAL
    assert p.dataType() == NUMBER_INTEGER


# Loads the plugin as QGIS does and builds every algorithm's parameters, recording every warning;
# prints the DeprecationWarnings whose origin is a file of the plugin.
LOAD_AND_DECLARE = r"""
import json, os, sys, warnings
plugin_dir = os.path.join(sys.argv[1], "hsi_detect_plugin")
sys.path[:0] = [sys.argv[1], "/usr/share/qgis/python/plugins"]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from qgis.core import Qgis, QgsApplication
    app = QgsApplication([], False); app.initQgis()
    import hsi_detect_plugin
    plugin = hsi_detect_plugin.classFactory(None); plugin.initProcessing()
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("hsidetect")
    names = []
    for algorithm in provider.algorithms():
        instance = registry.createAlgorithmById(algorithm.id())
        names += [p.name() for p in instance.parameterDefinitions()]
        instance.shortHelpString(); instance.flags()
    plugin.unload()
ours = [f"{os.path.relpath(w.filename, plugin_dir)}:{w.lineno}: {w.message}" for w in caught
        if issubclass(w.category, DeprecationWarning) and os.path.abspath(w.filename).startswith(plugin_dir + os.sep)]
print(json.dumps({"qgis": Qgis.QGIS_VERSION, "parameters": len(names), "deprecated": ours,
                  "all_deprecations": len([w for w in caught if issubclass(w.category, DeprecationWarning)])}))
"""


def test_loading_the_plugin_and_declaring_every_algorithm_raises_no_deprecation_warning_of_its_own(tmp_path):
    done = subprocess.run([VENV_PYTHON, "-c", LOAD_AND_DECLARE, REPO], capture_output=True, text=True, timeout=120,
                          env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["parameters"] > 40
    assert report["deprecated"] == [], f"QGIS {report['qgis']}: " + "\n".join(report["deprecated"])


@pytest.mark.parametrize("key", ["qgisMinimumVersion", "qgisMaximumVersion"])
def test_metadata_names_the_supported_qgis_versions(key):
    with open(os.path.join(REPO, "metadata.txt"), encoding="utf-8") as f:
        assert re.search(rf"^{key}=\d+\.\d+$", f.read(), re.M)
