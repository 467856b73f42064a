"""What both pipelines write once a score map is known: the binary map and the objects layer
cut from it, then the commit of all the run's outputs together."""

from __future__ import annotations

import time

import numpy as np

from .io.objects import write_detected_objects
from .io.transaction import OutputTransaction
from .io.writer import write_binary
from .progress import Progress
from .thresholds import binary_map


def write_detections(txn: OutputTransaction, score: np.ndarray, valid: np.ndarray, georef, meta: dict, *,
                     threshold: str, threshold_value, top_fraction, false_alarm_rate, transform: str = "none",
                     label: str, layer_name: str, score_name: str, count_key: str, min_object_size: int = 1) -> dict:
    """Cut ``score`` at the threshold and write the binary map and the objects layer, each when the
    transaction holds it. Returns the summary's entries: the threshold, the pixels above it (under
    ``count_key``) and the number of objects."""
    wants = {kind for kind in ("binary", "objects") if kind in txn.outputs}
    if not wants:
        return {}
    classes, found = binary_map(score, valid, threshold, threshold_value, top_fraction, transform, false_alarm_rate)
    found[count_key] = int((classes == 1).sum())
    if "binary" in wants:
        write_binary(txn.path("binary"), classes, georef, label, meta, txn.path("binary", "qml"))
    if "objects" in wants:
        objects = write_detected_objects(txn.path("objects"), classes == 1, score, georef, min_size=min_object_size,
                                         layer_name=layer_name, score_name=score_name, style=txn.path("objects", "qml"))
        found["objects"] = objects["objects"]
    return found


def commit(txn: OutputTransaction, summary: dict, progress: Progress):
    """Rename every output into place (the last step that a cancel can still undo)."""
    progress.update("writing", 0.9, "moving the outputs into place", force=True)
    summary["outputs"] = txn.commit()
    summary["scratch_bytes"] = txn.scratch_bytes


def finished(summary: dict, progress: Progress, started: float) -> dict:
    """The run's summary once its outputs are in place; a cancel now changes nothing."""
    progress.finish("writing", "done")
    if "model" in summary["outputs"]:
        summary["saved_model"] = summary["outputs"]["model"]
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["stage_seconds"] = {k: round(v, 3) for k, v in progress.stage_seconds.items()}
    summary["stage_peak_mib"] = dict(progress.stage_peak_mib)
    return summary
