"""The batch job list: read a CSV or YAML list (or a glob of inputs), check every row up front.

Each job becomes a ``Job``: the command and files, the run options and the detector
parameters under their engine names, and the argument list of the ``hsi-detect`` call
that runs it. A job list with a problem is refused before anything runs, with one
sentence that names the row.
"""

from __future__ import annotations

import csv
import glob as globmod
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Optional

from ..errors import HsiDetectError
from ..parameters import (ANOMALY_THRESHOLD, BS3LNET, CHANGE_THRESHOLD, HYPERNET, THRESHOLDS, check,
                          default_false_alarm_rate, parse_yes_no, resolve)

COMMANDS = {"anomaly": ("bs3lnet", "rx"), "change": ("hypernet", "cva")}
PARAMS = {"anomaly": BS3LNET, "change": HYPERNET}
ALL_PARAM_NAMES = sorted({p.name for p in BS3LNET} | {p.name for p in HYPERNET})

# Files read by a job and files written by it (columns that hold paths).
INPUT_COLUMNS = ("input", "input2", "ground_truth", "training_mask", "model")
OUTPUT_COLUMNS = ("output", "binary", "anomalous_change", "objects", "save_model")
CHANGE_ONLY = ("input2", "anomalous_change", "training_mask", "grid")
# Run options of the engine call, with how a cell is read.
OPTION_COLUMNS = ("bands", "threshold", "threshold_value", "top_fraction", "false_alarm_rate", "device", "seed",
                  "grid")
KNOWN_COLUMNS = ("name", "command", "method") + INPUT_COLUMNS + OUTPUT_COLUMNS + OPTION_COLUMNS


@dataclass
class Job:
    """One row of the job list, checked and with absolute paths."""

    index: int  # 0-based position in the list
    where: str  # "line 3" of a CSV, "job 2" of a YAML list, "input scene.tif" of a glob
    name: str
    command: str
    method: str
    files: dict  # column -> absolute path, for the path columns given
    options: dict  # run options given (bands, threshold, ..., seed)
    params: dict  # detector parameters given, typed

    @property
    def inputs(self) -> list:
        return [self.files[c] for c in INPUT_COLUMNS if c in self.files]

    @property
    def outputs(self) -> list:
        return [self.files[c] for c in OUTPUT_COLUMNS if c in self.files]

    def settings(self) -> dict:
        """Everything that decides the result besides the input files: resolved against the defaults."""
        opts = {"threshold": ANOMALY_THRESHOLD if self.command == "anomaly" else CHANGE_THRESHOLD, "device": "auto",
                "seed": 1, "bands": None, "threshold_value": None, "top_fraction": None,
                "false_alarm_rate": default_false_alarm_rate(self.method)}
        if self.command == "change":
            opts["grid"] = "resample"
        opts.update(self.options)
        params = resolve(PARAMS[self.command], self.params) if self.method in ("bs3lnet", "hypernet") else {}
        return {"command": self.command, "method": self.method, "options": opts, "params": params}

    def key(self) -> str:
        """Hash of the job: its inputs (path, size, modification time), settings and outputs."""
        stats = []
        for p in self.inputs:
            st = os.stat(p)
            stats.append([p, st.st_size, st.st_mtime_ns])
        text = json.dumps({"settings": self.settings(), "inputs": stats, "outputs": self.outputs},
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def input_stats(self) -> dict:
        out = {}
        for p in self.inputs:
            st = os.stat(p)
            out[p] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        return out

    def argv(self) -> list:
        """The hsi-detect command line (without the program) that runs this job."""
        f = self.files
        if self.command == "anomaly":
            args = ["anomaly", f["input"], "--output", f["output"]]
        else:
            args = ["change", f["input"], f["input2"], "--output", f["output"]]
            if "anomalous_change" in f:
                args += ["--anomalous-change", f["anomalous_change"]]
            if "training_mask" in f:
                args += ["--training-mask", f["training_mask"]]
        for col in ("binary", "objects", "model", "save_model"):
            if col in f:
                args += ["--" + col.replace("_", "-"), f[col]]
        args += ["--method", self.method]
        for col in OPTION_COLUMNS:
            if col in self.options:
                args += ["--" + col.replace("_", "-"), str(self.options[col])]
        if self.method in ("bs3lnet", "hypernet"):
            by_name = {p.name: p for p in PARAMS[self.command]}
            for name, value in self.params.items():
                if by_name[name].type is bool:
                    value = "yes" if value else "no"
                args += [by_name[name].flag, str(value)]
        return args

    def spec(self) -> dict:
        """What a worker needs to run the job (plain data, cheap to send)."""
        return {"name": self.name, "argv": self.argv(), "outputs": self.outputs,
                "output": self.files["output"], "ground_truth": self.files.get("ground_truth")}


def _norm_column(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def _cell(value) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip()
    return text if text else None


def _typed(prm, text: str, where: str, title: str):
    """A parameter's cell as its value, checked against the declaration (type, bounds, choices)."""
    if prm.type is bool:
        value = parse_yes_no(text)
        if value is None:
            raise HsiDetectError(f"{where}: {prm.name} '{text}' is not yes or no.")
    elif prm.type is str:
        value = text
    else:
        try:
            value = float(text) if prm.type is int else prm.type(text)  # "5.0" from a spreadsheet is 5
            if prm.type is int and not value.is_integer():
                raise ValueError
        except ValueError:
            kind = "an integer" if prm.type is int else "a number"
            raise HsiDetectError(f"{where}: {prm.name} '{text}' is not {kind}.") from None
    try:
        return check(prm, value, title)
    except HsiDetectError as exc:
        raise HsiDetectError(f"{where}: {exc}") from None


def _path(text: str, base: str) -> str:
    return os.path.abspath(os.path.join(base, os.path.expanduser(text)))


def make_job(index: int, where: str, row: dict, base: str, defaults: Optional[dict] = None) -> Job:
    """Check one row (column -> cell text) and build its Job; relative paths are taken from ``base``."""
    cells = {k: v for k, v in ((_norm_column(k), _cell(v)) for k, v in row.items()) if v is not None}
    for k, v in (defaults or {}).items():
        if v is not None and k not in cells:
            cells[k] = str(v)
    command = cells.pop("command", None)
    if command is None:
        raise HsiDetectError(f"{where}: the command is empty; use anomaly or change.")
    command = command.lower()
    if command not in COMMANDS:
        raise HsiDetectError(f"{where}: unknown command '{command}'; use anomaly or change.")
    methods = COMMANDS[command]
    method = cells.pop("method", methods[0]).lower()
    if method not in methods:
        raise HsiDetectError(f"{where}: unknown {command} method '{method}'; use {' or '.join(methods)}.")
    if command == "anomaly":
        wrong = [c for c in CHANGE_ONLY if c in cells]
        if wrong:
            raise HsiDetectError(f"{where}: {', '.join(wrong)} only apply to change jobs.")
    for col in ("input", "output") + (("input2",) if command == "change" else ()):
        if col not in cells:
            raise HsiDetectError(f"{where}: the {col} column is empty.")
    files = {}
    for col in INPUT_COLUMNS + OUTPUT_COLUMNS:
        if col in cells:
            files[col] = _path(cells.pop(col), base)
    for col in INPUT_COLUMNS:
        if col in files and not os.path.isfile(files[col]):
            raise HsiDetectError(f"{where}: {col} file not found: {files[col]}")
    name = cells.pop("name", None) or os.path.splitext(os.path.basename(files["output"]))[0]
    options = {}
    for col in OPTION_COLUMNS:
        if col not in cells:
            continue
        text = cells.pop(col)
        if col in ("threshold_value", "top_fraction", "false_alarm_rate"):
            try:
                options[col] = float(text)
            except ValueError:
                raise HsiDetectError(f"{where}: {col} '{text}' is not a number.") from None
        elif col == "seed":
            try:
                options[col] = int(float(text))
            except ValueError:
                raise HsiDetectError(f"{where}: seed '{text}' is not an integer.") from None
        elif col == "threshold" and text not in THRESHOLDS:
            raise HsiDetectError(f"{where}: threshold '{text}' is not one of {', '.join(THRESHOLDS)}.")
        elif col == "grid" and text not in ("resample", "refuse"):
            raise HsiDetectError(f"{where}: grid '{text}' is not resample or refuse.")
        else:
            options[col] = text
    if options.get("threshold") == "value" and "threshold_value" not in options:
        raise HsiDetectError(f"{where}: threshold 'value' needs a threshold_value.")
    if options.get("threshold") == "fraction" and "top_fraction" not in options:
        raise HsiDetectError(f"{where}: threshold 'fraction' needs a top_fraction.")
    by_name = {p.name: p for p in PARAMS[command]}
    params = {}
    for col in list(cells):
        if col in by_name:
            params[col] = _typed(by_name[col], cells.pop(col), where, PARAMS[command].title)
        elif col in ALL_PARAM_NAMES:
            raise HsiDetectError(f"{where}: '{col}' is not a parameter of {command} jobs "
                                 f"(those are: {', '.join(sorted(by_name))}).")
    if cells:
        raise HsiDetectError(f"{where}: unknown column(s) {', '.join(sorted(cells))}.")
    return Job(index, where, name, command, method, files, options, params)


def _check_columns(columns, where: str):
    unknown = [c for c in columns if c and _norm_column(c) not in KNOWN_COLUMNS
               and _norm_column(c) not in ALL_PARAM_NAMES]
    if unknown:
        raise HsiDetectError(f"{where}: unknown column(s) {', '.join(unknown)}. Known columns: "
                             f"{', '.join(KNOWN_COLUMNS)} and the detector parameters "
                             f"({', '.join(ALL_PARAM_NAMES)}).")
    norm = [_norm_column(c) for c in columns if c]
    for col in ("command", "input", "output"):
        if col not in norm:
            raise HsiDetectError(f"{where}: the job list has no '{col}' column.")
    dup = sorted({c for c in norm if norm.count(c) > 1})
    if dup:
        raise HsiDetectError(f"{where}: column(s) {', '.join(dup)} appear twice.")


def read_job_list(path: str, defaults: Optional[dict] = None) -> list:
    """Jobs of a CSV (header row, then one row per job) or YAML (a list of mappings) job list."""
    if not os.path.isfile(path):
        raise HsiDetectError(f"Job list not found: {path}")
    base = os.path.dirname(os.path.abspath(path))
    rows = []
    if path.lower().endswith((".yaml", ".yml")):
        import yaml

        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh)
        except yaml.YAMLError as exc:
            raise HsiDetectError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if isinstance(data, dict) and "jobs" in data:
            data = data["jobs"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise HsiDetectError(f"{path}: a YAML job list is a list of mappings (one per job), "
                                 "or a mapping with such a list under 'jobs'.")
        columns = []
        for r in data:
            columns += [c for c in r if c not in columns]
        _check_columns(columns, path)
        rows = [(f"{os.path.basename(path)} job {i + 1}", r) for i, r in enumerate(data)]
    else:
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                lines = [ln for ln in fh.read().splitlines()]
        except UnicodeDecodeError:
            raise HsiDetectError(f"{path} is not a text (CSV) file.") from None
        numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
        if not numbered:
            raise HsiDetectError(f"{path} is empty.")
        reader = csv.reader([ln for _, ln in numbered])
        table = list(reader)
        header = [h.strip() for h in table[0]]
        _check_columns(header, path)
        for (lineno, _), cells in zip(numbered[1:], table[1:]):
            if len(cells) > len(header):
                raise HsiDetectError(f"{path} line {lineno}: {len(cells)} cells but {len(header)} columns.")
            rows.append((f"{os.path.basename(path)} line {lineno}", dict(zip(header, cells))))
    if not rows:
        raise HsiDetectError(f"{path} lists no jobs.")
    jobs = [make_job(i, where, row, base, defaults) for i, (where, row) in enumerate(rows)]
    check_jobs(jobs)
    return jobs


def jobs_from_glob(pattern: str, command: str, output_dir: str, *, pattern2: Optional[str] = None,
                   binary: bool = False, ground_truth: Optional[str] = None,
                   defaults: Optional[dict] = None) -> list:
    """One job per file matching ``pattern`` (for change: paired in sorted order with ``pattern2``)."""
    first = sorted(p for p in globmod.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
    if not first:
        raise HsiDetectError(f"No file matches {pattern}.")
    if command == "change":
        if not pattern2:
            raise HsiDetectError("A change batch from a glob needs --glob2 for the second dates "
                                 "(paired with --glob in sorted order); or use a job list.")
        second = sorted(p for p in globmod.glob(os.path.expanduser(pattern2)) if os.path.isfile(p))
        if len(second) != len(first):
            raise HsiDetectError(f"--glob matches {len(first)} file(s) but --glob2 {len(second)}; "
                                 "they are paired in sorted order and must match one to one.")
    elif pattern2:
        raise HsiDetectError("--glob2 only applies to change batches.")
    jobs = []
    for i, p in enumerate(first):
        stem = os.path.splitext(os.path.basename(p))[0]
        row = {"command": command, "input": p, "output": os.path.join(output_dir, f"{stem}_{command}.tif")}
        if command == "change":
            row["input2"] = second[i]
        if binary:
            row["binary"] = os.path.join(output_dir, f"{stem}_{command}_binary.tif")
        if ground_truth:
            row["ground_truth"] = ground_truth
        jobs.append(make_job(i, f"input {p}", row, os.getcwd(), defaults))
    check_jobs(jobs)
    return jobs


def check_jobs(jobs: list):
    """Refuse two jobs writing one file, and a job writing another job's input; make names unique."""
    written = {}
    for job in jobs:
        for out in job.outputs:
            if out in written:
                raise HsiDetectError(f"{job.where} writes {out}, which {written[out].where} writes too.")
            written[out] = job
    for job in jobs:
        for inp in job.inputs:
            if inp in written and written[inp] is not job:
                raise HsiDetectError(f"{job.where} reads {inp}, which {written[inp].where} writes; "
                                     "run them as two batches.")
    seen = {}
    for job in jobs:
        n = seen.get(job.name, 0)
        seen[job.name] = n + 1
        if n:
            job.name = f"{job.name}-{n + 1}"
