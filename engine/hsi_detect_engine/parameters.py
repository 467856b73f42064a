"""The detectors' method parameters, declared once: for the Python API, the CLI and the QGIS plugin.

Each Param holds a parameter's type, default, bounds, choices, dialog label, help text and,
where the default differs, the paper's value. ``resolve`` checks given values against it, so
that every way in refuses the same bad value with the same sentence. The CLI builds its
options from these lists; the plugin loads this file by path (it imports only the standard
library, so QGIS's Python can read it without torch or the engine package) and builds its
QGIS parameters from them.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Param:
    name: str  # python name; the CLI option is --name-with-dashes, the QGIS parameter NAME_IN_CAPITALS
    type: type  # int, float, bool or str (a str has choices)
    default: object
    label: str  # short label in the QGIS dialog
    help: str  # one paragraph: CLI --help and the QGIS parameter's help
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    above_minimum: bool = False  # the minimum itself is refused
    below_maximum: bool = False  # the maximum itself is refused
    choices: Optional[tuple] = None
    paper: object = None  # the paper's value where the default differs from it
    advanced: bool = False  # under "Advanced parameters" in QGIS
    odd: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """The allowed values in words, e.g. 'between 0 and 1' or 'at least 3'."""
        low = None if self.minimum is None else ("above " if self.above_minimum else "at least ") + _num(self.minimum)
        high = None if self.maximum is None else ("below " if self.below_maximum else "at most ") + _num(self.maximum)
        if low and high and not (self.above_minimum or self.below_maximum):
            return f"between {_num(self.minimum)} and {_num(self.maximum)}"
        return " and ".join(x for x in (low, high) if x)


class Parameters(list):
    """One method's parameters, with its name for messages and its rules that tie two or more together."""

    def __init__(self, title: str, params: list, rules: Callable[[dict], Optional[str]] = None):
        super().__init__(params)
        self.title = title
        self.rules = rules


def _num(x) -> str:
    return repr(x) if isinstance(x, float) and not float(x).is_integer() else str(int(x))


BS3LNET = Parameters("BS3LNet", [
    Param("patch_size", int, 19, "Patch size (pixels, odd)",
          "Side of the square training patches in pixels, an odd number.", minimum=3, maximum=255, odd=True),
    Param("ratio", float, 0.9, "Share of patch pixels that are not blind",
          "Share of each patch's pixels that are not blind: n = ceil(P x P x (1 - ratio)) pixels of a P x P "
          "patch are blind, the centre among them.", minimum=0, maximum=1, below_maximum=True, advanced=True),
    Param("window", int, 5, "Replacement window (pixels, odd)",
          "A blind pixel takes the spectrum of a random neighbour inside this window, an odd number of pixels.",
          minimum=3, maximum=255, odd=True, advanced=True),
    Param("features", int, 64, "Feature channels", "Width of the network: its feature channels.",
          minimum=1, maximum=512, advanced=True),
    Param("blocks", int, 2, "Residual blocks", "Depth of the network: its residual blocks.",
          minimum=0, maximum=16, advanced=True),
    Param("norm", str, "batch", "Normalisation layers", "Normalisation layers of the network: batch (the paper) or "
          "instance normalisation.", choices=("batch", "instance"), advanced=True),
    Param("loss", str, "l1", "Loss at the blind pixels", "Training loss at the blind pixels: l1 (the paper) or l2.",
          choices=("l1", "l2"), advanced=True),
    Param("learning_rate", float, 1e-4, "Learning rate", "Learning rate of the Adam optimiser: the size of its training steps.", minimum=0, maximum=1,
          above_minimum=True, advanced=True),
    Param("beta1", float, 0.5, "Adam beta1", "Adam's beta1, the decay of its first moment.", minimum=0, maximum=1,
          below_maximum=True, advanced=True),
    Param("weight_decay", float, 1e-5, "Weight decay", "Weight decay of the Adam optimiser: it pulls the weights towards 0.", minimum=0,
          maximum=1, advanced=True),
    Param("batch_size", int, 100, "Batch size (patches)", "Patches per training batch.", minimum=1,
          maximum=100000, advanced=True),
    Param("iterations", int, 100, "Training iterations (batches)",
          "Training budget in batches of BATCH_SIZE patches; used when EPOCHS is 0. Chosen by measuring AUC "
          "against training time: longer training barely helps and can hurt, as the network learns to "
          "reproduce anomalies.", minimum=0, maximum=10**7),
    Param("epochs", float, 0.0, "Training epochs (0: use iterations)",
          "Training budget as the paper counts it: one epoch is one patch per valid pixel. Overrides ITERATIONS "
          "when above 0. The paper's 1000 epochs take about a day on a 2-core CPU for 100 x 100 pixels.",
          minimum=0, maximum=10**5, paper=1000),
    Param("scaling", str, "standardize", "Input scaling",
          "Input scaling, fitted on the valid pixels and saved with a model: none uses the values as stored, "
          "standardize rescales each band to zero mean and unit variance (measured the most accurate), minmax "
          "maps the whole cube to one 0..1 range.", choices=("none", "standardize", "minmax"), paper="none"),
    Param("redraw", bool, True, "Draw new blind pixels for every batch",
          "Yes: draw new blind positions for every batch, as Noise2Void does. No: draw them once per pixel and "
          "reuse them every epoch, as the authors' code does.", paper="no", advanced=True),
    Param("score", str, "mse+rx", "Score formula",
          "Anomaly score of a pixel: mse+rx, the reconstruction error fused with RX of the image, RX measuring each "
          "pixel half as it is and half as the mean of its alike neighbours (the roots of both standardised by "
          "their median and MAD and summed, then averaged over each pixel's 3 x 3 neighbours weighted by how alike "
          "they look in the image's first three principal components; on the 19 benchmark scenes it never fell "
          "more than 0.005 AUC below RX, where mse fell up to 0.07 below, and its binary maps were the better "
          "ones); mse, "
          "the mean squared reconstruction residual in the input's units (the paper's score; the scaling then only "
          "conditions training); mse-scaled, the same in the scaled units; or rx, the Mahalanobis distance of the "
          "residual.", choices=("mse", "mse-scaled", "rx", "mse+rx"), paper="mse", advanced=True),
    Param("score_rounds", int, 0, "Blind scoring rounds",
          "0: score the unmasked image in one pass (the paper). R > 0: R rounds of blind passes in which every "
          "pixel is scored while blind, as in training.", minimum=0, maximum=1000, advanced=True),
    Param("tile_size", int, 0, "Detection tile size (pixels, 0: automatic)",
          "Scenes are scored in overlapping tiles of this size, which give the whole-image scores; 0 takes the "
          "whole image when it fits in memory.", minimum=0, advanced=True),
], rules=lambda p: None if p["iterations"] > 0 or p["epochs"] > 0 else
    "BS3LNet needs a training budget: give iterations or epochs above 0.")

MIN_HIDDEN = 16  # channel attention divides the hidden width by 16
MIN_CROP = 32


def _hypernet_rules(p: dict) -> Optional[str]:
    if 0 < p["hidden"] < MIN_HIDDEN:
        return (f"HyperNet parameter hidden must be 0 (automatic) or at least {MIN_HIDDEN} (got {p['hidden']}): "
                f"channel attention divides it by {MIN_HIDDEN}.")
    if 0 < p["crop_size"] < MIN_CROP:
        return f"HyperNet parameter crop_size must be 0 (automatic) or at least {MIN_CROP} (got {p['crop_size']})."
    return None


HYPERNET = Parameters("HyperNet", [
    Param("hidden", int, 0, "Hidden width (0: automatic)",
          f"Hidden width h; the fused features have 2h channels. 0 takes half the band count rounded to a multiple "
          f"of 8, at least {MIN_HIDDEN} (the paper used 64 for 126-127 bands); otherwise at least {MIN_HIDDEN}.",
          minimum=0, maximum=512, advanced=True),
    Param("gamma", float, 1.0, "Focal exponent", "Exponent of the focal cosine loss; 0 is the plain cosine.",
          minimum=0, maximum=100, advanced=True),
    Param("learning_rate", float, 0.05, "Learning rate", "Learning rate of the SGD optimiser, decayed along a cosine to 0.",
          minimum=0,
          maximum=10, above_minimum=True, advanced=True),
    Param("momentum", float, 0.9, "Momentum", "Momentum of the SGD optimiser.", minimum=0, maximum=1, below_maximum=True,
          advanced=True),
    Param("weight_decay", float, 1e-4, "Weight decay", "Weight decay of the SGD optimiser: it pulls the weights towards 0.", minimum=0,
          maximum=1, advanced=True),
    Param("epochs", int, 200, "Training epochs",
          "Training epochs; one epoch is one forward and backward pass of both dates (or of one crop of them).",
          minimum=1, maximum=10**6),
    Param("scaling", str, "none", "Input scaling",
          "Input scaling of each date: none uses the values as stored (the paper); standardize rescales each band "
          "of each date on its own to zero mean and unit variance.", choices=("none", "standardize"), advanced=True),
    Param("training_pixels", str, "cva-fraction", "Unchanged training pixels (without a mask)",
          "How the pixels believed unchanged are chosen when no training mask is given: the lowest "
          "TRAINING_FRACTION of the change-vector magnitude of the standardised dates (cva-fraction), the pixels "
          "below its Otsu threshold (cva-otsu), the lowest fraction of the spectral angle (angle-fraction), or all "
          "valid pixels (all).", choices=("cva-fraction", "cva-otsu", "angle-fraction", "all")),
    Param("training_fraction", float, 0.5, "Fraction of pixels to train on",
          "Share of the valid pixels kept by the *-fraction rules of TRAINING_PIXELS.", minimum=0, maximum=1,
          above_minimum=True),
    Param("crop_size", int, 64, "Training crop size (pixels, 0: automatic)",
          f"Train on random square crops of this many pixels a side (0, or at least {MIN_CROP}), one per epoch; "
          "small crops measured more accurate and are much faster. 0 uses the whole image every epoch when it "
          "fits in memory, as the paper, else the largest crop that fits.", minimum=0, paper=0, advanced=True),
    Param("tile_size", int, 0, "Detection tile size (pixels, 0: automatic)",
          "Features are computed in overlapping tiles of this size, which give the whole-image result; 0 takes the "
          "whole image when it fits in memory.", minimum=0, advanced=True),
    Param("score", str, "cosine-cva", "Change magnitude formula",
          "Change magnitude of a pixel: mse, the mean squared difference of the two dates' fused features (the "
          "paper); cosine, one minus their cosine similarity (blind to a common scaling of the feature vector); or "
          "cosine-cva, the root of the cosine distance times the change-vector magnitude of the standardised "
          "dates, high only where both the learned features and the spectra changed (measured best).",
          choices=("mse", "cosine", "cosine-cva"), paper="mse", advanced=True),
    Param("bn_statistics", str, "date", "BatchNorm statistics at detection",
          "Statistics the BatchNorm layers normalise with at detection: date, each date's own over its valid "
          "pixels, as training normalised each date; or running, the averages kept during training over both "
          "dates, which fail when the dates differ in radiometry.", choices=("running", "date"), paper="running",
          advanced=True),
    Param("threshold_transform", str, "sqrt", "Scale of the automatic threshold",
          "Scale on which the automatic threshold (Otsu, k-means, minimum error) cuts the change magnitude for the "
          "binary map: sqrt (for cosine-cva the geometric mean of the two distances, for mse the root-mean-square "
          "feature distance), log, or none (the magnitude itself, as the paper thresholds the mse).",
          choices=("sqrt", "log", "none"), paper="none", advanced=True),
], rules=_hypernet_rules)

METHODS = {"bs3lnet": BS3LNET, "hypernet": HYPERNET}
# What a saved model fixes: the parameters that shape the network and its input.
MODEL_KEYS = {"bs3lnet": ("features", "blocks", "norm", "scaling"), "hypernet": ("hidden", "scaling")}

# How a score is cut into a binary map (thresholds.py); 'value' and 'fraction' need a number.
THRESHOLDS = ("hysteresis", "false-alarm", "otsu", "kmeans", "min-error", "value", "fraction")
# The hysteresis rule's settings, measured on the 19 anomaly scenes (RX and BS3LNet; seeds at 0.003 or regions
# grown to 0.02 did worse): its seeds' and its regions' false-alarm rates are the expected false-alarm rate
# divided and multiplied by HYSTERESIS_SPREAD (0.001 and 0.009 at the default 0.003), and a region covering more
# than MAX_OBJECT_SHARE of the valid pixels counts as background.
HYSTERESIS_SPREAD, MAX_OBJECT_SHARE = 3.0, 0.02
THRESHOLD_HELP = ("hysteresis (regions seeded by the pixels above the false-alarm cut at a third of the expected "
                  "false-alarm rate and grown through the 8-connected pixels above the cut at three times it; a "
                  f"region covering more than {100 * MAX_OBJECT_SHARE:g} percent of the pixels is dropped as "
                  "background: anomalies are small "
                  "compact objects, false alarms scattered), false-alarm (a background model fitted to the bulk of "
                  "the scores, cut where it expects the false-alarm rate: for a small anomalous tail), otsu "
                  "(automatic), kmeans (two clusters), min-error (Kittler-Illingworth minimum error), value (a given "
                  "score) or fraction (a given share of the highest-scoring pixels)")
# The default rule of each kind of map: anomalies are a small tail of compact objects (measured on the 19 anomaly
# scenes, bench/results/studies/anomaly_thresholds.md); changes are a class of their own, where Otsu measured best.
ANOMALY_THRESHOLD, CHANGE_THRESHOLD = "hysteresis", "otsu"
FALSE_ALARM_RATE = Param("false_alarm_rate", float, 0.003, "Expected false-alarm rate (hysteresis, false-alarm)",
                         "Share of the background pixels expected above the cut of a background model fitted to the "
                         "bulk of the scores. The method false-alarm cuts there; hysteresis seeds its regions at a "
                         "third of it and grows them through the cut at three times it. Lower: fewer, surer "
                         "detections. Default 0.003 (BS3LNet: 0.001), the best mean F1 over the 19 anomaly scenes.",
                         minimum=0, maximum=0.5, above_minimum=True, below_maximum=True)
# BS3LNet's default score is smoothed (bs3lnet/fusion.py): neighbours' scores move together, so hysteresis grows
# further through them, and a third of the rate gave its maps' best mean F1 (bench/results/studies/anomaly_thresholds.md).
METHOD_FALSE_ALARM_RATES = {"bs3lnet": 0.001}


def default_false_alarm_rate(method: str) -> float:
    """The expected false-alarm rate a run of ``method`` uses unless one is given."""
    return METHOD_FALSE_ALARM_RATES.get(method, FALSE_ALARM_RATE.default)


SEED = Param("seed", int, 1, "Random seed", "Seed of the random numbers (weights, sampling): the same seed on the "
             "same device gives the same result.", minimum=0, maximum=2**31 - 1)  # a QGIS spin box holds 32 bits
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
MEMORY_LIMIT = Param("memory_limit", str, "", "Memory limit (e.g. 4GB; empty: automatic)",
                     "Memory the run may take, such as 4GB, 512MB or 2G (powers of 1024). A scene whose processing "
                     "fits well inside it is processed whole; a larger one is read, scored and written window by "
                     "window (RX, CVA, the accuracy assessment; BS3LNet and HyperNet through a scratch copy of the "
                     "scaled scene). Empty: half of the memory available when the run starts, at most 2GB.", advanced=True)


def parse_yes_no(text: str) -> Optional[bool]:
    """A yes/no parameter typed as text (a command line, a job list's cell): True, False, or None
    when the text is neither."""
    t = str(text).strip().lower()
    if t in ("1", "yes", "true", "on"):
        return True
    if t in ("0", "no", "false", "off"):
        return False
    return None


def _error(message: str):
    from .errors import HsiDetectError

    return HsiDetectError(message)


def check(param: Param, value, title: str):
    """``value`` converted to the parameter's type, or an HsiDetectError naming the parameter."""
    what = f"{title} parameter {param.name}"
    if param.type is bool:
        numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool")
        if not isinstance(value, bool) and not numpy_bool:  # numpy's bool (bool_ before numpy 2) is no bool subclass
            raise _error(f"{what} must be True or False (got {value!r}).")
        return bool(value)
    if param.type is str:
        if not isinstance(value, str) or value not in param.choices:
            raise _error(f"{what} must be one of {', '.join(param.choices)} (got {value!r}).")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _error(f"{what} must be a number (got {value!r}).")
    if not math.isfinite(value):
        raise _error(f"{what} must be a finite number (got {value!r}).")
    if param.type is int:
        if not float(value).is_integer():
            raise _error(f"{what} must be a whole number (got {value!r}).")
        value = int(value)
    shown = value if isinstance(value, int) else repr(float(value))
    value = param.type(value)
    low, high = param.minimum, param.maximum
    if ((low is not None and (value < low or (param.above_minimum and value == low)))
            or (high is not None and (value > high or (param.below_maximum and value == high)))):
        raise _error(f"{what} must be {param.allowed()} (got {shown}).")
    if param.odd and value % 2 == 0:
        raise _error(f"{what} must be an odd number (got {value}).")
    return value


def resolve(params: Parameters, given: Optional[dict]) -> dict:
    """Defaults overlaid with the given values (None keeps the default), each checked against
    its declaration; unknown names and broken rules are refused with an HsiDetectError."""
    given = dict(given or {})
    names = [p.name for p in params]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise _error(f"Unknown {params.title} parameter(s): {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
    out = {}
    for p in params:
        value = given.get(p.name)
        out[p.name] = p.default if value is None else check(p, value, params.title)
    broken = params.rules(out) if params.rules else None
    if broken:
        raise _error(broken)
    return out


def check_run_options(seed, device: str) -> int:
    """The seed (returned as an int) and the device's name, checked before anything is read."""
    seed = check(SEED, seed, "Run")
    if not isinstance(device, str) or not DEVICE.fullmatch(device.strip().lower()):
        raise _error(f"{device!r} is not a device name. Use auto, cpu, cuda or cuda:N.")
    return seed


def check_threshold(method: str, value=None, fraction=None, rate=FALSE_ALARM_RATE.default):
    """The threshold method of a binary map and the number it needs, checked before anything is computed."""
    if method not in THRESHOLDS:
        raise _error(f"Threshold method must be one of {', '.join(THRESHOLDS)} (got {method!r}).")
    check(FALSE_ALARM_RATE, rate, "Threshold")
    if method == "value" and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                              or not math.isfinite(value)):
        raise _error(f"Threshold method 'value' needs a threshold value, a finite number (got {value!r}).")
    if method == "fraction" and (isinstance(fraction, bool) or not isinstance(fraction, numbers.Real)
                                 or not 0 < fraction < 1):
        raise _error(f"Threshold method 'fraction' needs the top fraction of pixels to mark, between 0 and 1 "
                     f"(got {fraction!r}).")


def refuse_network_options(method: str, network: str, params: Optional[dict], model, save_model):
    """A classical method (rx, cva) trains no network: its network's options are refused, not ignored."""
    if model or save_model:
        raise _error(f"Method {method} trains no network, so it can neither apply nor save a model: leave out the "
                     f"model options (--model, --save-model), or use method {network}.")
    given = sorted(k for k, v in (params or {}).items() if v is not None)
    if given:
        raise _error(f"Method {method} takes no {METHODS[network].title} parameters (got {', '.join(given)}): "
                     f"leave them out, or use method {network}.")


def check_model_config(method: str, config, path: str) -> dict:
    """A model file's header: the band count and the parameters that shape the network, checked
    (types, bounds, choices) before anything is built from them."""
    damaged = f"{path} is damaged or was not written by this tool"
    if not isinstance(config, dict):
        raise _error(f"{damaged}: its header holds no settings. Train a new model.")
    params = METHODS[method]
    missing = [k for k in ("bands",) + MODEL_KEYS[method] if k not in config]
    if missing:
        raise _error(f"{damaged}: its header lacks {', '.join(missing)}. Train a new model.")
    bands = config["bands"]
    if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1:
        raise _error(f"{damaged}: its band count {bands!r} is not a whole number above 0. Train a new model.")
    from .errors import HsiDetectError

    out = dict(config)
    by_name = {p.name: p for p in params}
    for key in MODEL_KEYS[method]:
        try:
            out[key] = check(by_name[key], config[key], params.title)
        except HsiDetectError as exc:
            raise _error(f"{damaged}: {str(exc).rstrip('.')}. Train a new model.") from None
    if method == "hypernet" and out["hidden"] < MIN_HIDDEN:
        raise _error(f"{damaged}: its hidden width {out['hidden']} is below {MIN_HIDDEN}. Train a new model.")
    wavelengths = config.get("wavelengths")
    if wavelengths is not None and not (
            isinstance(wavelengths, list) and len(wavelengths) == bands
            and all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) for w in wavelengths)):
        raise _error(f"{damaged}: its wavelengths are not {bands} numbers, one per band. Train a new model.")
    return out
