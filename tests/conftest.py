# ---------------------------------------------------------------------------------------------
# QGIS plugin fixtures (tests/test_plugin_*.py). Engine tests need none of these.
# ---------------------------------------------------------------------------------------------
import os
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "data", "demo")
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")


def find_qgis_process() -> str:
    """$QGIS_PROCESS, else Debian's qgis_process.bin (its qgis_process wrapper is broken on Debian 12),
    else qgis_process on PATH."""
    return (os.environ.get("QGIS_PROCESS") or shutil.which("qgis_process.bin")
            or shutil.which("qgis_process") or "/usr/bin/qgis_process.bin")


QGIS_PROCESS = find_qgis_process()

if REPO not in sys.path:
    sys.path.insert(0, REPO)  # the plugin package, as QGIS_PLUGINPATH=REPO would find it


@pytest.fixture(scope="session")
def hsidetect(qgis_processing):
    """QGIS Processing with the plugin loaded as QGIS loads it (classFactory, initProcessing)."""
    from qgis.core import QgsApplication

    import hsi_detect_plugin

    plugin = hsi_detect_plugin.classFactory(None)
    plugin.initProcessing()
    yield QgsApplication.processingRegistry().providerById("hsidetect")
    plugin.unload()


def qgis_process_env(profile, **extra) -> dict:
    """Environment for qgis_process.bin with a throw-away profile (never the user's own)."""
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(profile), HOME=str(profile),
               TMPDIR=str(profile / "tmp"), QT_QPA_PLATFORM="offscreen",
               PATH=os.path.dirname(VENV_PYTHON) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("HSI_DETECT_PYTHON", None)
    env.update(extra)
    (profile / "tmp").mkdir(exist_ok=True)
    return env


def run_qgis_process(env: dict, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def qgis_process_profile(tmp_path_factory):
    """A temporary profile in which the repository's plugin is enabled: (profile, env)."""
    profile = tmp_path_factory.mktemp("qgis_profile")
    env = qgis_process_env(profile, QGIS_PLUGINPATH=REPO)
    done = run_qgis_process(env, "plugins", "enable", "hsi_detect_plugin")
    assert done.returncode == 0, done.stderr
    return profile, env


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of small tensors: a second thread only adds contention on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
