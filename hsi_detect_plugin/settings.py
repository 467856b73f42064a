"""Where the engine comes from: the Python interpreter that runs it and its source folder.

The engine runs in a child process started with an interpreter that is a setting of this
provider (Processing > Options > Providers > Hyperspectral Detection). The environment
variable HSI_DETECT_PYTHON overrides the setting, for batch runs with qgis_process. In a
development checkout the default is the repository's .venv that `make install` builds.
The engine's source goes on the child's PYTHONPATH: the copy bundled inside the plugin
ZIP, or the repository's engine/ folder in a checkout. So any Python with numpy, GDAL
and torch can run it; QGIS's own Python never imports it.
"""

import os
import shutil

from processing.core.ProcessingConfig import ProcessingConfig, Setting

# realpath: in a development set-up the plugin folder is often a symlink in the profile.
PLUGIN_DIR = os.path.dirname(os.path.realpath(__file__))
PYTHON_SETTING = "HSI_DETECT_PYTHON"
PYTHON_ENV_VAR = "HSI_DETECT_PYTHON"


def checkout_python() -> str:
    """The .venv interpreter of the repository around the plugin folder, or ''."""
    venv = os.path.join(os.path.dirname(PLUGIN_DIR), ".venv")
    for candidate in (os.path.join(venv, "bin", "python"), os.path.join(venv, "Scripts", "python.exe")):
        if os.path.isfile(candidate):
            return candidate
    return ""


def engine_source_dir() -> str:
    """The folder that holds the hsi_detect_engine package, or '' when there is none."""
    for folder in (os.path.join(PLUGIN_DIR, "engine"), os.path.join(os.path.dirname(PLUGIN_DIR), "engine")):
        if os.path.isfile(os.path.join(folder, "hsi_detect_engine", "cli.py")):
            return folder
    return ""


def configured_python() -> tuple:
    """(interpreter, where that choice came from); the interpreter is '' when none is set."""
    from_env = os.environ.get(PYTHON_ENV_VAR, "").strip()
    if from_env:
        return _on_path(from_env), f"environment variable {PYTHON_ENV_VAR}"
    from_options = (ProcessingConfig.getSetting(PYTHON_SETTING) or "").strip()
    if from_options:
        return _on_path(from_options), "Processing options"
    return checkout_python(), "the development checkout's .venv"


def _on_path(python: str) -> str:
    """A bare command name such as python3 is looked up on PATH."""
    if os.path.dirname(python):
        return python
    return shutil.which(python) or python


def register(provider_name: str, icon):
    """Add the interpreter setting to Processing options."""
    ProcessingConfig.settingIcons[provider_name] = icon
    ProcessingConfig.addSetting(Setting(
        provider_name, PYTHON_SETTING,
        "Python interpreter for the engine (needs numpy, GDAL and torch; HSI_DETECT_PYTHON overrides)",
        checkout_python(), valuetype=Setting.FILE))
    ProcessingConfig.readSettings()


def unregister():
    ProcessingConfig.removeSetting(PYTHON_SETTING)
