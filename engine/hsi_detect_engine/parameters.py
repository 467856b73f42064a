"""The detectors' method parameters, declared once for the CLI and the pipelines.

Importing this module imports no torch, so the CLI can build its options quickly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Param:
    name: str  # python name; the CLI option is --name-with-dashes
    type: type
    default: object
    help: str
    choices: Optional[tuple] = None
    paper: object = None  # the paper's value where the default differs from it

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


BS3LNET: list = [
    Param("patch_size", int, 19, "training patch size in pixels (odd)"),
    Param("ratio", float, 0.9, "share of patch pixels that are not blind; n = ceil(P*P*(1 - ratio)) are blind"),
    Param("window", int, 5, "window (odd) inside which a blind pixel takes a neighbour's spectrum"),
    Param("features", int, 64, "feature channels of the network"),
    Param("blocks", int, 2, "residual blocks of the network"),
    Param("norm", str, "batch", "normalisation layers", choices=("batch", "instance")),
    Param("loss", str, "l1", "loss at the blind pixels", choices=("l1", "l2")),
    Param("learning_rate", float, 1e-4, "Adam learning rate"),
    Param("beta1", float, 0.5, "Adam beta1"),
    Param("weight_decay", float, 1e-5, "Adam weight decay"),
    Param("batch_size", int, 100, "patches per training batch"),
    Param("iterations", int, 100, "training iterations (batches of patches); used when epochs is 0. Chosen by "
          "measuring AUC against training time: longer training barely helps and can hurt, as the network "
          "learns to reproduce anomalies"),
    Param("epochs", float, 0.0, "training epochs as the paper counts them (one patch per valid pixel each); "
          "overrides iterations when above 0. The paper's 1000 epochs take about a day on a 2-core CPU for "
          "100 x 100 pixels", paper=1000),
    Param("scaling", str, "standardize", "input scaling, fitted on the valid pixels and saved with a model: "
          "none (values as stored), standardize (per band), minmax (one global [0, 1] range); per-band "
          "standardisation measured best", choices=("none", "standardize", "minmax"), paper="none"),
    Param("redraw", bool, True, "draw new blind positions for every batch, as Noise2Void does (no: draw them once "
          "per pixel and reuse them every epoch, as the authors' code does)", paper="no"),
    Param("score", str, "mse", "anomaly score of a pixel: mse, the mean squared reconstruction residual in the "
          "input's units (the paper's score; the scaling then only conditions training), mse-scaled, the same in "
          "the scaled units, or rx, the Mahalanobis distance of the residual", choices=("mse", "mse-scaled", "rx")),
    Param("score_rounds", int, 0, "0: score the unmasked image in one pass (the paper); R > 0: R rounds of blind "
          "passes in which every pixel is scored while blind, as in training"),
    Param("tile_size", int, 0, "detection tile size in pixels (0: the whole image when it fits in memory, else "
          "overlapping tiles that give the same scores)"),
]
HYPERNET: list = [
    Param("hidden", int, 0, "hidden width h; the fused features have 2h channels (0: B/2 rounded to a multiple "
          "of 8, at least 16)"),
    Param("gamma", float, 1.0, "focal exponent of the focal cosine loss (0: plain cosine)"),
    Param("learning_rate", float, 0.05, "SGD learning rate, decayed along a cosine"),
    Param("momentum", float, 0.9, "SGD momentum"),
    Param("weight_decay", float, 1e-4, "SGD weight decay"),
    Param("epochs", int, 200, "training epochs; one epoch is one forward and backward pass of both dates "
          "(or of one crop of them)"),
    Param("scaling", str, "none", "input scaling of each date: none (values as stored) or per-band "
          "standardisation of each date on its own", choices=("none", "standardize")),
    Param("training_pixels", str, "cva-fraction", "how the unchanged training pixels are chosen when no training "
          "mask is given: lowest fraction of the change-vector magnitude of the standardised dates, below its "
          "Otsu threshold, lowest fraction of the spectral angle, or all valid pixels",
          choices=("cva-fraction", "cva-otsu", "angle-fraction", "all")),
    Param("training_fraction", float, 0.5, "fraction of the valid pixels kept by the *-fraction rules"),
    Param("crop_size", int, 64, "train on random square crops of this many pixels a side, one per epoch "
          "(0: the whole image every epoch, as the paper, when it fits in memory, else the largest crop that "
          "fits); small crops measured more accurate and are much faster", paper=0),
    Param("tile_size", int, 0, "detection tile size in pixels (0: whole image when it fits in memory); tiles "
          "give the whole-image result"),
    Param("score", str, "cosine-cva", "change magnitude of a pixel: mse (mean squared difference of the two dates' "
          "fused features, the paper), cosine (one minus their cosine similarity, blind to a common scaling of the "
          "feature vector), or cosine-cva (the root of the cosine distance times the change-vector magnitude of "
          "the standardised dates: high only where both the learned features and the spectra changed; measured "
          "best)", choices=("mse", "cosine", "cosine-cva"), paper="mse"),
    Param("bn_statistics", str, "date", "statistics the BatchNorm layers normalise with at detection: running "
          "(averages kept during training, over both dates) or date (each date's own, over its valid pixels, as "
          "training normalised each date; the running averages fail when the dates differ in radiometry)",
          choices=("running", "date"), paper="running"),
    Param("threshold_transform", str, "sqrt", "scale on which the automatic threshold (Otsu, k-means, minimum "
          "error) cuts the change magnitude for the binary map: sqrt (for cosine-cva the geometric mean of the two "
          "distances, for mse the root-mean-square feature distance), log, or none (the magnitude itself, as the "
          "paper thresholds the mse)", choices=("sqrt", "log", "none"), paper="none"),
]


def resolve(params: list, given: Optional[dict]) -> dict:
    """Defaults overlaid with the given values; unknown names are refused."""
    from .errors import HsiDetectError

    given = dict(given or {})
    names = {p.name for p in params}
    unknown = sorted(set(given) - names)
    if unknown:
        raise HsiDetectError(f"Unknown parameter(s): {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
    out = {p.name: p.default for p in params}
    for k, v in given.items():
        if v is not None:
            out[k] = v
    return out
