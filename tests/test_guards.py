"""The engine must run without QGIS: nothing under engine/ imports qgis."""

import ast
import os
import pkgutil
import subprocess
import sys

ENGINE = os.path.join(os.path.dirname(__file__), "..", "engine", "hsi_detect_engine")


def test_no_engine_source_imports_qgis():
    offenders = []
    for dirpath, _, files in os.walk(ENGINE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                mods = []
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    mods = [node.module]
                offenders += [f"{path}:{node.lineno} {m}" for m in mods if m.split(".")[0] in ("qgis", "PyQt5", "processing")]
    assert offenders == []


def test_importing_every_engine_module_loads_no_qgis():
    import hsi_detect_engine

    names = [m.name for m in pkgutil.walk_packages(hsi_detect_engine.__path__, "hsi_detect_engine.")]
    code = ("import importlib, sys\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5')]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
