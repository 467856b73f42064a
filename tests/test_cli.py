"""The hsi-detect command: help, version, progress, results and error exit codes."""

import json
import os
import subprocess
import sys

import pytest

from hsi_detect_engine import __version__

ROOT = os.path.join(os.path.dirname(__file__), "..")
DEMO = os.path.join(ROOT, "data", "demo")
HSI_DETECT = os.path.join(os.path.dirname(sys.executable), "hsi-detect")


def run(*args, **kw):
    return subprocess.run([HSI_DETECT, *args], capture_output=True, text=True, timeout=300, **kw)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("anomaly", "change", "evaluate"):
        assert cmd in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"hsi-detect {__version__}"
    for cmd in ("anomaly", "change", "evaluate"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "--json-progress" in r.stdout


def test_bad_command_line_exits_2():
    r = run("anomaly")
    assert r.returncode == 2 and "required" in r.stderr
    r = run("nosuchcommand")
    assert r.returncode == 2


def test_bad_input_is_one_line_without_traceback(tmp_path):
    r = run("anomaly", str(tmp_path / "missing.tif"), "--output", str(tmp_path / "o.tif"), "--method", "rx")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("hsi-detect: error:")]
    assert len(lines) == 1 and "not found" in lines[0]
    assert not os.path.exists(tmp_path / "o.tif")


def test_debug_shows_the_traceback(tmp_path):
    r = run("anomaly", str(tmp_path / "missing.tif"), "--output", str(tmp_path / "o.tif"), "--method", "rx", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_json_progress_lines_and_result(tmp_path):
    out = tmp_path / "rx.tif"
    r = run("anomaly", os.path.join(DEMO, "hydice_urban.tif"), "--method", "rx", "--output", str(out),
            "--binary", str(tmp_path / "rx_bin.tif"), "--json-progress")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    stages = [e["stage"] for e in events if "stage" in e]
    assert "reading" in stages and "writing" in stages
    assert all(0.0 <= e["fraction"] <= 1.0 for e in events if "fraction" in e)
    result = events[-1]["result"]
    assert result["outputs"]["score"] == str(out) and os.path.exists(out)
    assert os.path.exists(tmp_path / "rx.qml") and os.path.exists(tmp_path / "rx_bin.qml")


def test_json_error_line_and_exit_code(tmp_path):
    r = run("change", os.path.join(DEMO, "taizhou_2000.tif"), os.path.join(DEMO, "hydice_urban.tif"),
            "--method", "cva", "--output", str(tmp_path / "c.tif"), "--json-progress")
    assert r.returncode == 1
    last = json.loads(r.stdout.splitlines()[-1])
    assert last["kind"] == "input" and "different band counts" in last["error"]


@pytest.mark.parametrize("args", [("--bands", "1,2,300"), ("--bands", "a-b")])
def test_band_errors(tmp_path, args):
    r = run("anomaly", os.path.join(DEMO, "hydice_urban.tif"), "--method", "rx", "--output", str(tmp_path / "o.tif"), *args)
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr
    assert "band" in r.stderr.lower()


def test_evaluate_with_report(tmp_path):
    score = tmp_path / "cva.tif"
    r = run("change", os.path.join(DEMO, "taizhou_2000.tif"), os.path.join(DEMO, "taizhou_2003.tif"), "--method", "cva",
            "--output", str(score))
    assert r.returncode == 0, r.stderr
    report = tmp_path / "report.html"
    r = run("evaluate", str(score), os.path.join(DEMO, "taizhou_gt.tif"), "--report", str(report), "--json-progress")
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout.splitlines()[-1])["result"]
    assert figures["auc"] > 0.95 and figures["labelled_pixels"] == 4227 + 17163
    html = report.read_text()
    assert "data:image/png;base64," in html and "Confusion matrix" in html
