"""Anomaly detection pipeline: image in, anomaly score map (and binary map) out."""

from __future__ import annotations

import time
from typing import Optional, Sequence

from . import __version__
from .classical import minmax_normalise, rx_scores
from .errors import HsiDetectError
from .io.paths import check_output_path
from .io.objects import check_objects_output, write_detected_objects
from .io.reader import read_cube
from .io.writer import write_binary, write_score
from .progress import Progress
from .thresholds import DEFAULT_FALSE_ALARM_RATE, binarize, choose_threshold

METHODS = ("bs3lnet", "rx")


def run_anomaly(input_path: str, output: str, *, binary: Optional[str] = None, objects: Optional[str] = None,
                min_object_size: int = 1, bands: Optional[Sequence[int]] = None, method: str = "bs3lnet",
                threshold: str = "false-alarm", threshold_value: Optional[float] = None,
                top_fraction: Optional[float] = None, false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
                device: str = "auto", seed: int = 1,
                model: Optional[str] = None, save_model: Optional[str] = None,
                params: Optional[dict] = None, progress: Optional[Progress] = None) -> dict:
    """Detect anomalies in one image and write the score map (0..1) and, optionally, a binary map
    and the detected objects (a GeoPackage polygon layer of the binary map's regions).

    Returns a summary dict: outputs, method, device, threshold, timings.
    """
    progress = progress or Progress()
    if method not in METHODS:
        raise HsiDetectError(f"Unknown anomaly method '{method}'. Use one of: {', '.join(METHODS)}.")
    started = time.perf_counter()
    inputs = [input_path] + ([model] if model else [])
    for out in [output, binary, objects, save_model]:
        if out:
            check_output_path(out, inputs)
    if objects:
        check_objects_output(objects, min_object_size, inputs)
    progress.update("reading", 0.0, f"reading {input_path}", force=True)
    cube = read_cube(input_path, bands)
    rows, cols, nb = cube.shape
    progress.update("reading", 1.0, f"{rows} x {cols} pixels, {nb} bands, {int(cube.valid.sum())} valid")
    summary = {"method": method, "input": input_path, "rows": rows, "cols": cols, "bands": nb,
               "valid_pixels": int(cube.valid.sum())}
    if method == "rx":
        raw = rx_scores(cube.data, cube.valid, progress)
        summary["device"] = "cpu"
    else:
        from .bs3lnet.detector import detect as bs3lnet_detect

        raw, info = bs3lnet_detect(cube, params or {}, device=device, seed=seed, model_path=model,
                                   save_model=save_model, inputs=inputs, progress=progress)
        summary.update(info)
    score = minmax_normalise(raw, cube.valid)
    progress.update("writing", 0.0, f"writing {output}", force=True)
    meta = {"hsi_detect_method": method, "hsi_detect_version": __version__}
    outputs = {"score": write_score(output, score, cube.valid, cube.georef, inputs, "anomaly score", meta)}
    if binary or objects:
        t = choose_threshold(score[cube.valid], threshold, threshold_value, top_fraction,
                             false_alarm_rate=false_alarm_rate)
        classes = binarize(score, cube.valid, t)
        if binary:
            outputs["binary"] = write_binary(binary, classes, cube.georef, inputs, "anomaly", meta)
        summary["threshold"] = t
        summary["threshold_method"] = threshold
        summary["detected_pixels"] = int((classes == 1).sum())
        if objects:
            found = write_detected_objects(objects, classes == 1, score, cube.georef, min_size=min_object_size,
                                           layer_name="detected_objects", inputs=inputs)
            outputs["objects"] = found["path"]
            summary["objects"] = found["objects"]
    progress.update("writing", 1.0, "done", force=True)
    summary["outputs"] = outputs
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary
