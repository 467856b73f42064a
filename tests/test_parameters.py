"""Method parameters and run options are checked where they are resolved: the Python API, the
CLI (and so the plugin, which runs the CLI) refuse the same bad value with the same sentence,
before any input is read or any network built."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from hsi_detect_engine import __version__
from hsi_detect_engine.anomaly import run_anomaly
from hsi_detect_engine.change import run_change
from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.bands import parse_band_ranges
from hsi_detect_engine.parameters import BS3LNET, HYPERNET, THRESHOLDS, resolve

DEMO = os.path.join(os.path.dirname(__file__), "..", "data", "demo")
HYDICE = os.path.join(DEMO, "hydice_urban.tif")
T1 = os.path.join(DEMO, "taizhou_2000.tif")
T2 = os.path.join(DEMO, "taizhou_2003.tif")
TAIZHOU_GT = os.path.join(DEMO, "taizhou_gt.tif")
HSI_DETECT = os.path.join(os.path.dirname(sys.executable), "hsi-detect")

BS3LNET_REFUSED = [
    ({"score": "nonsense"}, "BS3LNet parameter score must be one of mse, mse-scaled, rx, mse+rx (got 'nonsense')."),
    ({"norm": "bogus"}, "BS3LNet parameter norm must be one of batch, instance (got 'bogus')."),
    ({"loss": "xx"}, "BS3LNet parameter loss must be one of l1, l2 (got 'xx')."),
    ({"redraw": "no"}, "BS3LNet parameter redraw must be True or False (got 'no')."),
    ({"iterations": 2.7}, "BS3LNet parameter iterations must be a whole number (got 2.7)."),
    ({"iterations": True}, "BS3LNet parameter iterations must be a number (got True)."),
    ({"beta1": 2}, "BS3LNet parameter beta1 must be at least 0 and below 1 (got 2)."),
    ({"beta1": float("nan")}, "BS3LNet parameter beta1 must be a finite number (got nan)."),
    ({"ratio": 1.0}, "BS3LNet parameter ratio must be at least 0 and below 1 (got 1.0)."),
    ({"learning_rate": 0}, "BS3LNet parameter learning_rate must be above 0 and at most 1 (got 0)."),
    ({"patch_size": 18}, "BS3LNet parameter patch_size must be an odd number (got 18)."),
    ({"window": 1}, "BS3LNet parameter window must be between 3 and 255 (got 1)."),
    ({"features": 200000}, "BS3LNet parameter features must be between 1 and 512 (got 200000)."),
    ({"blocks": 100000}, "BS3LNet parameter blocks must be between 0 and 16 (got 100000)."),
    ({"iterations": 0}, "BS3LNet needs a training budget: give iterations or epochs above 0."),
    ({"nonsense": 1}, "Unknown BS3LNet parameter(s): nonsense."),
]
HYPERNET_REFUSED = [
    ({"score": "nonsense"}, "HyperNet parameter score must be one of mse, cosine, cosine-cva (got 'nonsense')."),
    ({"bn_statistics": "both"}, "HyperNet parameter bn_statistics must be one of running, date (got 'both')."),
    ({"scaling": "minmax"}, "HyperNet parameter scaling must be one of none, standardize (got 'minmax')."),
    ({"epochs": 2.5}, "HyperNet parameter epochs must be a whole number (got 2.5)."),
    ({"epochs": 0}, "HyperNet parameter epochs must be between 1 and 1000000 (got 0)."),
    ({"momentum": 1}, "HyperNet parameter momentum must be at least 0 and below 1 (got 1)."),
    ({"gamma": float("inf")}, "HyperNet parameter gamma must be a finite number (got inf)."),
    ({"learning_rate": -1.0}, "HyperNet parameter learning_rate must be above 0 and at most 10 (got -1.0)."),
    ({"training_fraction": 0}, "HyperNet parameter training_fraction must be above 0 and at most 1 (got 0)."),
    ({"hidden": 200000}, "HyperNet parameter hidden must be between 0 and 512 (got 200000)."),
    ({"hidden": 8}, "HyperNet parameter hidden must be 0 (automatic) or at least 16 (got 8)"),
    ({"crop_size": 5}, "HyperNet parameter crop_size must be 0 (automatic) or at least 32 (got 5)."),
    ({"crop_size": "64"}, "HyperNet parameter crop_size must be a number (got '64')."),
]


def run(*args):
    return subprocess.run([HSI_DETECT, *args], capture_output=True, text=True, timeout=300)


def one_error_line(done) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("hsi-detect: error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


# ----------------------------------------------------------------------------- the Python API

@pytest.mark.parametrize("given, message", BS3LNET_REFUSED)
def test_the_api_refuses_a_bad_bs3lnet_parameter_before_reading(tmp_path, given, message):
    with pytest.raises(HsiDetectError) as refused:
        run_anomaly(HYDICE, str(tmp_path / "s.tif"), params=given, device="cpu")
    assert str(refused.value).startswith(message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("given, message", HYPERNET_REFUSED)
def test_the_api_refuses_a_bad_hypernet_parameter_before_reading(tmp_path, given, message):
    with pytest.raises(HsiDetectError) as refused:
        run_change(T1, T2, str(tmp_path / "c.tif"), params=given, device="cpu")
    assert str(refused.value).startswith(message)
    assert os.listdir(tmp_path) == []


def test_resolve_keeps_the_defaults_and_converts_lossless_values():
    assert resolve(BS3LNET, {}) == {p.name: p.default for p in BS3LNET}
    assert resolve(HYPERNET, None) == {p.name: p.default for p in HYPERNET}
    p = resolve(BS3LNET, {"iterations": 7.0, "epochs": 2, "redraw": np.bool_(False), "beta1": np.float32(0.25)})
    assert (p["iterations"], p["epochs"], p["redraw"], p["beta1"]) == (7, 2.0, False, 0.25)
    assert type(p["iterations"]) is int and type(p["epochs"]) is float and type(p["redraw"]) is bool
    assert resolve(HYPERNET, {"hidden": 16, "crop_size": 0})["hidden"] == 16


@pytest.mark.parametrize("seed, device, message", [
    (10**20, "cpu", "Run parameter seed must be between 0 and 2147483647 (got 100000000000000000000)."),
    (-1, "cpu", "Run parameter seed must be between 0 and 2147483647 (got -1)."),
    (1.5, "cpu", "Run parameter seed must be a whole number (got 1.5)."),
    (1, "gpu", "'gpu' is not a device name. Use auto, cpu, cuda or cuda:N."),
])
def test_the_api_refuses_a_bad_seed_or_device_for_both_networks(tmp_path, seed, device, message):
    with pytest.raises(HsiDetectError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        run_anomaly(HYDICE, str(tmp_path / "s.tif"), seed=seed, device=device)
    with pytest.raises(HsiDetectError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        run_change(T1, T2, str(tmp_path / "c.tif"), seed=seed, device=device)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("threshold, value, fraction, message", [
    ("median", None, None, "Threshold method must be one of " + ", ".join(THRESHOLDS) + " (got 'median')."),
    ("value", None, None, "Threshold method 'value' needs a threshold value"),
    ("fraction", None, 1.5, "Threshold method 'fraction' needs the top fraction of pixels to mark"),
])
def test_the_api_refuses_a_bad_threshold_before_computing(tmp_path, threshold, value, fraction, message):
    for method in ("rx", "bs3lnet"):
        with pytest.raises(HsiDetectError, match=message.replace("(", r"\(").replace(")", r"\)")):
            run_anomaly(HYDICE, str(tmp_path / "s.tif"), binary=str(tmp_path / "b.tif"), method=method,
                        threshold=threshold, threshold_value=value, top_fraction=fraction)
    with pytest.raises(HsiDetectError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_change(T1, T2, str(tmp_path / "c.tif"), binary=str(tmp_path / "b.tif"), method="cva",
                   threshold=threshold, threshold_value=value, top_fraction=fraction)
    assert os.listdir(tmp_path) == []


def test_classical_methods_refuse_network_options_instead_of_ignoring_them(tmp_path):
    model = str(tmp_path / "m.safetensors")
    with pytest.raises(HsiDetectError, match="Method rx trains no network, so it can neither apply nor save"):
        run_anomaly(HYDICE, str(tmp_path / "s.tif"), method="rx", save_model=model)
    with pytest.raises(HsiDetectError, match="Method cva trains no network"):
        run_change(T1, T2, str(tmp_path / "c.tif"), method="cva", model=model)
    with pytest.raises(HsiDetectError, match=r"Method rx takes no BS3LNet parameters \(got iterations\)"):
        run_anomaly(HYDICE, str(tmp_path / "s.tif"), method="rx", params={"iterations": 5})
    with pytest.raises(HsiDetectError, match=r"Method cva takes no HyperNet parameters \(got epochs\)"):
        run_change(T1, T2, str(tmp_path / "c.tif"), method="cva", params={"epochs": 5})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("text", [",", "", " , ,"])
def test_a_band_list_that_names_no_band_is_refused(text):
    with pytest.raises(HsiDetectError, match="names no band"):
        parse_band_ranges(text)


# ----------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("args, phrase", [
    (("--beta1", "2"), "BS3LNet parameter beta1 must be at least 0 and below 1 (got 2.0)."),
    (("--beta1", "nan"), "BS3LNet parameter beta1 must be a finite number (got nan)."),
    (("--seed", "99999999999999999999"), "Run parameter seed must be between 0 and 2147483647"),
    (("--method", "rx", "--model", HYDICE), "Method rx trains no network"),
    (("--method", "rx", "--save-model", "m.safetensors"), "Method rx trains no network"),
])
def test_cli_anomaly_refuses_bad_values_with_exit_1_and_one_line(tmp_path, args, phrase):
    done = run("anomaly", HYDICE, "--output", str(tmp_path / "s.tif"), "--device", "cpu", *args)
    assert phrase in one_error_line(done)
    assert os.listdir(tmp_path) == []


def test_cli_change_refuses_model_options_with_cva(tmp_path):
    done = run("change", T1, T2, "--output", str(tmp_path / "c.tif"), "--method", "cva",
               "--save-model", str(tmp_path / "m.safetensors"))
    assert "Method cva trains no network" in one_error_line(done)
    assert os.listdir(tmp_path) == []


def test_cli_refuses_a_band_list_that_names_no_band(tmp_path):
    done = run("anomaly", HYDICE, "--output", str(tmp_path / "s.tif"), "--method", "rx", "--bands", ",")
    assert done.returncode == 2 and "names no band" in done.stderr and "Traceback" not in done.stderr
    assert os.listdir(tmp_path) == []


def test_cli_evaluate_refuses_a_multi_band_map(tmp_path):
    done = run("evaluate", T1, TAIZHOU_GT)
    line = one_error_line(done)
    assert "has 6 bands, but the map must have one" in line and "one-band raster" in line


# ----------------------------------------------------------------------------- crafted model files

def craft_model(path, method: str, config: dict, tensors: dict):
    import torch
    from safetensors.torch import save_file

    header = {"format": "hsi-detect-model", "format_version": "1", "method": method, "engine_version": __version__,
              "config": json.dumps(config)}
    save_file({k: torch.as_tensor(v) for k, v in tensors.items()}, str(path), metadata=header)
    return str(path)


HYDICE_BANDS = 162
GOOD_BS3LNET = {"bands": HYDICE_BANDS, "features": 8, "blocks": 1, "norm": "batch", "scaling": "none"}
SCALING = {"scaling.offset": np.zeros(HYDICE_BANDS, np.float32), "scaling.scale": np.ones(HYDICE_BANDS, np.float32)}


@pytest.mark.parametrize("change, tensors, phrase", [
    ({"blocks": 100000}, SCALING, "BS3LNet parameter blocks must be between 0 and 16 (got 100000)"),
    ({"norm": "bogus"}, SCALING, "BS3LNet parameter norm must be one of batch, instance (got 'bogus')"),
    ({"features": 8.5}, SCALING, "BS3LNet parameter features must be a whole number (got 8.5)"),
    ({"scaling": None}, SCALING, "its header lacks scaling"),
    ({"bands": "abc"}, SCALING, "its band count 'abc' is not a whole number above 0"),
    ({}, {}, "it lacks the input scaling (scaling.offset, one value per band)"),
])
def test_a_crafted_bs3lnet_model_is_refused_before_any_network_is_built(tmp_path, change, tensors, phrase):
    config = {k: v for k, v in dict(GOOD_BS3LNET, **change).items() if v is not None}
    model = craft_model(tmp_path / "crafted.safetensors", "bs3lnet", config, dict(tensors, w=np.zeros(3, np.float32)))
    with pytest.raises(HsiDetectError) as refused:
        run_anomaly(HYDICE, str(tmp_path / "s.tif"), model=model, device="cpu")
    assert "is damaged or was not written by this tool" in str(refused.value) and phrase in str(refused.value)
    assert sorted(os.listdir(tmp_path)) == ["crafted.safetensors"]


def test_cli_refuses_a_crafted_model_that_claims_a_huge_network_with_exit_1(tmp_path):
    model = craft_model(tmp_path / "crafted.safetensors", "bs3lnet", dict(GOOD_BS3LNET, features=200000),
                        dict(SCALING, w=np.zeros(3, np.float32)))
    done = run("anomaly", HYDICE, "--output", str(tmp_path / "s.tif"), "--device", "cpu", "--model", model)
    line = one_error_line(done)
    assert "is damaged or was not written by this tool" in line
    assert "BS3LNet parameter features must be between 1 and 512 (got 200000)" in line
    assert sorted(os.listdir(tmp_path)) == ["crafted.safetensors"]


@pytest.mark.parametrize("change, phrase", [
    ({"hidden": 200000}, "HyperNet parameter hidden must be between 0 and 512 (got 200000)"),
    ({"hidden": 8}, "its hidden width 8 is below 16"),
    ({"scaling": "bogus"}, "HyperNet parameter scaling must be one of none, standardize (got 'bogus')"),
    ({"wavelengths": ["abc"] * 6}, "its wavelengths are not 6 numbers, one per band"),
    ({"wavelengths": [500.0] * 5}, "its wavelengths are not 6 numbers, one per band"),
])
def test_a_crafted_hypernet_model_is_refused_before_any_network_is_built(tmp_path, change, phrase):
    config = dict({"bands": 6, "hidden": 16, "scaling": "none"}, **change)
    model = craft_model(tmp_path / "crafted.safetensors", "hypernet", config, {"w": np.zeros(3, np.float32)})
    with pytest.raises(HsiDetectError) as refused:
        run_change(T1, T2, str(tmp_path / "c.tif"), model=model, device="cpu")
    assert "is damaged or was not written by this tool" in str(refused.value) and phrase in str(refused.value)
    assert sorted(os.listdir(tmp_path)) == ["crafted.safetensors"]
