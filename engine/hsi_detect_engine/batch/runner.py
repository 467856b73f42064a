"""Running a batch on Dask: a local cluster sized to the machine, or a running scheduler.

Each job is one Dask task (``task.run_job``) that runs the engine in a child process of
its worker. Finished jobs are appended to the manifest as their results arrive; jobs
whose manifest record is still valid are skipped. A worker that dies mid-job has its
task run again on another worker by the scheduler (``distributed.scheduler.allowed-failures``
times at most). At the end the results table is written as CSV and Markdown.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import time
from typing import Callable, Optional

from ..errors import Cancelled, HsiDetectError
from ..io.memory import parse_memory_size
from .manifest import Manifest
from .task import run_job

RESULT_COLUMNS = ("job", "command", "input", "status", "seconds", "peak_memory_mib", "device", "auc", "kappa",
                  "f1", "error")


def local_gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def plan_local(jobs: Optional[int] = None, threads_per_job: Optional[int] = None, gpus_per_job: int = 0,
               cores: Optional[int] = None) -> dict:
    """Jobs in parallel and threads per job for this machine, so that jobs x threads <= cores."""
    cores = cores or os.cpu_count() or 1
    if threads_per_job is None:
        threads_per_job = max(1, cores // jobs) if jobs else min(cores, 4)
    threads_per_job = max(1, min(threads_per_job, cores))
    if jobs is None:
        jobs = max(1, cores // threads_per_job)
    gpus = 0
    if gpus_per_job:
        gpus = local_gpu_count()
        if gpus < gpus_per_job:
            raise HsiDetectError(f"--gpus-per-job {gpus_per_job}, but this machine has {gpus} CUDA GPU(s) that torch "
                                 "can use. Leave --gpus-per-job out to run on the CPU, or use --scheduler with "
                                 "workers that declared GPUs.")
        jobs = max(1, min(jobs, gpus // gpus_per_job))
    return {"jobs": jobs, "threads_per_job": threads_per_job, "cores": cores, "gpus": gpus}


def _local_client(plan: dict, memory_limit, gpus_per_job: int):
    import dask
    from distributed import Client, LocalCluster

    # a job whose worker dies is run again elsewhere, up to this many times (Dask's own retry)
    dask.config.set({"distributed.scheduler.allowed-failures": 3})
    kwargs = {}
    if gpus_per_job:
        kwargs["resources"] = {"GPU": gpus_per_job}
    cluster = LocalCluster(n_workers=plan["jobs"], threads_per_worker=1, processes=True,
                           memory_limit=memory_limit if memory_limit else "auto", dashboard_address=None,
                           host="127.0.0.1", **kwargs)
    return Client(cluster), cluster


def _remote_client(address: str, gpus_per_job: int, wait: float = 60):
    from distributed import Client

    try:
        client = Client(address, timeout=wait)
    except (OSError, TimeoutError) as exc:
        raise HsiDetectError(f"Could not reach the Dask scheduler at {address} ({str(exc).splitlines()[0]}). "
                             "Start one with `dask scheduler` and workers with `dask worker ADDRESS`.") from None
    try:
        client.wait_for_workers(1, timeout=wait)
    except (OSError, TimeoutError):
        client.close()
        raise HsiDetectError(f"The Dask scheduler at {address} has no worker after {wait:.0f} s. "
                             "Start workers with `dask worker ADDRESS`.") from None
    if gpus_per_job:
        workers = client.scheduler_info().get("workers", {}).values()
        if not any(w.get("resources", {}).get("GPU", 0) >= gpus_per_job for w in workers):
            client.close()
            raise HsiDetectError(f"--gpus-per-job {gpus_per_job}, but no worker of {address} declared that many "
                                 f"GPUs; start GPU workers with `dask worker ADDRESS --resources GPU={gpus_per_job}`.")
    return client


def _row(job, rec: Optional[dict], status: str) -> dict:
    rec = rec or {}
    metrics = rec.get("metrics") or {}

    def fmt(v, digits=4):
        return "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    return {"job": job.name, "command": f"{job.command} {job.method}", "input": job.files["input"],
            "status": status, "seconds": fmt(rec.get("seconds"), 1), "peak_memory_mib": fmt(rec.get("peak_memory_mib"), 0),
            "device": rec.get("device", "") or "", "auc": fmt(metrics.get("auc")), "kappa": fmt(metrics.get("kappa")),
            "f1": fmt(metrics.get("f1")), "error": rec.get("error", "") or ""}


def write_results(prefix: str, rows: list) -> dict:
    """The results table as PREFIX.csv and PREFIX.md; returns both paths."""
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    paths = {"csv": prefix + ".csv", "markdown": prefix + ".md"}
    tmp = paths["csv"] + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, paths["csv"])

    def md(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(RESULT_COLUMNS) + " |", "|" + "---|" * len(RESULT_COLUMNS)]
    lines += ["| " + " | ".join(md(r[c]) for c in RESULT_COLUMNS) + " |" for r in rows]
    tmp = paths["markdown"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, paths["markdown"])
    return paths


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_batch(jobs: list, *, manifest: str, results: str, scheduler: Optional[str] = None,
              client=None, n_jobs: Optional[int] = None, threads_per_job: Optional[int] = None,
              memory_limit=None, gpus_per_job: int = 0, force: bool = False,
              on_event: Optional[Callable[[dict], None]] = None,
              should_stop: Optional[Callable[[], bool]] = None) -> dict:
    """Run the jobs (skipping those the manifest shows finished), record them, write the results table.

    ``client``: an existing ``distributed.Client`` to use (else one is made: ``scheduler``'s, or
    a local cluster). ``memory_limit``: bytes (or a size such as '4GB', read as the engine reads it) per job. Returns a summary:
    counts, the table rows, the results and manifest paths.
    """
    emit = on_event or (lambda event: None)
    mem = parse_memory_size(memory_limit) if isinstance(memory_limit, str) else memory_limit
    book = Manifest(manifest)
    keys = [job.key() for job in jobs]
    rows = [None] * len(jobs)
    todo = []
    for i, job in enumerate(jobs):
        rec = None if force else book.finished(keys[i])
        if rec is not None:
            rows[i] = _row(job, rec, "skipped")
        else:
            todo.append(i)
    summary = {"jobs": len(jobs), "skipped": len(jobs) - len(todo), "done": 0, "failed": 0, "cancelled": 0,
               "manifest": manifest}
    emit({"total": len(jobs), "skipped": summary["skipped"]})
    for i, job in enumerate(jobs):
        if rows[i] is not None:
            emit({"job": job.name, "status": "skipped", "done": True})
    cluster = None
    own_client = client is None
    cancelled = False
    try:
        if todo:
            local_gpus = False
            if client is None and scheduler:
                emit({"message": f"connecting to the Dask scheduler at {scheduler}"})
                client = _remote_client(scheduler, gpus_per_job)
            elif client is None:
                plan = plan_local(n_jobs, threads_per_job, gpus_per_job)
                threads_per_job = plan["threads_per_job"]
                local_gpus = bool(gpus_per_job)
                emit({"message": f"local Dask cluster: {plan['jobs']} job(s) at a time x {threads_per_job} "
                                 f"thread(s) each on {plan['cores']} core(s)"
                                 + (f", {gpus_per_job} GPU(s) per job" if gpus_per_job else "")
                                 + (f", {memory_limit} per job" if memory_limit else "")})
                client, cluster = _local_client(plan, mem, gpus_per_job)
            from distributed import as_completed

            futures = {}
            for i in todo:
                job = jobs[i]
                fut = client.submit(run_job, job.spec(), threads_per_job, mem, gpus_per_job, local_gpus,
                                    key=f"hsi-detect-{job.name}-{keys[i][:10]}-{time.time_ns()}", pure=False,
                                    resources={"GPU": gpus_per_job} if gpus_per_job else None, retries=0)
                futures[fut] = i
            pending = set(futures)
            ac = as_completed(list(futures))
            while pending:
                if should_stop is not None and should_stop():
                    raise Cancelled("The batch was cancelled; finished jobs are in the manifest.")
                try:
                    batch = ac.next_batch(block=False)
                except StopIteration:
                    break
                if not batch:
                    time.sleep(0.2)
                    continue
                for fut in batch:
                    pending.discard(fut)
                    i = futures[fut]
                    job = jobs[i]
                    try:
                        rec = fut.result()
                    except Exception as exc:  # noqa: BLE001 - KilledWorker, or a bug in the task
                        name = type(exc).__name__
                        if name == "KilledWorker":
                            err = "the workers running this job died repeatedly (out of memory?); see the worker logs"
                        else:
                            err = f"internal error: {_one_line(exc)}"
                        rec = {"status": "failed", "error": err}
                    rec = dict(rec)
                    rec.update({"key": keys[i], "job": job.name, "command": job.command, "argv": job.argv(),
                                "inputs": job.input_stats(), "settings": job.settings(),
                                "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
                    book.append(rec)
                    summary[rec["status"]] = summary.get(rec["status"], 0) + 1
                    rows[i] = _row(job, rec, rec["status"])
                    emit({"job": job.name, "status": rec["status"], "error": rec.get("error"), "done": True})
    except (KeyboardInterrupt, Cancelled):
        cancelled = True
    finally:
        if cancelled and client is not None:
            try:
                client.cancel([f for f in locals().get("futures", {})], force=True)
            except Exception:
                pass
        if own_client and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    for i, job in enumerate(jobs):
        if rows[i] is None:
            rows[i] = _row(job, None, "cancelled")
            summary["cancelled"] += 1
    summary["results"] = write_results(results, rows)
    summary["rows"] = rows
    summary["cancelled_batch"] = cancelled
    return summary
