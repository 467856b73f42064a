"""Outputs are all-or-nothing and a user's earlier files are never lost (issue 11).

Each numbered case of the issue has a test that failed before the output transaction;
the rest guard what already held. CLI runs go through a real child process.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from osgeo import gdal

from hsi_detect_engine.anomaly import run_anomaly
from hsi_detect_engine.change import run_change
from hsi_detect_engine.errors import Cancelled, HsiDetectError
from hsi_detect_engine.io.bands import parse_band_ranges, select_bands
from hsi_detect_engine.progress import Progress
from measure import tmpfs

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEMO = os.path.join(ROOT, "data", "demo")
HYDICE = os.path.join(DEMO, "hydice_urban.tif")
T1, T2 = os.path.join(DEMO, "taizhou_2000.tif"), os.path.join(DEMO, "taizhou_2003.tif")


def cli(*args, preexec_fn=None, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "engine"))
    return subprocess.run([sys.executable, "-m", "hsi_detect_engine.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, preexec_fn=preexec_fn)


def previous_outputs(folder, *names) -> dict:
    """Write an 'earlier output' under each name (and its .qml); return name -> bytes of every file there."""
    for name in names:
        (folder / name).write_bytes(b"OLD " + name.encode())
        (folder / (os.path.splitext(name)[0] + ".qml")).write_bytes(b"OLD STYLE " + name.encode())
    return snapshot(folder)


def snapshot(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def one_sentence_error(done, code=1, *phrases):
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("hsi-detect: error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


# --------------------------------------------------------------------------- case 1: a failed run deletes nothing

def test_case1_failed_change_run_keeps_the_previous_outputs(tmp_path):
    before = previous_outputs(tmp_path, "c.tif", "b.tif")
    done = cli("change", T1, T2, "-o", str(tmp_path / "c.tif"), "--binary", str(tmp_path / "b.tif"),
               "--method", "cva", "--threshold", "value")
    one_sentence_error(done, 1, "needs a threshold value")
    assert snapshot(tmp_path) == before


def test_case1_failed_anomaly_run_keeps_the_previous_outputs(tmp_path):
    before = previous_outputs(tmp_path, "s.tif", "b.tif")
    done = cli("anomaly", HYDICE, "-o", str(tmp_path / "s.tif"), "--binary", str(tmp_path / "b.tif"),
               "--method", "rx", "--threshold", "fraction", "--top-fraction", "2")
    one_sentence_error(done, 1, "between 0 and 1")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- case 2: options checked before work

@pytest.mark.parametrize("options,phrase", [(["--threshold", "value"], "needs a threshold value"),
                                            (["--threshold", "fraction"], "needs the top fraction"),
                                            (["--threshold", "fraction", "--top-fraction", "0"], "between 0 and 1")])
def test_case2_threshold_options_are_refused_before_training(tmp_path, options, phrase):
    before = previous_outputs(tmp_path, "s.tif")
    done = cli("anomaly", HYDICE, "-o", str(tmp_path / "s.tif"), "--binary", str(tmp_path / "b.tif"),
               "--save-model", str(tmp_path / "m.safetensors"), "--iterations", "2", "--json-progress", *options)
    assert done.returncode == 1
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert not [e for e in events if e.get("stage") in ("reading", "preparing", "training")]
    assert phrase in events[-1]["error"]
    assert snapshot(tmp_path) == before


def test_case2_in_process_the_pipelines_check_before_reading(tmp_path):
    for run in (lambda: run_anomaly(str(tmp_path / "missing.tif"), str(tmp_path / "s.tif"), method="rx",
                                    threshold="value"),
                lambda: run_change(T1, str(tmp_path / "missing.tif"), str(tmp_path / "c.tif"), method="cva",
                                   threshold="kittler")):
        with pytest.raises(HsiDetectError, match="(?i)threshold"):  # not "Input file not found"
            run()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- case 3: cancel while writing

def cancel_at(stage, fraction):
    """A Progress whose callback sets the cancel flag at the given event (as a signal would)."""
    events = []

    def callback(event):
        events.append(event)
        if event.get("stage") == stage and event.get("fraction") == fraction:
            progress.cancel()

    progress = Progress(callback)
    return progress, events


def run_pipeline(kind, folder, progress):
    if kind == "anomaly":
        return run_anomaly(HYDICE, str(folder / "s.tif"), binary=str(folder / "b.tif"), method="rx",
                           progress=progress)
    return run_change(T1, T2, str(folder / "s.tif"), anomalous=str(folder / "a.tif"), binary=str(folder / "b.tif"),
                      method="cva", progress=progress)


@pytest.mark.parametrize("kind", ["anomaly", "change"])
def test_case3_cancel_at_the_writing_event_leaves_the_previous_outputs(tmp_path, kind):
    before = previous_outputs(tmp_path, "s.tif", "a.tif", "b.tif")
    progress, events = cancel_at("writing", 0.0)
    with pytest.raises(Cancelled, match="no output was written"):
        run_pipeline(kind, tmp_path, progress)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["anomaly", "change"])
@pytest.mark.parametrize("fraction", [0.9, 1.0])
def test_case3_a_cancel_after_the_last_check_changes_nothing(tmp_path, kind, fraction):
    previous_outputs(tmp_path, "s.tif", "a.tif", "b.tif")
    progress, events = cancel_at("writing", fraction)
    summary = run_pipeline(kind, tmp_path, progress)
    assert progress.cancel_event.is_set() and events[-1]["fraction"] == 1.0
    for path in summary["outputs"].values():
        assert gdal.Open(path).RasterXSize > 0
        with open(os.path.splitext(path)[0] + ".qml") as style:
            assert style.read().startswith("<!DOCTYPE qgis")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


# --------------------------------------------------------------------------- case 4: outputs on one path

@pytest.mark.parametrize("args", [
    ["anomaly", HYDICE, "-o", "s.tif", "--binary", "s.tif", "--method", "rx"],
    ["anomaly", HYDICE, "-o", "s.tif", "--binary", "s.img", "--method", "rx"],
    ["anomaly", HYDICE, "-o", "s.tif", "--save-model", "s.tif", "--iterations", "2"],
    ["anomaly", HYDICE, "-o", "s.tif", "--save-model", "s.qml", "--iterations", "2"],
    ["change", T1, T2, "-o", "s.tif", "--anomalous-change", "s.tif", "--binary", "s.tif", "--method", "cva"],
    ["change", T1, T2, "-o", "s.tif", "--anomalous-change", "a.tif", "--binary", "./s.tif", "--method", "cva"],
])
def test_case4_two_outputs_on_one_file_are_refused(tmp_path, args):
    before = previous_outputs(tmp_path, "s.tif")
    done = subprocess.run([sys.executable, "-m", "hsi_detect_engine.cli", *args], capture_output=True, text=True,
                          cwd=tmp_path, env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "engine")), timeout=300)
    one_sentence_error(done, 1, "same file")
    assert snapshot(tmp_path) == before


def test_case4_an_output_style_may_not_replace_the_inputs_style(tmp_path):
    image = tmp_path / "scene.tif"
    shutil.copy(HYDICE, image)
    (tmp_path / "scene.qml").write_text("the user's own style")
    before = snapshot(tmp_path)
    done = cli("anomaly", str(image), "-o", str(tmp_path / "scene.img"), "--method", "rx")
    one_sentence_error(done, 1, "would overwrite", "scene.qml")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- case 5: full disk

def limit_file_size(size):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


def test_case5_a_write_that_fails_is_a_user_error_and_leaves_no_file(tmp_path):
    """A real write error without a mount: the process may write no file over 20 kB, so GDAL's
    write of the score map fails half-way (EFBIG, as ENOSPC would)."""
    before = previous_outputs(tmp_path, "s.tif")
    done = cli("anomaly", HYDICE, "-o", str(tmp_path / "s.tif"), "--binary", str(tmp_path / "b.tif"),
               "--method", "rx", preexec_fn=limit_file_size(20000))
    line = one_sentence_error(done, 1, "Cannot write", "s.tif")
    assert ".partial" not in line
    assert snapshot(tmp_path) == before


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        yield disk


def fill(disk, leave):
    """Fill the disk, leaving about ``leave`` bytes free."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_case5_a_full_disk_is_refused_before_the_run_and_leaves_no_file(small_disk):
    before = previous_outputs(small_disk, "s.tif")
    fill(small_disk, 16 * 1024)
    before = snapshot(small_disk)
    done = cli("anomaly", HYDICE, "-o", str(small_disk / "s.tif"), "--binary", str(small_disk / "b.tif"),
               "--method", "rx")
    one_sentence_error(done, 1, "Not enough free space")
    assert snapshot(small_disk) == before


def test_a_read_only_folder_is_refused_before_the_run(tmp_path):
    disk = tmp_path / "ro"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(disk)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        done = cli("anomaly", HYDICE, "-o", str(disk / "s.tif"), "--method", "rx", "--json-progress")
        one_sentence_error(done, 1, "Cannot write to the output folder")
        assert '"stage": "reading"' not in done.stdout
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_inputs_are_never_overwritten_by_path_symlink_or_hard_link(tmp_path):
    image = tmp_path / "scene.tif"
    shutil.copy(HYDICE, image)
    os.symlink(image, tmp_path / "symlink.tif")
    os.link(image, tmp_path / "hardlink.tif")
    before = snapshot(tmp_path)
    for name in ("scene.tif", "symlink.tif", "hardlink.tif"):
        for option in ("-o", "--binary"):
            args = ["-o", str(tmp_path / "s.tif")] if option == "--binary" else []
            done = cli("anomaly", str(image), *args, option, str(tmp_path / name), "--method", "rx")
            one_sentence_error(done, 1, "same file as input")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- case 7: huge band ranges

def test_case7_a_huge_band_range_is_refused_without_expanding_it(tmp_path):
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(HsiDetectError, match="Band 999999999 is out of range"):
        select_bands("1-999999999", 162, "image.tif")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20  # expanding the range would take gigabytes
    assert parse_band_ranges("1-999999999, 5") == [(1, 999999999), (5, 5)]
    done = cli("anomaly", HYDICE, "-o", str(tmp_path / "s.tif"), "--method", "rx", "--bands", "1-999999999",
               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30)))
    one_sentence_error(done, 1, "Band 999999999 is out of range", "1 to 162")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("text,phrase", [(",", "names no band"), ("", "names no band"), ("1-5,3", "twice"),
                                         ("5-1", "backwards"), ("a-b", "not a band number"), ("0-3", "Band 0")])
def test_meaningless_band_lists_are_refused(text, phrase):
    with pytest.raises(HsiDetectError, match=phrase):
        select_bands(text, 162)


def test_band_lists_select_in_the_order_given():
    assert select_bands("5-7,1", 10) == [5, 6, 7, 1]
    assert select_bands([3, 1], 10) == [3, 1] and select_bands(None, 3) == [1, 2, 3]


# --------------------------------------------------------------------------- killed runs, signals

def big_image(path, rows=1500, cols=1500, bands=3):
    rng = np.random.default_rng(0)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal.GDT_Float32)
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(rng.random((rows, cols), dtype=np.float32))
    ds = None
    return str(path)


def test_a_run_killed_outright_leaves_hidden_temporaries_that_the_next_run_removes(tmp_path):
    image = big_image(tmp_path / "big.tif")
    out = tmp_path / "out"
    out.mkdir()
    before = previous_outputs(out, "s.tif")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "engine"))
    proc = subprocess.Popen([sys.executable, "-m", "hsi_detect_engine.cli", "anomaly", image, "-o",
                             str(out / "s.tif"), "--binary", str(out / "b.tif"), "--method", "rx"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        # an output's temporary, not the folder's brief writability probe (.hsi-detect.*.partial)
        while proc.poll() is None and not [n for n in os.listdir(out) if ".partial" in n
                                           and not n.startswith(".hsi-detect.")]:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it wrote"
    left = set(snapshot(out)) - set(before)
    assert left and all(n.startswith(".") and f".{proc.pid}-" in n for n in left)
    assert {n: snapshot(out)[n] for n in before} == before
    done = cli("anomaly", HYDICE, "-o", str(out / "t.tif"), "--method", "rx")
    assert done.returncode == 0, done.stderr
    assert set(snapshot(out)) == set(before) | {"t.tif", "t.qml"}


def test_sigint_during_training_stops_quickly_with_exit_3_and_the_previous_output(tmp_path):
    before = previous_outputs(tmp_path, "s.tif")
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "engine"))
    proc = subprocess.Popen([sys.executable, "-m", "hsi_detect_engine.cli", "anomaly", HYDICE, "-o",
                             str(tmp_path / "s.tif"), "--save-model", str(tmp_path / "m.safetensors"),
                             "--iterations", "100000", "--json-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        if json.loads(line).get("stage") == "training":
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)  # 100,000 iterations would take hours: the signal stopped it
    assert proc.returncode == 3, err
    assert snapshot(tmp_path) == before
