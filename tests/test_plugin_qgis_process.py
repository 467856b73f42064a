"""The plugin in qgis_process.bin, with a throw-away profile in which it is enabled."""

import json
import os
import re

import pytest

from conftest import DEMO, run_qgis_process

HYDICE = os.path.join(DEMO, "hydice_urban.tif")


def test_the_provider_is_listed_and_the_profile_is_the_temporary_one(qgis_process_profile):
    profile, env = qgis_process_profile
    done = run_qgis_process(env, "list")
    assert done.returncode == 0, done.stderr
    block = done.stdout.split("Hyperspectral Detection\n", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"hsidetect:(\w+)", block)) == ["accuracy", "bs3lnet", "cva", "hypernet", "rx"]
    ini = profile / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    assert "hsi_detect_plugin=true" in ini.read_text()


def test_a_run_writes_its_output_and_reports_results_as_json(qgis_process_profile, tmp_path):
    _, env = qgis_process_profile
    out = tmp_path / "score.tif"
    done = run_qgis_process(env, "--json", "run", "hsidetect:bs3lnet", "--", f"INPUT={HYDICE}", f"OUTPUT={out}",
                            "BANDS=1", "BANDS=2", "BANDS=3", "ITERATIONS=2", "BATCH_SIZE=8", "FEATURES=8", "BLOCKS=1",
                            "SCALING=standardize", "THRESHOLD_METHOD=kmeans", f"OUTPUT_BINARY={tmp_path / 'b.tif'}")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["results"]["OUTPUT"] == str(out) and out.exists() and (tmp_path / "score.qml").exists()
    assert answer["results"]["OUTPUT_BINARY"] == str(tmp_path / "b.tif") and (tmp_path / "b.tif").exists()
    command = next(line for line in answer["log"]["info"] if "hsi_detect_engine.cli" in line)
    for option in ("--bands 1,2,3", "--threshold kmeans", "--scaling standardize", "--iterations 2"):
        assert option in command


def test_a_failed_run_exits_non_zero_with_the_error_on_stderr(qgis_process_profile, tmp_path):
    _, env = qgis_process_profile
    done = run_qgis_process(env, "run", "hsidetect:rx", "--", f"INPUT={HYDICE}", "BANDS=1", "BANDS=999",
                            f"OUTPUT={tmp_path / 'score.tif'}")
    assert done.returncode != 0
    assert "Band 999 is out of range" in done.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bands", ["5,6,7", "5-7"])
def test_a_typed_band_list_reaches_the_engine_unchanged(qgis_process_profile, tmp_path, bands):
    """Issue 11, case 8: BANDS=5,6,7 reached the engine as --bands 0."""
    _, env = qgis_process_profile
    out = tmp_path / "score.tif"
    done = run_qgis_process(env, "--json", "run", "hsidetect:rx", "--", f"INPUT={HYDICE}", f"BANDS={bands}",
                            f"OUTPUT={out}")
    assert done.returncode == 0, done.stderr
    command = next(line for line in json.loads(done.stdout)["log"]["info"] if "hsi_detect_engine.cli" in line)
    assert f"--bands {bands} " in command and out.exists()


def test_help_on_the_command_line_is_plain_text(qgis_process_profile):
    _, env = qgis_process_profile
    done = run_qgis_process(env, "help", "hsidetect:hypernet")
    assert done.returncode == 0, done.stderr
    assert "Hu, C. Wu and L. Zhang" in done.stdout and "TRAINING_MASK" in done.stdout
    ours = re.sub(r"<output\w+>", "", done.stdout)  # qgis_process's own markers of the output types
    assert not re.search(r"</?[a-zA-Z][^>]*>", ours)
