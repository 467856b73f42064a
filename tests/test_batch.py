"""hsi-detect batch: job lists on Dask, the manifest (resume), the results table, a killed worker,
and a scheduler with workers started as separate processes (loopback addresses only)."""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed")

from hsi_detect_engine.batch.jobs import read_job_list  # noqa: E402
from hsi_detect_engine.batch.runner import local_gpu_count, plan_local, run_batch  # noqa: E402
from hsi_detect_engine.errors import HsiDetectError  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..")
DEMO = os.path.abspath(os.path.join(ROOT, "data", "demo"))
URBAN = os.path.join(DEMO, "hydice_urban.tif")
URBAN_GT = os.path.join(DEMO, "hydice_urban_gt.tif")
T1, T2, TZ_GT = (os.path.join(DEMO, f) for f in ("taizhou_2000.tif", "taizhou_2003.tif", "taizhou_gt.tif"))
BIN = os.path.dirname(sys.executable)
COLUMNS = ["name", "command", "method", "input", "input2", "output", "binary", "ground_truth", "iterations",
           "batch_size", "epochs", "crop_size"]


def cli(*args, timeout=600):
    """The CLI as a user runs it; the environment (PYTHONPATH) passes on to Dask's workers."""
    return subprocess.run([sys.executable, "-m", "hsi_detect_engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def write_jobs(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in COLUMNS})


def read_results(prefix):
    with open(str(prefix) + ".csv", newline="") as fh:
        return {r["job"]: r for r in csv.DictReader(fh)}


def manifest_lines(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def four_jobs(tmp_path, iterations=2):
    bad = tmp_path / "scene_bad.tif"
    bad.write_text("not a raster\n")
    return [
        {"name": "urban_rx", "command": "anomaly", "method": "rx", "input": URBAN, "output": "out/urban_rx.tif",
         "binary": "out/urban_rx_bin.tif", "ground_truth": URBAN_GT},
        {"name": "urban_bs3", "command": "anomaly", "method": "bs3lnet", "input": URBAN,
         "output": "out/urban_bs3.tif", "iterations": iterations, "batch_size": 10},
        {"name": "taizhou", "command": "change", "method": "hypernet", "input": T1, "input2": T2,
         "output": "out/taizhou.tif", "ground_truth": TZ_GT, "epochs": 2, "crop_size": 32},
        {"name": "bad", "command": "anomaly", "method": "rx", "input": "scene_bad.tif", "output": "out/bad.tif"},
    ]


def test_four_jobs_failure_resume_and_parameter_change(tmp_path):
    jobs = tmp_path / "jobs.csv"
    write_jobs(jobs, four_jobs(tmp_path))
    out = tmp_path / "out"
    r = cli("batch", str(jobs), "--jobs", "2", "--threads-per-job", "1")
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p for p in os.listdir(out) if p.endswith(".tif")) == [
        "taizhou.tif", "urban_bs3.tif", "urban_rx.tif", "urban_rx_bin.tif"]
    table = read_results(tmp_path / "jobs.results")
    assert [table[j]["status"] for j in ("urban_rx", "urban_bs3", "taizhou", "bad")] == ["done"] * 3 + ["failed"]
    assert "not a raster" in table["bad"]["error"] and "\n" not in table["bad"]["error"]
    assert float(table["urban_rx"]["auc"]) > 0.9 and table["urban_rx"]["kappa"] and table["urban_rx"]["f1"]
    assert float(table["taizhou"]["auc"]) > 0.5 and table["urban_bs3"]["auc"] == ""
    assert all(float(table[j]["peak_memory_mib"]) > 10 for j in table)
    assert table["urban_bs3"]["device"].startswith("cpu")
    md = (tmp_path / "jobs.results.md").read_text()
    assert md.count("\n") == 2 + 4 and "| urban_rx |" in md
    manifest = tmp_path / "jobs.manifest.jsonl"
    recs = manifest_lines(manifest)
    assert sorted(r["status"] for r in recs) == ["done"] * 3 + ["failed"]
    done = {r["job"]: r for r in recs if r["status"] == "done"}
    assert set(done["urban_rx"]["outputs"]) == {str(out / "urban_rx.tif"), str(out / "urban_rx_bin.tif")}
    assert done["urban_bs3"]["settings"]["params"]["iterations"] == 2
    assert URBAN in done["urban_bs3"]["inputs"] and "size" in done["urban_bs3"]["inputs"][URBAN]
    mtimes = {p: os.stat(out / p).st_mtime_ns for p in os.listdir(out)}

    # second run: the three finished jobs are skipped, the failed one runs again (and fails again)
    r = cli("batch", str(jobs), "--jobs", "2", "--threads-per-job", "1", "--json-progress")
    assert r.returncode == 1
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1]["result"]["skipped"] == 3 and events[-1]["result"]["failed"] == 1
    assert {e["job"]: e["status"] for e in events if "job" in e} == {
        "urban_rx": "skipped", "urban_bs3": "skipped", "taizhou": "skipped", "bad": "failed"}
    recs2 = manifest_lines(manifest)
    assert len(recs2) == 5 and recs2[-1]["job"] == "bad"
    assert {p: os.stat(out / p).st_mtime_ns for p in os.listdir(out)} == mtimes
    table = read_results(tmp_path / "jobs.results")
    assert table["urban_rx"]["status"] == "skipped" and table["urban_rx"]["auc"]  # figures kept from the manifest

    # a changed parameter re-runs that job only; a repaired input makes the failed job run through;
    # a job whose output was removed (or changed) since is not finished any more
    write_jobs(jobs, four_jobs(tmp_path, iterations=3))
    shutil.copy(URBAN, tmp_path / "scene_bad.tif")
    os.remove(out / "urban_rx_bin.tif")
    r = cli("batch", str(jobs), "--jobs", "2", "--threads-per-job", "1", "--results", str(tmp_path / "third"))
    assert r.returncode == 0, r.stderr
    table = read_results(tmp_path / "third")
    assert {j: t["status"] for j, t in table.items()} == {
        "urban_rx": "done", "urban_bs3": "done", "taizhou": "skipped", "bad": "done"}
    recs3 = manifest_lines(manifest)[5:]
    assert sorted(r["job"] for r in recs3) == ["bad", "urban_bs3", "urban_rx"]
    assert os.path.exists(out / "urban_rx_bin.tif")
    assert os.stat(out / "taizhou.tif").st_mtime_ns == mtimes["taizhou.tif"]
    assert os.stat(out / "urban_bs3.tif").st_mtime_ns != mtimes["urban_bs3.tif"]


@pytest.mark.parametrize("rows, expected", [
    ([{"command": "classify", "input": URBAN, "output": "o.tif"}], "line 2: unknown command 'classify'"),
    ([{"command": "anomaly", "method": "rx", "input": URBAN, "output": "a.tif"},
      {"command": "anomaly", "input": "missing.tif", "output": "b.tif"}], "line 3: input file not found"),
    ([{"command": "anomaly", "input": URBAN, "output": "o.tif", "crop_size": "8"}],
     "line 2: 'crop_size' is not a parameter of anomaly jobs"),
    ([{"command": "anomaly", "input": URBAN, "output": "o.tif", "iterations": "many"}],
     "line 2: iterations 'many' is not an integer"),
    ([{"command": "anomaly", "input": URBAN, "output": "o.tif", "iterations": "-5"}],
     "line 2: BS3LNet parameter iterations must be between 0 and 10000000 (got -5)"),
    ([{"command": "change", "input": T1, "output": "o.tif"}], "line 2: the input2 column is empty"),
    ([{"command": "anomaly", "method": "cva", "input": URBAN, "output": "o.tif"}], "unknown anomaly method 'cva'"),
    ([{"command": "anomaly", "input": URBAN, "output": "o.tif"}, {"command": "anomaly", "input": URBAN,
                                                                  "output": "o.tif"}], "line 3 writes"),
])
def test_bad_job_list_is_refused_up_front(tmp_path, rows, expected):
    jobs = tmp_path / "jobs.csv"
    write_jobs(jobs, rows)
    with pytest.raises(HsiDetectError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        read_job_list(str(jobs))


def test_bad_job_list_from_the_command_line(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"command,input,output,colour\nanomaly,{URBAN},o.tif,red\n")
    r = cli("batch", str(jobs))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("hsi-detect: error:")]
    assert len(lines) == 1 and "unknown column(s) colour" in lines[0]
    assert not (tmp_path / "jobs.manifest.jsonl").exists()
    yaml_jobs = tmp_path / "jobs.yaml"
    yaml_jobs.write_text(f"- command: anomaly\n  input: {URBAN}\n  output: o.tif\n  seed: x\n")
    r = cli("batch", str(yaml_jobs))
    assert r.returncode == 1 and "jobs.yaml job 1: seed 'x' is not an integer" in r.stderr
    r = cli("batch")
    assert r.returncode == 1 and "Give a job list" in r.stderr


def test_local_cluster_plan():
    assert plan_local(cores=16) == {"jobs": 4, "threads_per_job": 4, "cores": 16, "gpus": 0}
    assert plan_local(cores=2) == {"jobs": 1, "threads_per_job": 2, "cores": 2, "gpus": 0}
    assert plan_local(jobs=3, cores=12)["threads_per_job"] == 4
    assert plan_local(threads_per_job=1, cores=6)["jobs"] == 6
    if local_gpu_count() == 0:
        with pytest.raises(HsiDetectError, match="CUDA GPU"):
            plan_local(gpus_per_job=1, cores=2)


def _engine_children(pid):
    import psutil

    try:
        return [c for c in psutil.Process(pid).children(recursive=True)
                if "hsi_detect_engine.cli" in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def test_killed_worker_does_not_lose_its_job(tmp_path):
    import psutil
    from distributed import Client, LocalCluster

    write_jobs(tmp_path / "jobs.csv", [
        {"name": "slow", "command": "anomaly", "method": "bs3lnet", "input": URBAN, "output": "out/slow.tif",
         "iterations": 3, "batch_size": 10}])
    jobs = read_job_list(str(tmp_path / "jobs.csv"))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        outcome = {}
        runner = threading.Thread(target=lambda: outcome.update(run_batch(
            jobs, manifest=str(tmp_path / "m.jsonl"), results=str(tmp_path / "r"), client=client,
            threads_per_job=1)))
        runner.start()
        victim = child = None
        deadline = time.time() + 120
        while victim is None and time.time() < deadline:
            for addr, pid in pids.items():
                kids = _engine_children(pid)
                if kids:
                    victim, victim_address, child = pid, addr, kids[0]
            time.sleep(0.2)
        assert victim is not None, "the job never started"
        time.sleep(1.0)  # the engine is under way
        os.kill(victim, signal.SIGTERM)
        # the engine process of the dead worker stops too (its stdin closed / parent died), writing nothing
        gone, alive = psutil.wait_procs([child], timeout=30)
        assert not alive
        runner.join(timeout=400)
        assert not runner.is_alive()
    assert outcome["done"] == 1 and outcome["failed"] == 0
    rec = manifest_lines(tmp_path / "m.jsonl")[-1]
    assert rec["status"] == "done" and os.path.exists(tmp_path / "out" / "slow.tif")
    assert rec["worker"] != victim_address  # it ran again, on another (or the restarted) worker
    assert not [p for p in os.listdir(tmp_path / "out") if "partial" in p]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduler_and_workers_as_separate_processes(tmp_path):
    """As on a cluster: `dask scheduler` and `dask worker` processes; here on loopback addresses only."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = os.path.join(BIN, "dask")
    logs = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=logs, stderr=subprocess.STDOUT)]
    try:
        time.sleep(1.0)
        for _ in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--host", "127.0.0.1", "--nworkers", "1",
                                           "--nthreads", "1", "--no-dashboard"], stdout=logs, stderr=subprocess.STDOUT))
        for name in ("a", "b"):
            shutil.copy(URBAN, tmp_path / f"{name}.tif")
        out = tmp_path / "maps"
        r = cli("batch", "--glob", str(tmp_path / "*.tif"), "--output-dir", str(out), "--method", "rx",
                "--binary", "--ground-truth", URBAN_GT, "--scheduler", address, "--json-progress")
        assert r.returncode == 0, r.stderr + open(tmp_path / "dask.log").read()[-3000:]
        assert sorted(os.listdir(out)) == sorted(["a_anomaly.tif", "a_anomaly.qml", "a_anomaly_binary.tif",
                                                  "a_anomaly_binary.qml", "b_anomaly.tif", "b_anomaly.qml",
                                                  "b_anomaly_binary.tif", "b_anomaly_binary.qml",
                                                  "batch.manifest.jsonl", "batch.results.csv", "batch.results.md"])
        table = read_results(out / "batch.results")
        assert [t["status"] for t in table.values()] == ["done", "done"]
        assert all(float(t["auc"]) > 0.9 for t in table.values())
        # GPU jobs go only to workers that declared a GPU: these did not
        r = cli("batch", "--glob", str(tmp_path / "*.tif"), "--output-dir", str(out), "--method", "rx",
                "--scheduler", address, "--gpus-per-job", "1", "--force")
        assert r.returncode == 1 and "--resources GPU=1" in r.stderr
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


def test_manifest_needs_unchanged_outputs(tmp_path):
    from hsi_detect_engine.batch.manifest import Manifest, sha256_file

    out = tmp_path / "o.tif"
    out.write_bytes(b"score")
    book = Manifest(str(tmp_path / "m.jsonl"))
    book.append({"key": "k", "status": "done", "outputs": {str(out): sha256_file(str(out))}})
    with open(tmp_path / "m.jsonl", "a") as fh:
        fh.write('{"key": "cut sho')  # a line cut short by a killed batch is ignored
    book = Manifest(str(tmp_path / "m.jsonl"))
    assert book.finished("k") and not book.finished("other")
    book.append({"key": "k2", "status": "failed"})
    assert Manifest(str(tmp_path / "m.jsonl")).records["k2"]["status"] == "failed"
    out.write_bytes(b"changed")
    assert not book.finished("k")
