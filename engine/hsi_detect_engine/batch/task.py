"""What a Dask worker runs for one batch job.

The job is the same engine call as the command line: ``python -m hsi_detect_engine.cli
anomaly|change ... --json-progress --cancel-on-stdin`` in a child process of the worker.
A child process per job gives an exact peak memory (the child's own resource usage from
wait4), a clean stop (the child cancels when its stdin closes and is killed when its worker
dies; the engine writes outputs to hidden temporary files renamed into place only when
complete, which the next run in that folder removes, so a worker killed mid-job leaves no
partial output and Dask runs the job again elsewhere),
and its own number of torch threads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

from ..progress import peak_rss_mib
from .manifest import sha256_file

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _die_with_parent():
    """In the child before exec: ask Linux to kill it when the worker thread that started it dies.
    SIGKILL, not the CLI's cancel (SIGTERM): an orphan must stop at once wherever it is, and its
    hidden temporaries are removed by the job's retry, which writes to the same folder."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass  # not Linux: the closed stdin still cancels the run


def _worker_threads_and_gpus(gpus: int):
    """Threads a job may use on this worker by default, and the GPU ids of a local-cluster worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
        nthreads = max(1, worker.state.nthreads)
        name = worker.name
    except Exception:
        nthreads, name = 1, None
    threads = max(1, (os.cpu_count() or 1) // nthreads)
    ids = None
    if gpus and isinstance(name, int):
        ids = [name * gpus + k for k in range(gpus)]
    return threads, ids


def _worker_address():
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:
        return None


def _watch_memory(proc: subprocess.Popen, limit: int, state: dict):
    """Stop the child when its resident memory passes the limit (checked twice a second)."""
    try:
        import psutil

        child = psutil.Process(proc.pid)
    except Exception:
        return
    while proc.returncode is None and not state.get("done"):
        try:
            rss = child.memory_info().rss
        except Exception:
            return
        if rss > limit:
            state["over"] = rss
            try:
                proc.send_signal(signal.SIGTERM)
                for _ in range(50):
                    if state.get("done"):
                        return
                    time.sleep(0.1)
                proc.kill()
            except Exception:
                pass
            return
        time.sleep(0.5)


def _mib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.0f} MiB"


def run_job(spec: dict, threads: Optional[int] = None, memory_limit: Optional[int] = None,
            gpus: int = 0, local_gpus: bool = False) -> dict:
    """Run one job in a child process; return status, seconds, peak memory, device, accuracy, checksums.

    Failures come back as a record with status "failed" and a one-line error (the engine's
    own message), never as an exception, so the other jobs go on.
    """
    default_threads, gpu_ids = _worker_threads_and_gpus(gpus if local_gpus else 0)
    threads = threads or default_threads
    env = dict(os.environ)
    for var in THREAD_VARIABLES:
        env[var] = str(threads)
    if gpu_ids is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)
    for path in spec["outputs"]:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # a batch makes its output folders
    argv = [sys.executable, "-m", "hsi_detect_engine.cli", *spec["argv"], "--json-progress", "--cancel-on-stdin"]
    if memory_limit and "--memory-limit" not in spec["argv"]:
        argv += ["--memory-limit", str(int(memory_limit))]  # the engine streams what would not fit in it
    started = time.perf_counter()
    record = {"name": spec["name"], "host": os.uname().nodename, "worker": _worker_address(), "threads": threads}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        state = {}
        if memory_limit:
            threading.Thread(target=_watch_memory, args=(proc, int(memory_limit), state), daemon=True).start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            state["done"] = True
        proc.returncode = os.waitstatus_to_exitcode(status)
        try:
            proc.stdin.close()
        except OSError:
            pass
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["peak_memory_mib"] = peak_rss_mib(usage)
        out.seek(0)
        lines = out.read().decode("utf-8", "replace").splitlines()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    result, error = None, None
    for line in reversed(lines):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "result" in obj:
            result = obj["result"]
            break
        if "error" in obj:
            error = obj["error"]
            break
    if state.get("over"):
        error = (f"stopped: the job used {_mib(state['over'])}, more than the memory limit of "
                 f"{_mib(memory_limit)} per job; give it more (--memory-limit) or process a smaller area.")
    elif proc.returncode < 0:
        error = f"the engine process was killed by signal {-proc.returncode} (out of memory?)"
    elif proc.returncode != 0 and error is None:
        tail = [ln for ln in stderr.splitlines() if ln.strip()]
        error = tail[-1] if tail else f"the engine process exited with status {proc.returncode}"
    if error is not None or result is None:
        record.update(status="failed", error=(error or "the engine gave no result").splitlines()[0])
        return record
    record["device"] = result.get("device") or ""
    record["engine_seconds"] = result.get("seconds")
    if spec.get("ground_truth"):
        try:
            from ..accuracy.evaluate import evaluate

            figures = evaluate(spec["output"], spec["ground_truth"], memory_limit=memory_limit)
            record["metrics"] = {k: figures.get(k) for k in ("auc", "oa", "kappa", "f1", "precision", "recall")}
        except Exception as exc:  # noqa: BLE001 - one line for the results table
            record.update(status="failed", error=f"evaluation against the ground truth failed: "
                                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            return record
    record["outputs"] = {p: sha256_file(p) for p in spec["outputs"] if os.path.isfile(p)}
    missing = [p for p in spec["outputs"] if not os.path.isfile(p)]
    if missing:
        record.update(status="failed", error=f"the engine reported success but did not write {missing[0]}")
        return record
    record["status"] = "done"
    return record
