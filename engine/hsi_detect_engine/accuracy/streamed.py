"""The accuracy figures of a map larger than the memory limit, from passes over windows of rows.

Pass 1 finds the labelled pixels' count, classes and score range; pass 2 sums a fine score
histogram per class and Otsu's 1024-bin histogram; pass 3 counts the confusion matrix at
the threshold. Every figure but the AUC equals the in-memory one (up to float rounding).
The AUC counts a positive and a negative pixel in the same histogram bin as a tie: it is
exact up to ``auc_tolerance``, half the share of such pairs, which the result reports.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..errors import HsiDetectError
from ..io.memory import window_rows
from ..io.reader import open_single_band
from ..progress import Progress
from ..streaming.budget import gdal_cache, window_budget
from ..thresholds import otsu_from_histogram
from .metrics import object_figures

IN_MEMORY_PER_PIXEL = 64  # bytes per pixel of the in-memory assessment: the map in float64, masks, sklearn's sorting
MAX_BINS = 1 << 22
ROC_POINTS = 20000  # at most, in the report's curve


def in_memory_bytes(rows: int, cols: int) -> int:
    return rows * cols * IN_MEMORY_PER_PIXEL


class _Pixels:
    """Windows of the labelled pixels of a map and its ground truth: (scores float64, truth uint8)."""

    def __init__(self, map_path, truth_path, unlabelled, positive, budget, progress):
        self.map_ds, self.map_band, self.nodata, g = open_single_band(map_path, what="map")
        self.gt_ds, self.gt_band, gt_nodata, h = open_single_band(truth_path, what="ground truth")
        if (g.height, g.width) != (h.height, h.width):
            raise HsiDetectError(f"The map is {g.height} x {g.width} pixels but the ground truth is "
                                 f"{h.height} x {h.width}. Give a ground truth on the same grid.")
        self.unlabelled = gt_nodata if unlabelled is None else unlabelled
        self.positive = positive
        self.height, self.width = g.height, g.width
        self.step = window_rows(self.width * 48, budget, self.height, self.map_band.GetBlockSize()[1])
        self.progress = progress

    def windows(self, message: str):
        for _, score, gt, keep in self._read(message):
            yield score[keep], (gt[keep] == self.positive).astype(np.uint8)

    def masks(self, threshold: float, message: str):
        """(detected, truth): whole-map bool arrays of the labelled pixels above ``threshold`` and
        of the positive ones. Objects are regions of the whole map, so this one pass holds a map,
        not a cube: a few bytes per pixel (the labelling adds four per map)."""
        detected = np.zeros((self.height, self.width), dtype=bool)
        truth = np.zeros((self.height, self.width), dtype=bool)
        for r, score, gt, keep in self._read(message):
            detected[r:r + len(score)] = keep & (score > threshold)
            truth[r:r + len(score)] = keep & (gt == self.positive)
        return detected, truth

    def _read(self, message: str):
        for r in range(0, self.height, self.step):
            self.progress.update("detecting", r / self.height, message)
            n = min(self.step, self.height - r)
            score = self.map_band.ReadAsArray(0, r, self.width, n).astype(np.float64)
            gt = self.gt_band.ReadAsArray(0, r, self.width, n)
            keep = np.isfinite(score) & np.isfinite(gt.astype(np.float64))
            if self.nodata is not None:
                keep &= score != self.nodata
            if self.unlabelled is not None:
                keep &= gt != self.unlabelled
            yield r, score, gt, keep


def streamed_figures(map_path: str, truth_path: str, limit: int, unlabelled: Optional[float] = None,
                     positive: float = 1, progress: Optional[Progress] = None) -> tuple:
    """(figures as accuracy_figures gives them plus 'auc_tolerance', ROC false and true positive rates)."""
    progress = progress or Progress()
    budget = window_budget(limit)
    bins = int(min(MAX_BINS, max(4096, 2 ** math.floor(math.log2(max(budget // 32, 1))))))
    with gdal_cache(limit):
        px = _Pixels(map_path, truth_path, unlabelled, positive, budget, progress)
        n = positives = 0
        lo, hi = math.inf, -math.inf
        is_binary = True
        for s, t in px.windows("assessing: labelled pixels"):
            if s.size:
                n += s.size
                positives += int(t.sum())
                lo, hi = min(lo, float(s.min())), max(hi, float(s.max()))
                is_binary = is_binary and bool(np.isin(s, (0.0, 1.0)).all())
        if n == 0:
            raise HsiDetectError("No labelled pixel to assess: the ground truth and the map do not overlap.")
        if positives == 0 or positives == n:
            raise HsiDetectError("The ground truth has only one class among the labelled pixels; "
                                 "accuracy needs both positive (1) and negative pixels.")
        pos_hist, neg_hist = np.zeros(bins, np.int64), np.zeros(bins, np.int64)
        otsu_hist = np.zeros(1024, np.int64)
        span = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
        for s, t in px.windows("assessing: histograms"):
            idx = np.clip(((s - span[0]) / (span[1] - span[0]) * bins).astype(np.int64), 0, bins - 1)
            pos_hist += np.bincount(idx[t == 1], minlength=bins)
            neg_hist += np.bincount(idx[t == 0], minlength=bins)
            if not is_binary and hi > lo:
                otsu_hist += np.histogram(s, bins=1024, range=(lo, hi))[0]
        if is_binary:
            threshold = 0.5
        elif hi > lo:
            threshold = otsu_from_histogram(otsu_hist, np.histogram(np.empty(0), bins=1024, range=(lo, hi))[1])
        else:
            threshold = hi
        tp = fp = fn = tn = 0
        for s, t in px.windows("assessing: confusion matrix"):
            p = s > threshold
            tp += int((p & (t == 1)).sum())
            fp += int((p & (t == 0)).sum())
            fn += int((~p & (t == 1)).sum())
            tn += int((~p & (t == 0)).sum())
        objects = object_figures(*px.masks(threshold, "assessing: objects"))
    negatives = n - positives
    below = np.cumsum(neg_hist) - neg_hist  # negatives in lower bins
    auc = float((pos_hist * (below + 0.5 * neg_hist)).sum() / (positives * negatives))
    # a binary map's bins hold one value each: its ties are true ties
    tolerance = 0.0 if is_binary else float(0.5 * (pos_hist * neg_hist).sum() / (positives * negatives))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    figures = {"auc": auc, "auc_tolerance": tolerance, "oa": float((tp + tn) / n),
               "kappa": _kappa(tp, fp, fn, tn), "f1": float(f1), "precision": float(precision),
               "recall": float(recall), "threshold": float(threshold), "binary_input": is_binary,
               "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, "labelled_pixels": n,
               "positive_pixels": positives, **objects}
    return figures, *_roc(pos_hist, neg_hist)


def _kappa(tp: int, fp: int, fn: int, tn: int) -> float:
    """Cohen's kappa of a 2 x 2 confusion matrix, as scikit-learn computes it."""
    confusion = np.array([[tn, fp], [fn, tp]], dtype=np.float64)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    weights = 1 - np.eye(2)
    return float(1 - (weights * confusion).sum() / (weights * expected).sum())


def _roc(pos_hist: np.ndarray, neg_hist: np.ndarray) -> tuple:
    """ROC points at every bin edge with pixels, from the highest score down (at most ROC_POINTS)."""
    used = (pos_hist + neg_hist)[::-1] > 0
    tpr = np.concatenate([[0.0], np.cumsum(pos_hist[::-1])[used] / pos_hist.sum()])
    fpr = np.concatenate([[0.0], np.cumsum(neg_hist[::-1])[used] / neg_hist.sum()])
    if fpr.size > ROC_POINTS:
        keep = np.unique(np.linspace(0, fpr.size - 1, ROC_POINTS).astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr
