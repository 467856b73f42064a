"""What the benchmark ran on and from: commit, engine sources, machine, load."""

from __future__ import annotations

import datetime
import glob
import hashlib
import os
import platform
import subprocess
import sys

from .runner import REPO

ENGINE_PACKAGE = os.path.join("engine", "hsi_detect_engine")


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def source_hashes(package_dir: str) -> dict:
    """{path relative to the package: sha1 of its content} of every Python file of a package."""
    out = {}
    for path in sorted(glob.glob(os.path.join(package_dir, "**", "*.py"), recursive=True)):
        with open(path, "rb") as f:
            out[os.path.relpath(path, package_dir)] = hashlib.sha1(f.read()).hexdigest()
    return out


PARAMETER_LISTS = {"bs3lnet": "BS3LNET", "hypernet": "HYPERNET"}


def parameter_hashes(package_dir: str) -> dict:
    """{'parameters.py:LIST': hash of its (name, default) pairs} for each method's parameter list.

    parameters.py declares both networks' parameters; a run depends only on its own
    method's defaults, so that is what its validity is checked against.
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bench_parameters", os.path.join(package_dir, "parameters.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    out = {}
    for name in PARAMETER_LISTS.values():
        pairs = repr([(p.name, p.default) for p in getattr(module, name, [])])
        out[f"parameters.py:{name}"] = hashlib.sha1(pairs.encode()).hexdigest()
    return out


def engine_state(package_dir: str) -> dict:
    """What cached runs are checked against: source hashes plus the parameter lists' defaults."""
    return {**source_hashes(package_dir), **parameter_hashes(package_dir)}


def engine_fingerprint(root: str) -> str:
    """One hash of the engine package's Python sources under root (a repository or a snapshot)."""
    text = "".join(f"{k}:{v};" for k, v in source_hashes(os.path.join(root, ENGINE_PACKAGE)).items())
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def engine_snapshot(rev: str, work_dir: str) -> tuple:
    """Extract the engine package of a commit into WORK/engine-SHA; returns (sha, path to put on PYTHONPATH)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if not sha:
        raise SystemExit(f"bench: '{rev}' is not a commit of this repository.")
    root = os.path.join(work_dir, f"engine-{sha[:12]}")
    if not os.path.isdir(os.path.join(root, ENGINE_PACKAGE)):
        os.makedirs(root, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, ENGINE_PACKAGE], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", root], input=archive.stdout, check=True)
    return sha, root


def source_info(engine_rev: str = None, engine_root: str = REPO) -> dict:
    if engine_rev:
        commit, dirty = engine_rev, False
    else:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", ENGINE_PACKAGE))
    return {"commit": commit, "commit_short": commit[:7], "subject": git("log", "-1", "--format=%s", commit),
            "engine_uncommitted_changes": dirty, "engine_fingerprint": engine_fingerprint(engine_root)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine_info() -> dict:
    import torch

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append({"name": p.name, "memory_bytes": int(p.total_memory)})
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)),
            "memory_bytes": _memory_bytes(), "gpus": gpus, "os": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "niceness": os.nice(0), "load_at_start": [round(x, 2) for x in os.getloadavg()]}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
