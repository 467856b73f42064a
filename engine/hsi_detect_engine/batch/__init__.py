"""``hsi-detect batch``: many anomaly / change jobs on Dask, resumable, with a results table.

Importing this package imports no Dask and no torch (the CLI builds its parser quickly);
``runner`` and ``task`` import Dask when a batch runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from ..errors import HsiDetectError
from ..io.memory import parse_memory_size
from .jobs import ALL_PARAM_NAMES, THRESHOLDS, jobs_from_glob, read_job_list

EXIT_OK = 0

DESCRIPTION = """\
Run many anomaly / change jobs, on this machine or on a Dask cluster.

JOBS is a CSV (or YAML) job list, one row per job, with the columns command (anomaly or
change), input, input2 (the second date, for change), output (the score or change map),
and optionally name, method, binary, anomalous_change, ground_truth, training_mask, model,
save_model, bands, threshold, threshold_value, top_fraction, device, seed, grid and any
detector parameter under its engine name (iterations, epochs, learning_rate, ...). An empty
cell means the default; relative paths are taken from the job list's folder. Options given
on this command line (--method, --seed, --iterations, ...) fill the empty cells.

Or, for the simple case, --glob PATTERN --output-dir DIR: one job per matching input with
the options of this command line.

Each job runs the same engine call as `hsi-detect anomaly|change`, in its own process on a
Dask worker. A manifest (JSON lines, JOBS.manifest.jsonl) records every finished job; a
re-run skips finished jobs whose inputs, parameters and outputs are unchanged and runs the
rest. The results table (JOBS.results.csv and .md) has one row per job: status, seconds,
peak memory, device and, with a ground truth, AUC, Kappa and F1. Exit status: 0 all jobs
done, 1 a job failed or the job list was refused, 2 bad command line, 3 cancelled.
"""


def add_parser(sub, common) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to the CLI's subparsers (``common`` adds --json-progress etc.)."""
    b = sub.add_parser("batch", help="many anomaly/change jobs on Dask (local or a cluster), resumable",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("jobs", metavar="JOBS", nargs="?", help="job list (.csv, or .yaml/.yml)")
    g = b.add_argument_group("glob mode (instead of JOBS)")
    g.add_argument("--glob", metavar="PATTERN", help="one job per input file matching PATTERN (quote it)")
    g.add_argument("--glob2", metavar="PATTERN", help="second dates of change jobs, paired with --glob in sorted order")
    g.add_argument("--command", dest="glob_command", choices=("anomaly", "change"), default="anomaly",
                   help="what each job does (default: anomaly)")
    g.add_argument("--output-dir", metavar="DIR", help="folder of the outputs: NAME_anomaly.tif or NAME_change.tif")
    g.add_argument("--binary", action="store_true", help="also write binary maps (NAME_COMMAND_binary.tif)")
    g.add_argument("--ground-truth", metavar="GT.tif", help="ground truth for every job (AUC, Kappa, F1 in the table)")

    w = b.add_argument_group("where it runs")
    w.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local cluster on this machine)")
    w.add_argument("--jobs", dest="parallel", type=int, metavar="N",
                   help="local cluster: jobs at a time (default: cores / threads per job)")
    w.add_argument("--threads-per-job", type=int, metavar="T",
                   help="torch threads of each job (default: local cluster min(cores, 4); on a scheduler's workers "
                        "their cores / their threads)")
    w.add_argument("--memory-limit", metavar="SIZE",
                   help="memory of each job, e.g. 4GB: a job that uses more is stopped and recorded as failed; "
                        "also each local worker's Dask memory limit (default: the machine's memory split "
                        "between the local workers, not enforced per job)")
    w.add_argument("--gpus-per-job", type=int, default=0, metavar="N",
                   help="GPUs each job needs: jobs go only to workers that declared a GPU resource "
                        "(dask worker ... --resources GPU=N); locally, only with CUDA GPUs")
    w.add_argument("--results", metavar="PREFIX",
                   help="results table PREFIX.csv and PREFIX.md (default: beside the job list, JOBS.results.*)")
    w.add_argument("--manifest", metavar="FILE.jsonl",
                   help="manifest of finished jobs (default: beside the job list, JOBS.manifest.jsonl)")
    w.add_argument("--force", action="store_true", help="run every job again, finished or not")

    r = b.add_argument_group("engine options for every job (where its cell is empty)")
    r.add_argument("--method", help="bs3lnet or rx for anomaly, hypernet or cva for change")
    r.add_argument("--bands", help="1-based bands to use, e.g. 1-50,60")
    r.add_argument("--threshold", choices=THRESHOLDS, help="how the binary map is thresholded (default: hysteresis "
                                                            "for anomaly jobs, otsu for change jobs)")
    r.add_argument("--threshold-value", type=float)
    r.add_argument("--top-fraction", type=float)
    r.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    r.add_argument("--seed", type=int)
    r.add_argument("--grid", choices=("resample", "refuse"), help="change jobs: dates on different grids")
    p = b.add_argument_group("detector parameters for every job (see hsi-detect anomaly --help, change --help)")
    for name in ALL_PARAM_NAMES:
        p.add_argument("--" + name.replace("_", "-"), dest="param_" + name, metavar="VALUE")
    common(b)
    return b


def _defaults(args) -> dict:
    out = {k: getattr(args, k) for k in ("method", "bands", "threshold", "threshold_value", "top_fraction",
                                         "device", "seed", "grid")}
    for name in ALL_PARAM_NAMES:
        out[name] = getattr(args, "param_" + name)
    return {k: v for k, v in out.items() if v is not None}


def _load(args):
    """Jobs, manifest path and results prefix from the command line."""
    defaults = _defaults(args)
    if args.glob:
        if args.jobs:
            raise HsiDetectError("Give a job list or --glob, not both.")
        if not args.output_dir:
            raise HsiDetectError("--glob needs --output-dir for the outputs.")
        out_dir = os.path.abspath(args.output_dir)
        jobs = jobs_from_glob(args.glob, args.glob_command, out_dir, pattern2=args.glob2, binary=args.binary,
                              ground_truth=args.ground_truth, defaults=defaults)
        stem = os.path.join(out_dir, "batch")
    else:
        if not args.jobs:
            raise HsiDetectError("Give a job list (JOBS.csv or .yaml) or --glob PATTERN --output-dir DIR.")
        glob_only = [f for f, v in (("--glob2", args.glob2), ("--output-dir", args.output_dir),
                                    ("--binary", args.binary), ("--ground-truth", args.ground_truth)) if v]
        if glob_only:
            raise HsiDetectError(f"{', '.join(glob_only)} only apply with --glob; put them in the job list's columns.")
        jobs = read_job_list(args.jobs, defaults)
        stem = os.path.splitext(os.path.abspath(args.jobs))[0]
    manifest = os.path.abspath(args.manifest) if args.manifest else stem + ".manifest.jsonl"
    results = os.path.abspath(args.results) if args.results else stem + ".results"
    for flag, value in (("--jobs", args.parallel), ("--threads-per-job", args.threads_per_job)):
        if value is not None and value < 1:
            raise HsiDetectError(f"{flag} must be at least 1.")
    if args.gpus_per_job < 0:
        raise HsiDetectError("--gpus-per-job must be 0 or more.")
    if args.memory_limit:
        parse_memory_size(args.memory_limit)  # the engine's own reading of a size, refused the same way
    return jobs, manifest, results


class _Reporter:
    """A progress bar over jobs on stderr, or JSON lines on stdout."""

    def __init__(self, json_lines: bool):
        self.json = json_lines
        self.bar = None
        self.total = 0
        self.count = 0

    def _line(self, obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def __call__(self, event: dict):
        if "total" in event:
            self.total = event["total"]
            if not self.json:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, desc="jobs", unit="job", file=sys.stderr)
            self._progress(f"{self.total} job(s), {event['skipped']} finished before")
            if event["skipped"] and self.bar is not None:
                self.bar.update(event["skipped"])
            return
        if "message" in event:
            if self.json:
                self._line({"stage": "log", "message": event["message"]})
            elif self.bar is not None:
                self.bar.write(event["message"], file=sys.stderr)
            else:
                print(event["message"], file=sys.stderr)
            return
        if event.get("done"):
            self.count += 1
            text = f"{event['job']}: {event['status']}" + (f" ({event['error']})" if event.get("error") else "")
            if self.json:
                self._line({"job": event["job"], "status": event["status"], "error": event.get("error")})
                self._progress(text)
            elif self.bar is not None:
                if event["status"] == "failed":
                    self.bar.write(f"hsi-detect batch: {text}", file=sys.stderr)
                if event["status"] != "skipped":
                    self.bar.update(1)

    def _progress(self, message: str):
        if self.json:
            frac = self.count / self.total if self.total else 1.0
            self._line({"stage": "batch", "fraction": round(frac, 4), "overall": round(frac, 4), "message": message})

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def main(args) -> int:
    """Run ``hsi-detect batch`` from parsed arguments; returns the exit status."""
    from ..cli import EXIT_CANCELLED, EXIT_ERROR, exit_for

    reporter = _Reporter(args.json_progress)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if args.cancel_on_stdin:
        def watch():
            for line in sys.stdin:
                if line.strip().lower() == "cancel":
                    break
            stop.set()

        threading.Thread(target=watch, daemon=True).start()

    def fail(kind: str, message: str, code: int) -> int:
        reporter.close()
        if args.json_progress:
            reporter._line({"error": message, "kind": kind})
        print(f"hsi-detect: error: {message}", file=sys.stderr)
        return code

    try:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise HsiDetectError("hsi-detect batch needs Dask: install dask and distributed into the engine's "
                                 "environment (make install does; or pip install dask distributed).") from None
        jobs, manifest, results = _load(args)
        from .runner import run_batch

        summary = run_batch(jobs, manifest=manifest, results=results, scheduler=args.scheduler,
                            n_jobs=args.parallel, threads_per_job=args.threads_per_job,
                            memory_limit=args.memory_limit, gpus_per_job=args.gpus_per_job, force=args.force,
                            on_event=reporter, should_stop=stop.is_set)
    except Exception as exc:
        return exit_for(exc, args.debug, fail)
    reporter.close()
    result = {k: summary[k] for k in ("jobs", "done", "skipped", "failed", "cancelled", "manifest", "results")}
    if args.json_progress:
        reporter._line({"result": result})
    else:
        print(f"{summary['jobs']} job(s): {summary['done']} done, {summary['skipped']} skipped (finished before), "
              f"{summary['failed']} failed" + (f", {summary['cancelled']} not run" if summary["cancelled"] else ""))
        print(f"results: {summary['results']['csv']} and {summary['results']['markdown']}")
        print(f"manifest: {manifest}")
    if summary["cancelled_batch"]:
        return fail("cancelled", "The batch was cancelled; finished jobs are in the manifest and a re-run resumes.",
                    EXIT_CANCELLED)
    return EXIT_ERROR if summary["failed"] else EXIT_OK
