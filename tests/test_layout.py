"""The engine's layout as engine/README.md describes it: every module named there exists and
every module is named there; imports run one way (no cycle, io/ never imports a method)."""

import ast
import os
import re

ENGINE = os.path.join(os.path.dirname(__file__), "..", "engine")
PACKAGE = os.path.join(ENGINE, "hsi_detect_engine")
README = os.path.join(ENGINE, "README.md")


def modules() -> dict:
    """Dotted name (relative to the package) -> path, for every module of the engine."""
    found = {}
    for dirpath, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), PACKAGE)
                found[rel[:-3].replace(os.sep, ".")] = os.path.join(dirpath, name)
    return found


def module_level_imports(name: str, path: str) -> set:
    """Engine modules imported at module level (function-level imports run later and cannot cycle)."""
    package = name.split(".")[:-1] if not name.endswith("__init__") else name.split(".")[:-1]
    out = set()
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join(base + ([node.module] if node.module else []))
            out.add(target)
            for alias in node.names:
                out.add(f"{target}.{alias.name}" if target else alias.name)
    known = modules()
    return {m for m in out if m in known or f"{m}.__init__" in known}


def test_the_readme_names_every_module_and_only_existing_ones():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    named = {m for m in re.findall(r"[\w/]+\.py\b", text) if not m.startswith("hsi_detect_plugin/")}
    paths = {os.path.relpath(p, PACKAGE).replace(os.sep, "/") for p in modules().values()}
    assert named - paths == set(), "engine/README.md names files that do not exist"
    missing = {p for p in paths if not p.endswith("__init__.py")} - named
    assert missing == set(), "engine/README.md does not say where these modules fit"


def test_engine_imports_have_no_cycle_and_io_imports_no_method():
    graph = {name: module_level_imports(name, path) for name, path in modules().items()}
    graph = {k.replace(".__init__", ""): {m.replace(".__init__", "") for m in v} for k, v in graph.items()}
    for name, deps in graph.items():
        if name.startswith("io."):
            assert not any(d.split(".")[0] in ("bs3lnet", "hypernet", "anomaly", "change", "cli") for d in deps), name
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph.get(node, ()):
            if state.get(dep) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack + [node, dep]))
            if dep not in state:
                visit(dep, stack + [node])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])
