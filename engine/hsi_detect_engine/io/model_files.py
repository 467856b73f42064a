"""Trained-model files: safetensors weights plus a JSON header, never pickles.

One file holds the network weights, the scaling statistics (as tensors) and, in the
header, the method name, the band count, the band wavelengths (when the image had them)
and the hyper-parameters needed to rebuild the network. Loading executes nothing from the file.
"""

from __future__ import annotations

import json

from .. import __version__
from ..errors import HsiDetectError
from ..parameters import check_model_config
from .paths import check_input_path

FORMAT = "hsi-detect-model"
FORMAT_VERSION = "1"
METHOD_TITLES = {"bs3lnet": "BS3LNet (anomaly detection)", "hypernet": "HyperNet (change detection)"}
# Tensors besides the network's weights: the input scaling a BS3LNet model was trained with, one value per band.
SCALING_TENSORS = {"bs3lnet": ("scaling.offset", "scaling.scale"), "hypernet": ()}


def save_model(path: str, method: str, tensors: dict, config: dict) -> str:
    """Write tensors (name -> torch.Tensor) and a JSON-able config to ``path`` (a run's temporary)."""
    from safetensors.torch import save_file

    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "method": method,
              "engine_version": __version__, "config": json.dumps(config, sort_keys=True)}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path, metadata=header)
    return path


WAVELENGTH_TOLERANCE = 1.0  # nm


def load_model(path: str, method: str, bands: int = None, wavelengths=None):
    """Read a model file written by save_model: returns (tensors, config).

    Refuses, with a clear message, a file that is not an hsi-detect model, a model of
    another method, a header whose settings are missing, of the wrong type or out of
    bounds (checked before any network is built from them), (when ``bands`` is given) a
    model trained on another band count, and (when both the model and the image carry
    wavelengths) a model trained on other wavelengths.
    """
    from safetensors import safe_open

    path = check_input_path(path)
    not_model = (f"{path} is not an hsi-detect model file. Give a file saved with --save-model "
                 "(SAVE_MODEL in QGIS), or leave the model out to train on the image.")
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:
        raise HsiDetectError(not_model) from None
    if header.get("format") != FORMAT:
        raise HsiDetectError(not_model)
    if header.get("method") != method:
        raise HsiDetectError(f"{path} holds a {METHOD_TITLES.get(header.get('method'), header.get('method'))} model, "
                             f"but this run needs a {METHOD_TITLES.get(method, method)} model.")
    try:
        config = json.loads(header["config"])
    except (KeyError, ValueError):
        raise HsiDetectError(not_model) from None
    config = check_model_config(method, config, path)
    for name in SCALING_TENSORS[method]:
        if name not in tensors or tensors[name].numel() != config["bands"]:
            raise HsiDetectError(f"{path} is damaged or was not written by this tool: it lacks the input scaling "
                                 f"({name}, one value per band). Train a new model.")
    if bands is not None and config["bands"] != bands:
        raise HsiDetectError(f"{path} was trained on {config.get('bands')} bands, but the image has {bands} "
                             "(after band selection). Use a model trained on the same bands, or train a new one.")
    trained = config.get("wavelengths")
    if wavelengths and trained:
        gaps = [abs(float(a) - float(b)) for a, b in zip(trained, wavelengths)]
        if len(trained) != len(wavelengths) or max(gaps) > WAVELENGTH_TOLERANCE:
            where = f"up to {max(gaps):.1f} nm apart" if len(trained) == len(wavelengths) else "of another count"
            raise HsiDetectError(f"{path} was trained on bands at {float(trained[0]):.1f}-{float(trained[-1]):.1f} nm, "
                                 f"but the image's bands lie at {wavelengths[0]:.1f}-{wavelengths[-1]:.1f} nm ({where}). "
                                 "Choose the same wavelengths as for training, or train a new model.")
    return tensors, config
