"""Anomaly detection pipeline: image in; anomaly score map, binary map and detected objects out."""

from __future__ import annotations

import time
from typing import Optional, Sequence

from . import __version__
from .classical import minmax_normalise, rx_scores
from .detections import commit, finished, write_detections
from .errors import HsiDetectError
from .io.products.wavelengths import band_summary, wavelength_metadata
from .io.reader import read_cube, streamed_source
from .io.transaction import FILE, LAYER, RASTER, OutputTransaction
from .io.writer import write_score
from .parameters import ANOMALY_THRESHOLD, default_false_alarm_rate
from .preflight import check_run
from .progress import Progress
from .streaming.rx import in_memory_bytes as rx_in_memory_bytes, stream_rx_anomaly

METHODS = ("bs3lnet", "rx")


def _in_memory_bytes(method: str, params: dict):
    """The in-memory run's working set of a (rows, cols, bands) scene, by which the run streams or not."""
    if method == "rx":
        return rx_in_memory_bytes
    from .bs3lnet.detector import in_memory_bytes

    return lambda rows, cols, bands: in_memory_bytes(rows, cols, bands, params)


def run_anomaly(input_path: str, output: str, *, binary: Optional[str] = None, objects: Optional[str] = None,
                min_object_size: int = 1, bands: Optional[Sequence[int]] = None, method: str = "bs3lnet",
                threshold: str = ANOMALY_THRESHOLD, threshold_value: Optional[float] = None,
                top_fraction: Optional[float] = None, false_alarm_rate: Optional[float] = None,
                device: str = "auto", seed: int = 1,
                model: Optional[str] = None, save_model: Optional[str] = None,
                params: Optional[dict] = None, progress: Optional[Progress] = None,
                wavelengths: Optional[list] = None, bad_bands: str = "drop", mask_clouds: bool = False,
                memory_limit=None) -> dict:
    """Detect anomalies in one image and write the score map (0..1) and, optionally, a binary map
    and the detected objects (a GeoPackage polygon layer of the binary map's regions).

    ``memory_limit``: bytes, or a size such as '4GB' (default: half of the available memory, at most 2 GB);
    RX and BS3LNet stream a scene whose in-memory run would not fit well inside it (BS3LNet through
    a scaled scratch copy beside the output, trained on crops of it as large as the limit allows).
    Returns a summary dict: outputs, method, device, threshold, timings.
    """
    progress = progress or Progress()
    if false_alarm_rate is None:
        false_alarm_rate = default_false_alarm_rate(method)
    if method not in METHODS:
        raise HsiDetectError(f"Unknown anomaly method '{method}'. Use one of: {', '.join(METHODS)}.")
    params, seed, limit = check_run(method, "bs3lnet", params, seed=seed, device=device, model=model,
                                    save_model=save_model, threshold=threshold, threshold_value=threshold_value,
                                    top_fraction=top_fraction, false_alarm_rate=false_alarm_rate, objects=objects,
                                    min_object_size=min_object_size, memory_limit=memory_limit)
    started = time.perf_counter()
    inputs = [input_path] + ([model] if model else [])
    requested = {"score": (output, RASTER), "binary": (binary, RASTER), "objects": (objects, LAYER),
                 "model": (save_model, FILE)}
    with OutputTransaction(requested, inputs) as txn:
        meta = {"hsi_detect_method": method, "hsi_detect_version": __version__}
        source = streamed_source(input_path, bands, limit, _in_memory_bytes(method, params), wavelengths=wavelengths,
                                 bad_bands=bad_bands, log=progress.log)
        if source is not None:
            with source:
                rows, cols, nb = source.height, source.width, len(source.band_numbers)
                scene = 4 * rows * cols * nb if method == "bs3lnet" else 0  # the scaled scratch copy
                txn.check_space({"score": 12 * rows * cols + scene, "binary": rows * cols, "objects": rows * cols})
                summary = {"method": method, "input": input_path, "rows": rows, "cols": cols, "bands": nb}
                options = dict(threshold=threshold, threshold_value=threshold_value, top_fraction=top_fraction,
                               false_alarm_rate=false_alarm_rate, min_object_size=min_object_size, metadata=meta,
                               progress=progress)
                if method == "rx":
                    summary["device"] = "cpu"
                    summary.update(stream_rx_anomaly(source, txn, limit, **options))
                else:
                    from .bs3lnet.streamed import stream_bs3lnet_anomaly

                    summary.update(stream_bs3lnet_anomaly(source, txn, limit, params, device=device, seed=seed,
                                                          model_path=model,
                                                          save_model=txn.path("model") if save_model else None,
                                                          **options))
            commit(txn, summary, progress)
            return finished(summary, progress, started)
        progress.update("reading", 0.0, f"reading {input_path}", force=True)
        cube = read_cube(input_path, bands, wavelengths=wavelengths, bad_bands=bad_bands, mask_clouds=mask_clouds,
                         progress=progress)
        progress.log(band_summary(cube))
        meta.update(wavelength_metadata(cube))
        rows, cols, nb = cube.shape
        txn.check_space({"score": 4 * rows * cols, "binary": rows * cols, "objects": rows * cols})
        progress.update("reading", 1.0, f"{rows} x {cols} pixels, {nb} bands, {int(cube.valid.sum())} valid")
        summary = {"method": method, "input": input_path, "rows": rows, "cols": cols, "bands": nb,
                   "wavelengths": cube.wavelengths, "product": cube.kind or None, "valid_pixels": int(cube.valid.sum())}
        if method == "rx":
            raw = rx_scores(cube.data, cube.valid, progress)
            summary["device"] = "cpu"
        else:
            from .bs3lnet.detector import detect as bs3lnet_detect

            raw, info = bs3lnet_detect(cube, params, device=device, seed=seed, model_path=model,
                                       save_model=txn.path("model") if save_model else None, progress=progress)
            info.pop("saved_model", None)
            summary.update(info)
        score = minmax_normalise(raw, cube.valid)
        progress.update("writing", 0.0, f"writing {output}", force=True)
        write_score(txn.path("score"), score, cube.valid, cube.georef, "anomaly score", meta, txn.path("score", "qml"))
        summary.update(write_detections(
            txn, score, cube.valid, cube.georef, meta, threshold=threshold, threshold_value=threshold_value,
            top_fraction=top_fraction, false_alarm_rate=false_alarm_rate, label="anomaly",
            layer_name="detected_objects", score_name="score", count_key="detected_pixels",
            min_object_size=min_object_size))
        commit(txn, summary, progress)
    return finished(summary, progress, started)
