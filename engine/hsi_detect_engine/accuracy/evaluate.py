"""Assessing a written score or binary raster against a ground-truth raster."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..io.memory import memory_limit as resolve_memory_limit
from ..io.paths import check_input_path
from ..io.reader import open_single_band, read_single_band
from ..io.research import RESEARCH_SUFFIXES
from ..io.transaction import FILE, OutputTransaction
from .metrics import accuracy_figures, labelled_pixels, object_figures, roc_points


def evaluate(map_path: str, truth_path: str, *, unlabelled: Optional[float] = None, positive: float = 1,
             report: Optional[str] = None, title: str = "Detection accuracy", memory_limit=None,
             progress=None) -> dict:
    """AUC, OA, Kappa, F1, precision and recall of a map, the ground-truth objects it hits and the
    false objects it draws; optionally an HTML report.

    A map whose in-memory assessment does not fit well inside ``memory_limit`` (bytes or a size
    such as '4GB'; default: half of the available memory, at most 2 GB) is assessed window by window
    (streamed.py), its AUC then exact up to the 'auc_tolerance' it reports.
    """
    limit = resolve_memory_limit(memory_limit)
    with OutputTransaction({"report": (report, FILE)}, [map_path, truth_path]) as txn:
        if _streams(map_path, truth_path, limit):
            from .streamed import streamed_figures

            figures, fpr, tpr = streamed_figures(map_path, truth_path, limit, unlabelled, positive, progress)
            figures.update({"map": map_path, "ground_truth": truth_path})
            figures["unlabelled_value"] = _unlabelled(truth_path, unlabelled)
            if report:
                from .report import write_accuracy_report

                write_accuracy_report(txn.path("report"), figures, fpr, tpr, title)
                figures["report"] = txn.commit()["report"]
            return figures
        score, nodata, _ = read_single_band(map_path, what="map")
        gt, gt_nodata, _ = read_single_band(truth_path, what="ground truth")
        if unlabelled is None and gt_nodata is not None:
            unlabelled = gt_nodata
        score = score.astype(np.float64)
        valid = np.isfinite(score)
        if nodata is not None:
            valid &= score != nodata
        s, t = labelled_pixels(score, valid, gt, unlabelled, positive)
        figures = accuracy_figures(s, t)
        labelled = valid & np.isfinite(gt.astype(np.float64))
        if unlabelled is not None:
            labelled &= gt != unlabelled
        figures.update(object_figures(labelled & (score > figures["threshold"]), labelled & (gt == positive)))
        figures.update({"map": map_path, "ground_truth": truth_path,
                        "unlabelled_value": None if unlabelled is None else float(unlabelled)})
        if report:
            from .report import write_accuracy_report

            fpr, tpr = roc_points(s, t)
            write_accuracy_report(txn.path("report"), figures, fpr, tpr, title)
            figures["report"] = txn.commit()["report"]
    return figures


def _streams(map_path: str, truth_path: str, limit: int) -> bool:
    """Whether the map is a GDAL raster too large to assess in memory within the limit."""
    from ..streaming.budget import fits
    from .streamed import in_memory_bytes

    if any(check_input_path(p).lower().endswith(RESEARCH_SUFFIXES) for p in (map_path, truth_path)):
        return False
    _, _, _, g = open_single_band(map_path, what="map")
    return not fits(in_memory_bytes(g.height, g.width), limit)


def _unlabelled(truth_path: str, unlabelled: Optional[float]):
    if unlabelled is None:
        unlabelled = open_single_band(truth_path, what="ground truth")[2]
    return None if unlabelled is None else float(unlabelled)
