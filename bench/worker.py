"""One benchmark run, in a fresh process: ``python -m bench.worker SPEC.json RESULT.json``.

The spec names the pipeline (anomaly, change) or the matrix-multiply probe (matmul). The
run goes through the engine's public pipeline (run_anomaly / run_change), which writes its
rasters where the spec says; the parent process scores them, so that this process's peak
memory is the pipeline's own. Progress events go to stdout as JSON lines.

The result lists the engine modules the run imported, with the hashes of their sources,
so that a cached run stays valid exactly as long as the code it ran is unchanged.

With ``count_flops`` the worker also counts the floating-point operations of training and
detection (torch.utils.flop_counter): during the first COUNTED_STEPS training steps (the
cost per step is then multiplied by the number of steps, as every step does the same work
on a batch of the same shape) and during the whole detection stage. Training throughput is
taken over the steps that were not counted, so the counter's own overhead does not enter it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

COUNTED_STEPS = 2
_STEP = re.compile(r"training: (\d+)/(\d+)")


class Probe:
    """Progress callback that times the stages and training steps and counts FLOPs."""

    def __init__(self, count_flops: bool = False, emit_every: float = 0.5):
        self.count_flops = count_flops
        self.emit_every = emit_every
        self._last_emit = 0.0
        self.start = time.perf_counter()
        self.stage_starts = []  # (stage, seconds since start)
        self.step_times = {}  # step number (0 = before the first) -> seconds since start
        self.total_steps = None
        self.flops = {}  # stage -> counted FLOPs
        self.counted_steps = 0
        self._counter = None
        self._counter_stage = None

    def __call__(self, event: dict):
        now = time.perf_counter() - self.start
        stage = event.get("stage")
        if stage == "log":
            return
        if not self.stage_starts or self.stage_starts[-1][0] != stage:
            self._stage_changed(stage, now)
        if stage == "training":
            m = _STEP.match(event.get("message", ""))
            if m:
                step, total = int(m.group(1)), int(m.group(2))
                self.step_times[step] = now
                self.total_steps = total
                if self._counter_stage == "training" and step > 0 and (step >= COUNTED_STEPS or step == total):
                    self.counted_steps = step
                    self._stop_counting()
        if now - self._last_emit >= self.emit_every or event.get("fraction", 0) >= 1.0:
            self._last_emit = now
            out = {"stage": stage, "fraction": event.get("fraction", 0.0)}
            if "loss" in event:
                out["loss"] = event["loss"]
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()

    def _stage_changed(self, stage: str, now: float):
        self._stop_counting()
        self.stage_starts.append((stage, now))
        if self.count_flops and stage in ("training", "detecting") and stage not in self.flops:
            from torch.utils.flop_counter import FlopCounterMode

            self._counter = FlopCounterMode(display=False)
            self._counter_stage = stage
            self._counter.__enter__()

    def _stop_counting(self):
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.flops[self._counter_stage] = int(self._counter.get_total_flops())
            self._counter, self._counter_stage = None, None

    def finish(self) -> dict:
        end = time.perf_counter() - self.start
        self._stop_counting()
        stages = {}
        for i, (name, t0) in enumerate(self.stage_starts):
            t1 = self.stage_starts[i + 1][1] if i + 1 < len(self.stage_starts) else end
            stages[name] = stages.get(name, 0.0) + (t1 - t0)
        out = {"stage_seconds": {k: round(v, 4) for k, v in stages.items()}, "steps": self.total_steps}
        if self.count_flops:
            out["flops"] = self._throughput(stages)
        return out

    def _throughput(self, stages: dict) -> dict:
        res = {}
        steps, counted = self.total_steps, self.counted_steps
        if "training" in self.flops and steps and counted:
            per_step = self.flops["training"] / counted
            res["training_flops"] = per_step * steps
            res["training_flops_per_step"] = per_step
            last = max(self.step_times)
            if last > counted:  # time the steps the counter did not slow down
                seconds = self.step_times[last] - self.step_times[counted]
                res["training_flop_rate"] = per_step * (last - counted) / seconds if seconds > 0 else None
            elif stages.get("training"):
                res["training_flop_rate"] = per_step * steps / stages["training"]
        if "detecting" in self.flops and stages.get("detecting"):
            res["detection_flops"] = self.flops["detecting"]
            res["detection_flop_rate"] = self.flops["detecting"] / stages["detecting"]
        return res


def measure_matmul(device: str, seconds: float = 3.0) -> dict:
    """Best float32 matrix-multiply rate (FLOP/s) of square products on the device."""
    import torch

    from hsi_detect_engine.runtime import resolve_device

    dev = resolve_device(device)
    n = 4096 if dev.type == "cuda" else 2048
    a = torch.randn(n, n, device=dev)
    b = torch.randn(n, n, device=dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    a @ b
    sync()
    best, spent = 0.0, 0.0
    while spent < seconds:
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        sync()
        dt = time.perf_counter() - t
        spent += dt
        best = max(best, 4 * 2 * n ** 3 / dt)
    return {"matmul_flop_rate": best, "size": n, "device": str(dev), "threads": torch.get_num_threads()}


def read_once(path: str) -> float:
    """Seconds GDAL takes to read every value of a raster once, block row by block row into a
    reused buffer: the reading floor of any method on that file."""
    import numpy as np
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(path)
    band = ds.GetRasterBand(1)
    step = band.GetBlockSize()[1]
    dtype = gdal.GetDataTypeName(band.DataType).lower()
    started = time.perf_counter()
    buf = None
    for row in range(0, ds.RasterYSize, step):
        n = min(step, ds.RasterYSize - row)
        if buf is None or buf.shape[0] != n:
            buf = np.empty((n, ds.RasterXSize, ds.RasterCount), dtype=np.dtype(dtype))
        ds.ReadAsArray(0, row, ds.RasterXSize, n, buf_obj=buf, interleave="pixel")
    return time.perf_counter() - started


def engine_modules_used(before: dict, method: str) -> dict:
    """{engine file: hash taken before the run} of the engine modules the run imported; for
    parameters.py, the hash of this method's own parameter defaults (see machine.parameter_hashes)."""
    import hsi_detect_engine

    from .machine import PARAMETER_LISTS

    root = os.path.dirname(os.path.abspath(hsi_detect_engine.__file__))
    used = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith("hsi_detect_engine") and path:
            rel = os.path.relpath(os.path.abspath(path), root)
            if rel == "parameters.py":
                lists = [PARAMETER_LISTS[method]] if method in PARAMETER_LISTS else PARAMETER_LISTS.values()
                used.update({f"{rel}:{n}": before[f"{rel}:{n}"] for n in lists})
            elif rel in before:
                used[rel] = before[rel]
    return used


def run(spec: dict) -> dict:
    import hsi_detect_engine
    from hsi_detect_engine.progress import Progress

    from .machine import engine_state

    sources = engine_state(os.path.dirname(os.path.abspath(hsi_detect_engine.__file__)))

    threads = spec.get("threads")
    torch_loaded = spec["kind"] == "matmul" or spec.get("method") in ("bs3lnet", "hypernet")
    if torch_loaded:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
    probe = Probe(count_flops=bool(spec.get("count_flops")))
    progress = Progress(probe, min_interval=0.0)
    started = time.perf_counter()
    if spec["kind"] == "matmul":
        summary = measure_matmul(spec.get("device", "auto"))
    elif spec["kind"] == "read":
        summary = {"read_seconds": sum(read_once(path) for path in spec["files"])}
    elif spec["kind"] == "anomaly":
        from hsi_detect_engine.anomaly import run_anomaly

        summary = run_anomaly(spec["input"], spec["score"], binary=spec.get("binary"), method=spec["method"],
                              device=spec.get("device", "auto"), seed=spec.get("seed", 1),
                              params=spec.get("params") or None, progress=progress,
                              memory_limit=spec.get("memory_limit"))
    elif spec["kind"] == "change":
        from hsi_detect_engine.change import run_change

        summary = run_change(spec["t1"], spec["t2"], spec["score"], binary=spec.get("binary"),
                             method=spec["method"], device=spec.get("device", "auto"), seed=spec.get("seed", 1),
                             params=spec.get("params") or None, progress=progress,
                             memory_limit=spec.get("memory_limit"))
    else:
        raise ValueError(f"unknown run kind {spec['kind']!r}")
    wall = time.perf_counter() - started
    result = {"summary": summary, "seconds": round(wall, 4), **probe.finish(),
              "engine_modules": engine_modules_used(sources, spec.get("method", ""))}
    if torch_loaded:
        import torch

        result["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            result["gpu_peak_bytes"] = int(torch.cuda.max_memory_allocated())
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, result_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    result = run(spec)
    tmp = result_path + ".partial"
    with open(tmp, "w") as f:
        json.dump(result, f, default=str)
    os.replace(tmp, result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
