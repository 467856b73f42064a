"""make package: a ZIP that "Install from ZIP" accepts, and that works once installed."""

import configparser
import json
import os
import subprocess
import sys
import zipfile

from conftest import DEMO, REPO, VENV_PYTHON, qgis_process_env, run_qgis_process

REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
                     "repository", "tracker", "homepage", "hasProcessingProvider", "icon", "tags", "category")


def build(folder) -> str:
    done = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "package.py"), "--output-dir", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (zip_path,) = [os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".zip")]
    return zip_path


def test_the_zip_has_one_plugin_folder_with_metadata_licence_and_engine(tmp_path):
    with zipfile.ZipFile(build(tmp_path)) as zf:
        names = zf.namelist()
        assert {n.split("/")[0] for n in names} == {"hsi_detect_plugin"}
        assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
        for needed in ("__init__.py", "metadata.txt", "LICENSE", "icon.png", "engine/pyproject.toml",
                       "engine/hsi_detect_engine/cli.py"):
            assert f"hsi_detect_plugin/{needed}" in names
        metadata = configparser.ConfigParser()
        metadata.read_string(zf.read("hsi_detect_plugin/metadata.txt").decode("utf-8"))
        general = metadata["general"]
        assert all(general.get(key, "").strip() for key in REQUIRED_METADATA)
        assert general["qgisMinimumVersion"] == "3.22" and general["hasProcessingProvider"] == "yes"
        assert f"hsi_detect_plugin/{general['icon']}" in names
        assert "classFactory" in zf.read("hsi_detect_plugin/__init__.py").decode("utf-8")


def test_the_installed_zip_runs_with_its_bundled_engine(tmp_path):
    """Unpacked where "Install from ZIP" puts it, in a fresh profile, with no repository around it:
    the interpreter comes from HSI_DETECT_PYTHON, the engine from the copy inside the plugin."""
    profile = tmp_path / "profile"
    plugins = profile / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(build(tmp_path / "dist")) as zf:
        zf.extractall(plugins)
    env = qgis_process_env(profile, HSI_DETECT_PYTHON=VENV_PYTHON)
    assert run_qgis_process(env, "plugins", "enable", "hsi_detect_plugin").returncode == 0
    out = tmp_path / "score.tif"
    done = run_qgis_process(env, "--json", "run", "hsidetect:rx", "--",
                            f"INPUT={os.path.join(DEMO, 'hydice_urban.tif')}", f"OUTPUT={out}")
    assert done.returncode == 0, done.stderr
    log = "\n".join(json.loads(done.stdout)["log"]["info"])
    assert f"from {plugins / 'hsi_detect_plugin' / 'engine' / 'hsi_detect_engine'}" in log
    assert out.exists()
