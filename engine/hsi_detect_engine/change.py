"""Change detection pipeline: two dates in; change magnitude, anomalous-change score and
binary change map out."""

from __future__ import annotations

import os
import time
from typing import Optional, Sequence

import numpy as np

from . import __version__
from .classical import cva_magnitude, rx_scores, standardize_date
from .errors import HsiDetectError
from .io.objects import check_objects_output, write_detected_objects
from .io.pairs import read_pair, read_training_mask
from .io.paths import check_output_path
from .io.styles import qml_path
from .io.writer import write_binary, write_score
from .progress import Progress
from .thresholds import DEFAULT_FALSE_ALARM_RATE, binarize, choose_threshold

METHODS = ("hypernet", "cva")


def run_change(t1_path: str, t2_path: str, output: str, *, anomalous: Optional[str] = None,
               binary: Optional[str] = None, objects: Optional[str] = None, min_object_size: int = 1,
               training_mask: Optional[str] = None,
               bands: Optional[Sequence[int]] = None, method: str = "hypernet", grid: str = "resample",
               threshold: str = "otsu", threshold_value: Optional[float] = None,
               top_fraction: Optional[float] = None, false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
               device: str = "auto", seed: int = 1,
               model: Optional[str] = None, save_model: Optional[str] = None,
               params: Optional[dict] = None, progress: Optional[Progress] = None) -> dict:
    """Detect change between two dates and write the requested maps (objects: the changed
    regions as a GeoPackage polygon layer). Returns a summary dict."""
    progress = progress or Progress()
    if method not in METHODS:
        raise HsiDetectError(f"Unknown change method '{method}'. Use one of: {', '.join(METHODS)}.")
    started = time.perf_counter()
    inputs = [t1_path, t2_path] + [p for p in (model, training_mask) if p]
    for out in [output, anomalous, binary, objects, save_model]:
        if out:
            check_output_path(out, inputs)
    if objects:
        check_objects_output(objects, min_object_size, inputs)
    progress.update("reading", 0.0, f"reading {t1_path} and {t2_path}", force=True)
    pair = read_pair(t1_path, t2_path, bands, grid, progress)
    valid = pair.valid
    rows, cols, nb = pair.t1.shape
    mask = read_training_mask(training_mask, (rows, cols)) & valid if training_mask else None
    progress.update("reading", 1.0, f"{rows} x {cols} pixels, {nb} bands, {int(valid.sum())} valid in both dates")
    summary = {"method": method, "rows": rows, "cols": cols, "bands": nb, "valid_pixels": int(valid.sum()),
               "resampled_t2": pair.resampled}
    if method == "cva":
        magnitude = cva_magnitude(pair.t1.data, pair.t2.data, valid)
        diff = np.abs(standardize_date(pair.t2.data, valid) - standardize_date(pair.t1.data, valid))
        summary["device"] = "cpu"
    else:
        from .hypernet.detector import detect as hypernet_detect

        magnitude, diff, info = hypernet_detect(pair, params or {}, training_mask=mask, device=device, seed=seed,
                                                model_path=model, save_model=save_model, inputs=inputs,
                                                progress=progress)
        summary.update(info)
    progress.update("writing", 0.0, f"writing {output}", force=True)
    meta = {"hsi_detect_method": method, "hsi_detect_version": __version__}
    georef = pair.t1.georef
    outputs = {}
    try:  # a failure or a cancellation while writing leaves none of this run's files
        outputs["change"] = write_score(output, magnitude, valid, georef, inputs, "change magnitude", meta)
        if anomalous:
            acd = rx_scores(diff, valid)
            outputs["anomalous_change"] = write_score(anomalous, acd, valid, georef, inputs, "anomalous change", meta)
        if binary or objects:
            transform = summary.get("threshold_transform", "none")
            t = choose_threshold(magnitude[valid], threshold, threshold_value, top_fraction, transform,
                                 false_alarm_rate)
            classes = binarize(magnitude, valid, t)
            if binary:
                outputs["binary"] = write_binary(binary, classes, georef, inputs, "changed", meta)
            summary["threshold"] = t
            summary["changed_pixels"] = int((classes == 1).sum())
            if objects:
                found = write_detected_objects(objects, classes == 1, magnitude, georef, min_size=min_object_size,
                                               layer_name="changed_regions", score_name="change", inputs=inputs)
                outputs["objects"] = found["path"]
                summary["objects"] = found["objects"]
        progress.update("writing", 1.0, "done", force=True)
    except BaseException:
        _remove(list(outputs.values()) + [summary.get("saved_model")])
        raise
    summary["outputs"] = outputs
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def _remove(paths):
    for path in paths:
        if not path:
            continue
        for p in (path, qml_path(path), path + ".aux.xml"):
            if os.path.exists(p):
                os.remove(p)
