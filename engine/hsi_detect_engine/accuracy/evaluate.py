"""Assessing a written score or binary raster against a ground-truth raster."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..io.reader import read_single_band
from ..io.transaction import FILE, OutputTransaction
from .metrics import accuracy_figures, labelled_pixels, object_figures, roc_points


def evaluate(map_path: str, truth_path: str, *, unlabelled: Optional[float] = None, positive: float = 1,
             report: Optional[str] = None, title: str = "Detection accuracy") -> dict:
    """AUC, OA, Kappa, F1, precision and recall of a map, the ground-truth objects it hits and the
    false objects it draws; optionally an HTML report."""
    with OutputTransaction({"report": (report, FILE)}, [map_path, truth_path]) as txn:
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
