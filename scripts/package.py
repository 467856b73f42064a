"""Build the plugin ZIP for QGIS's "Install from ZIP" (make package).

The ZIP holds one folder, hsi_detect_plugin/: the plugin's files (no caches), the real
metadata.txt and LICENSE, and the engine's source under engine/ (hsi_detect_engine plus its
pyproject.toml), which the plugin puts on the engine process's PYTHONPATH; `pip install` of
that folder installs the engine's requirements into any Python.
Run: .venv/bin/python scripts/package.py [--output-dir DIR]
"""

import argparse
import os
import re
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN = "hsi_detect_plugin"
FIXED_TIME = (2024, 1, 1, 0, 0, 0)  # the same sources give the same ZIP


def metadata_version() -> str:
    with open(os.path.join(ROOT, "metadata.txt"), encoding="utf-8") as f:
        found = re.search(r"^version=(\S+)", f.read(), re.M)
    if not found:
        sys.exit("metadata.txt has no version= line")
    return found.group(1)


def engine_version() -> str:
    with open(os.path.join(ROOT, "engine", "hsi_detect_engine", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def source_files(folder: str):
    """(path on disk, path relative to folder) of every file worth shipping under folder."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith(".")
                             and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            yield path, os.path.relpath(path, folder)


def entries():
    """(path on disk, path in the ZIP) for everything the ZIP holds."""
    for path, rel in source_files(os.path.join(ROOT, PLUGIN)):
        if rel in ("metadata.txt", "LICENSE"):
            continue  # the real files from the repository's top level, below
        yield path, f"{PLUGIN}/{rel}"
    yield os.path.join(ROOT, "metadata.txt"), f"{PLUGIN}/metadata.txt"
    yield os.path.join(ROOT, "LICENSE"), f"{PLUGIN}/LICENSE"
    for name in ("pyproject.toml", "README.md"):
        yield os.path.join(ROOT, "engine", name), f"{PLUGIN}/engine/{name}"
    for path, rel in source_files(os.path.join(ROOT, "engine", "hsi_detect_engine")):
        yield path, f"{PLUGIN}/engine/hsi_detect_engine/{rel}"


def build(output_dir: str) -> str:
    version = metadata_version()
    if version != engine_version():
        sys.exit(f"metadata.txt says version {version} but the engine is {engine_version()}: make them agree.")
    os.makedirs(output_dir, exist_ok=True)
    target = os.path.join(output_dir, f"{PLUGIN}-{version}.zip")
    tmp = target + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, arcname in entries():
            info = zipfile.ZipInfo(arcname, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(path, "rb") as f:
                zf.writestr(info, f.read())
    os.replace(tmp, target)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "dist"), help="where to write the ZIP (default: dist/)")
    args = parser.parse_args(argv)
    target = build(args.output_dir)
    with zipfile.ZipFile(target) as zf:
        count = len(zf.namelist())
    print(f"{target}: {count} files, {os.path.getsize(target) / 1024:.0f} KiB. "
          "Install it in QGIS with Plugins > Manage and Install Plugins > Install from ZIP.")


if __name__ == "__main__":
    main()
