"""Change detection pipeline: two dates in; change magnitude, anomalous-change score and
binary change map out."""

from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np

from . import __version__
from .classical import cva_magnitude, rx_scores
from .detections import commit, finished, write_detections
from .errors import HsiDetectError
from .hypernet.streamed import in_memory_estimate as hypernet_in_memory
from .io.pairs import read_pair, read_training_mask, streamed_pair
from .io.products.wavelengths import band_summary, wavelength_metadata
from .io.transaction import FILE, LAYER, RASTER, OutputTransaction
from .io.writer import write_score
from .parameters import CHANGE_THRESHOLD, default_false_alarm_rate
from .preflight import check_run
from .progress import Progress
from .scaling import scale_on_own_statistics
from .streaming.cva import in_memory_bytes as cva_in_memory_bytes, stream_cva

METHODS = ("hypernet", "cva")


def run_change(t1_path: str, t2_path: str, output: str, *, anomalous: Optional[str] = None,
               binary: Optional[str] = None, objects: Optional[str] = None, min_object_size: int = 1,
               training_mask: Optional[str] = None,
               bands: Optional[Sequence[int]] = None, method: str = "hypernet", grid: str = "resample",
               threshold: str = CHANGE_THRESHOLD, threshold_value: Optional[float] = None,
               top_fraction: Optional[float] = None, false_alarm_rate: Optional[float] = None,
               device: str = "auto", seed: int = 1,
               model: Optional[str] = None, save_model: Optional[str] = None,
               params: Optional[dict] = None, progress: Optional[Progress] = None,
               wavelengths: Optional[list] = None, bad_bands: str = "drop", mask_clouds: bool = False,
               memory_limit=None) -> dict:
    """Detect change between two dates and write the requested maps (objects: the changed
    regions as a GeoPackage polygon layer). Returns a summary dict.

    ``memory_limit``: bytes, or a size such as '4GB' (default: half of the available memory, at most 2 GB);
    a pair of GDAL rasters whose in-memory run would not fit well inside it is streamed (CVA:
    streaming/cva.py; HyperNet: hypernet/streamed.py).
    """
    progress = progress or Progress()
    if false_alarm_rate is None:
        false_alarm_rate = default_false_alarm_rate(method)
    if method not in METHODS:
        raise HsiDetectError(f"Unknown change method '{method}'. Use one of: {', '.join(METHODS)}.")
    params, seed, limit = check_run(method, "hypernet", params, seed=seed, device=device, model=model,
                                    save_model=save_model, threshold=threshold, threshold_value=threshold_value,
                                    top_fraction=top_fraction, false_alarm_rate=false_alarm_rate, objects=objects,
                                    min_object_size=min_object_size, memory_limit=memory_limit)
    started = time.perf_counter()
    inputs = [t1_path, t2_path] + [p for p in (model, training_mask) if p]
    requested = {"change": (output, RASTER), "anomalous_change": (anomalous, RASTER), "binary": (binary, RASTER),
                 "objects": (objects, LAYER), "model": (save_model, FILE)}
    with OutputTransaction(requested, inputs) as txn:
        meta = {"hsi_detect_method": method, "hsi_detect_version": __version__}
        estimate = cva_in_memory_bytes if method == "cva" else hypernet_in_memory(params, training=not model)
        streamed = streamed_pair(t1_path, t2_path, bands, grid, limit, estimate,
                                 lambda name: txn.scratch("change", name), progress, wavelengths=wavelengths,
                                 bad_bands=bad_bands)
        if streamed is not None:
            with streamed:
                rows, cols, nb = streamed.t1.height, streamed.t1.width, len(streamed.t1.band_numbers)
                txn.check_space({"change": 12 * rows * cols, "anomalous_change": 4 * rows * cols, "binary": rows * cols,
                                 "objects": rows * cols})
                summary = {"method": method, "rows": rows, "cols": cols, "bands": nb,
                           "resampled_t2": streamed.resampled, "device": "cpu"}
                common = dict(threshold=threshold, threshold_value=threshold_value, top_fraction=top_fraction,
                              false_alarm_rate=false_alarm_rate, min_object_size=min_object_size, metadata=meta,
                              progress=progress)
                if method == "cva":
                    summary.update(stream_cva(streamed, txn, limit, **common))
                else:
                    from .hypernet.streamed import stream_hypernet

                    summary.update(stream_hypernet(streamed, txn, limit, params, training_mask=training_mask,
                                                   device=device, seed=seed, model_path=model,
                                                   save_model=bool(save_model), **common))
            commit(txn, summary, progress)
            return finished(summary, progress, started)
        progress.update("reading", 0.0, f"reading {t1_path} and {t2_path}", force=True)
        pair = read_pair(t1_path, t2_path, bands, grid, progress, wavelengths=wavelengths, bad_bands=bad_bands,
                         mask_clouds=mask_clouds)
        progress.log(band_summary(pair.t1))
        meta.update(wavelength_metadata(pair.t1))
        valid = pair.valid
        rows, cols, nb = pair.t1.shape
        txn.check_space({"change": 4 * rows * cols, "anomalous_change": 4 * rows * cols, "binary": rows * cols,
                         "objects": rows * cols})
        mask = read_training_mask(training_mask, (rows, cols)) & valid if training_mask else None
        progress.update("reading", 1.0, f"{rows} x {cols} pixels, {nb} bands, {int(valid.sum())} valid in both dates")
        summary = {"method": method, "rows": rows, "cols": cols, "bands": nb, "wavelengths": pair.t1.wavelengths,
                   "product": pair.t1.kind or None, "valid_pixels": int(valid.sum()), "resampled_t2": pair.resampled}
        if method == "cva":
            magnitude = cva_magnitude(pair.t1.data, pair.t2.data, valid)
            diff = np.abs(scale_on_own_statistics(pair.t2.data, valid) - scale_on_own_statistics(pair.t1.data, valid))
            summary["device"] = "cpu"
        else:
            from .hypernet.detector import detect as hypernet_detect

            magnitude, diff, info = hypernet_detect(pair, params, training_mask=mask, device=device, seed=seed,
                                                    model_path=model, save_model=txn.path("model") if save_model else None,
                                                    progress=progress, memory_limit=limit)
            info.pop("saved_model", None)
            summary.update(info)
        progress.update("writing", 0.0, f"writing {output}", force=True)
        georef = pair.t1.georef
        write_score(txn.path("change"), magnitude, valid, georef, "change magnitude", meta, txn.path("change", "qml"))
        if anomalous:
            acd = rx_scores(diff, valid)
            write_score(txn.path("anomalous_change"), acd, valid, georef, "anomalous change", meta,
                        txn.path("anomalous_change", "qml"))
        summary.update(write_detections(
            txn, magnitude, valid, georef, meta, threshold=threshold, threshold_value=threshold_value,
            top_fraction=top_fraction, false_alarm_rate=false_alarm_rate,
            transform=summary.get("threshold_transform", "none"), label="changed", layer_name="changed_regions",
            score_name="change", count_key="changed_pixels", min_object_size=min_object_size))
        commit(txn, summary, progress)
    return finished(summary, progress, started)
