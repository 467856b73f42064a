"""Running one benchmark run in a fresh child process, scoring its outputs, and caching it.

The child's wall time and peak resident memory are its own (bench.child). Finished runs are
stored as JSON under WORK/runs/, keyed by the scene, the method, the seed, the parameters,
the device and the threads; a stored run counts only while the engine modules it imported
are unchanged (their hashes are in the record), so that others' edits to unrelated modules
do not throw finished runs away.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from .child import run_child
from .scenes import Scene

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETWORKS = ("bs3lnet", "hypernet")
ROC_GRID = np.unique(np.round(np.concatenate([np.logspace(-5, 0, 161), np.linspace(0, 1, 101)]), 8))


@dataclass(frozen=True)
class RunSpec:
    section: str  # "anomaly", "change", "scaling", "full", "matmul" or "read"
    scene: str  # scene name ("" for matmul)
    method: str  # "rx", "bs3lnet", "cva", "hypernet" ("matmul" for the probe)
    seed: int = 1
    params: tuple = ()  # sorted (name, value) overrides of the defaults (quick mode's budget only)
    count_flops: bool = False
    memory_limit: str = ""  # the engine's --memory-limit ("": its default)

    @property
    def label(self) -> str:
        seed = f" seed {self.seed}" if self.method in NETWORKS else ""
        limit = f" limit {self.memory_limit}" if self.memory_limit else ""
        return f"{self.section}: {self.scene or 'device'} {self.method}{seed}{limit}"


@dataclass
class Context:
    work_dir: str
    device: str = "auto"
    threads: Optional[int] = None
    timeout: float = 6 * 3600
    engine_path: Optional[str] = None  # a snapshot of the engine to import instead of the installed one
    engine_sources: dict = field(default_factory=dict)  # engine file -> hash of its content now
    extra: dict = field(default_factory=dict)


def run_key(spec: RunSpec, scene: Optional[Scene], ctx: Context) -> str:
    device = "cpu" if spec.method in ("rx", "cva") else ctx.device
    fields = asdict(spec)
    if not spec.memory_limit:
        fields.pop("memory_limit")  # runs cached before the option existed keep their keys
    ident = {"spec": fields, "scene": scene.identity if scene else "", "device": device,
             "threads": ctx.threads}
    return hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cache_path(ctx: Context, key: str) -> str:
    return os.path.join(ctx.work_dir, "runs", f"{key}.json")


def is_current(record: dict, ctx: Context) -> bool:
    """True when every engine module the run imported still has the same source."""
    used = record.get("result", {}).get("engine_modules")
    return bool(used) and all(ctx.engine_sources.get(f) == h for f, h in used.items())


def load_cached(ctx: Context, key: str) -> Optional[dict]:
    """The stored run, or None when there is none or its code has changed since."""
    path = cache_path(ctx, key)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        record = json.load(f)
    return record if "error" in record or is_current(record, ctx) else None


def save_cached(ctx: Context, key: str, record: dict):
    path = cache_path(ctx, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)


def child_env(ctx: Context) -> dict:
    env = os.environ.copy()
    paths = [REPO] + ([ctx.engine_path] if ctx.engine_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths[::-1] + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if ctx.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(ctx.threads)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def launch(child_spec: dict, run_dir: str, ctx: Context, on_event: Callable[[dict], None]) -> dict:
    """Run bench.worker on child_spec in a new process; return its result plus resource usage."""
    spec_path, result_path = os.path.join(run_dir, "spec.json"), os.path.join(run_dir, "result.json")
    log_path = os.path.join(run_dir, "worker.log")
    with open(spec_path, "w") as f:
        json.dump(child_spec, f)
    load_before = os.getloadavg()[0]

    def on_line(line: str):
        try:
            on_event(json.loads(line))
        except ValueError:
            pass

    run = run_child([sys.executable, "-m", "bench.worker", spec_path, result_path], cwd=REPO, env=child_env(ctx),
                    on_line=on_line, stderr_path=log_path, timeout=ctx.timeout)
    out = {"process_seconds": round(run.seconds, 3), "peak_rss_bytes": run.peak_rss_bytes,
           "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
           "returncode": run.returncode}
    if run.returncode == 0 and os.path.exists(result_path):
        with open(result_path) as f:
            out["result"] = json.load(f)
    else:
        tail = run.stderr[-2000:]
        reason = f"timed out after {ctx.timeout:.0f} s" if run.timed_out else f"exit status {run.returncode}"
        out["error"] = f"{reason}: {tail.strip().splitlines()[-1] if tail.strip() else 'no message'}"
        out["log_tail"] = tail
    return out


def _read_map(path: str):
    from hsi_detect_engine.io.reader import read_single_band

    arr, nodata, _ = read_single_band(path)
    arr = arr.astype(np.float64)
    valid = np.isfinite(arr)
    if nodata is not None:
        valid &= arr != nodata
    return arr, valid


def score_outputs(score_path: str, binary_path: Optional[str], scene: Scene) -> dict:
    """AUC of the score map and, from the binary map, OA, Kappa, F1, precision and recall,
    over the pixels that are valid and labelled (scikit-learn through the engine's metrics)."""
    from hsi_detect_engine.accuracy.metrics import accuracy_figures, labelled_pixels, roc_points

    gt = scene.ground_truth()
    score, valid = _read_map(score_path)
    s, t = labelled_pixels(score, valid, gt, scene.unlabelled)
    figures = {"auc": accuracy_figures(s, t)["auc"], "labelled_pixels": int(t.size), "positive_pixels": int(t.sum())}
    fpr, tpr = roc_points(s, t)
    figures["roc"] = {"fpr": ROC_GRID.tolist(), "tpr": np.round(np.interp(ROC_GRID, fpr, tpr), 5).tolist()}
    if binary_path:
        classes, cvalid = _read_map(binary_path)
        cvalid &= classes != 255
        b, bt = labelled_pixels(classes, cvalid, gt, scene.unlabelled)
        binary = accuracy_figures(b, bt)
        figures.update({k: binary[k] for k in ("oa", "kappa", "f1", "precision", "recall")})
        figures["confusion"] = binary["confusion"]
    return figures


def execute(spec: RunSpec, scene: Optional[Scene], ctx: Context, on_event: Callable[[dict], None]) -> dict:
    """Run one spec in a child process and return its record (not cached here)."""
    key = run_key(spec, scene, ctx)
    run_dir = os.path.join(ctx.work_dir, "tmp", key)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    device = "cpu" if spec.method in ("rx", "cva") else ctx.device
    kind = spec.section if spec.section in ("matmul", "read") else scene.kind
    child = {"kind": kind, "method": spec.method, "seed": spec.seed, "params": dict(spec.params), "device": device,
             "threads": ctx.threads, "count_flops": spec.count_flops, "memory_limit": spec.memory_limit or None}
    if kind == "read":
        child["files"] = list(scene.inputs.values())
    elif scene is not None:
        child.update(scene.inputs)
        child["score"] = os.path.join(run_dir, "score.tif")
        child["binary"] = os.path.join(run_dir, "binary.tif")
    record = {"key": key, "spec": asdict(spec), "scene": scene.name if scene else "",
              "shape": list(scene.shape) if scene else None, "device": device, "threads": ctx.threads,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **ctx.extra}
    record.update(launch(child, run_dir, ctx, on_event))
    if "result" in record and scene is not None and kind != "read":
        try:
            record["metrics"] = score_outputs(child["score"], child["binary"], scene)
        except Exception as exc:  # a run whose output cannot be scored is a failed run
            record["error"] = f"scoring failed: {type(exc).__name__}: {exc}"
    if "error" not in record:
        shutil.rmtree(run_dir, ignore_errors=True)
    return record
