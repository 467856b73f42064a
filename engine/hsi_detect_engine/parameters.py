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
    Param("iterations", int, 100, "training iterations (batches); used when epochs is 0"),
    Param("epochs", float, 0.0, "training epochs as the paper counts them (one patch per valid pixel each); "
          "overrides iterations when above 0", paper=1000),
    Param("scaling", str, "none", "input scaling, fitted on the valid pixels", choices=("none", "standardize", "minmax")),
    Param("redraw", bool, True, "draw new blind positions for every batch (no: draw them once per pixel, as the "
          "authors' code does)"),
    Param("score_rounds", int, 0, "0: score the unmasked image in one pass (the paper); R > 0: R rounds of blind "
          "passes in which every pixel is scored while blind"),
    Param("tile_size", int, 0, "detection tile size in pixels (0: whole image when it fits in memory)"),
]
HYPERNET: list = []


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
