"""Accuracy of a score or binary map against a ground truth (scikit-learn's metrics)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import HsiDetectError
from ..thresholds import otsu_threshold


def accuracy_figures(score: np.ndarray, truth: np.ndarray, threshold: Optional[float] = None) -> dict:
    """score, truth: 1-D arrays over labelled pixels (truth 1 = positive, 0 = negative).

    A score with only the values 0 and 1 is taken as a binary map; otherwise the binary
    figures are computed at ``threshold`` (Otsu's threshold of the score when None).
    """
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, roc_auc_score

    score = np.asarray(score, dtype=np.float64).ravel()
    truth = np.asarray(truth).ravel().astype(np.uint8)
    if score.size == 0:
        raise HsiDetectError("No labelled pixel to assess: the ground truth and the map do not overlap.")
    positives = int(truth.sum())
    if positives == 0 or positives == truth.size:
        raise HsiDetectError("The ground truth has only one class among the labelled pixels; "
                             "accuracy needs both positive (1) and negative pixels.")
    is_binary = bool(np.isin(np.unique(score), (0.0, 1.0)).all())
    if is_binary:
        threshold = 0.5
    elif threshold is None:
        threshold = otsu_threshold(score)
    predicted = (score > threshold).astype(np.uint8)
    tn, fp, fn, tp = confusion_matrix(truth, predicted, labels=[0, 1]).ravel()
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "auc": float(roc_auc_score(truth, score)),
        "oa": float((tp + tn) / truth.size),
        "kappa": float(cohen_kappa_score(truth, predicted)),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "threshold": float(threshold),
        "binary_input": is_binary,
        "confusion": {"tp": int(tp), "fp": int(fp), "fn": int(fn), "tn": int(tn)},
        "labelled_pixels": int(truth.size),
        "positive_pixels": positives,
    }


def labelled_pixels(score: np.ndarray, score_valid: np.ndarray, gt: np.ndarray,
                    unlabelled: Optional[float] = None, positive: float = 1):
    """Select the pixels that are valid in the map and labelled in the ground truth.

    Returns (scores, truth) as 1-D arrays, truth 1 where gt == positive.
    """
    if score.shape != gt.shape:
        raise HsiDetectError(f"The map is {score.shape[0]} x {score.shape[1]} pixels but the ground truth is "
                             f"{gt.shape[0]} x {gt.shape[1]}. Give a ground truth on the same grid.")
    keep = score_valid & np.isfinite(gt.astype(np.float64))
    if unlabelled is not None:
        keep &= gt != unlabelled
    return score[keep], (gt[keep] == positive).astype(np.uint8)


def roc_points(score: np.ndarray, truth: np.ndarray):
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(truth, score)
    return fpr, tpr


def object_figures(detected: np.ndarray, truth: np.ndarray) -> dict:
    """Object-level figures of a binary map (2-D bool ``detected``) against a ground truth
    (2-D bool ``truth``), objects being 8-connected regions: the ground-truth objects hit by
    at least one detected pixel, and the detected objects that touch no ground-truth object."""
    from ..io.objects import label_objects

    truth_labels, truth_count = label_objects(truth)
    found_labels, found_count = label_objects(detected)
    hit = np.unique(truth_labels[detected & (truth_labels > 0)]).size
    touching = np.unique(found_labels[truth & (found_labels > 0)]).size
    return {"truth_objects": truth_count, "objects_hit": int(hit),
            "objects_hit_share": float(hit / truth_count) if truth_count else 0.0,
            "detected_objects": found_count, "false_objects": int(found_count - touching)}
