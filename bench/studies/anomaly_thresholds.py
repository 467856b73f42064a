"""Binary maps of the anomaly detectors: each threshold rule against the best threshold, on every real scene;
and the candidate BS3LNet scores against global RX, over three seeds.

For RX the score maps of all scenes in the benchmark's anomaly folder are computed once and cached
under bench/work/anomaly_thresholds/; BS3LNet's come from the default training runs cached by
``python -m bench.studies.bs3lnet_maps`` (seeds 1-3; scenes or seeds not cached yet are left out and
counted in the headings). For every threshold rule the binary map is scored against the ground truth
at pixel level (F1, Cohen's kappa, precision, recall, pixels flagged) and at object level (share of
ground-truth objects hit, detected objects touching none), beside the F1 of the best threshold for
the same score map (read off the precision-recall curve). The same trained networks' residuals give
the candidate scores of the "never lose to RX" question, compared over the seeds.

    python -m bench.studies.anomaly_thresholds [--data DIR] [--out FILE]

writes bench/results/studies/anomaly_thresholds.md.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from ..runner import REPO
from ..scenes import data_folder
from . import bs3lnet_maps

CACHE = os.path.join(REPO, "bench", "work", "anomaly_thresholds")
OUT = os.path.join(REPO, "bench", "results", "studies", "anomaly_thresholds.md")
THRESHOLD_SEED = 1  # the BS3LNet maps of the threshold tables


def scene_names(data: str) -> list:
    folder = os.path.join(data, "anomaly")
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".npz"))


load_scene = bs3lnet_maps.load_scene


def _cached(path: str, compute):
    if os.path.exists(path):
        return np.load(path)
    value = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, value)
    os.replace(tmp, path)
    return value


def rx_score(data: str, name: str) -> np.ndarray:
    from hsi_detect_engine.classical import rx_scores

    def compute():
        cube, valid, _ = load_scene(data, name)
        return rx_scores(cube, valid)

    return _cached(os.path.join(CACHE, "rx", name + ".npy"), compute)


MAX_FLAGGED = 0.05
GOAL = 0.85
PUBLISHED = ("abu-airport-1", "abu-airport-2", "abu-airport-4", "abu-urban-1", "abu-beach-1")


def _single(method, rate=None):
    def rule(s, valid):
        from hsi_detect_engine.thresholds import choose_threshold

        return valid & (s > choose_threshold(s[valid], method, false_alarm_rate=rate))
    return rule


def _hysteresis(seed_rate, grow_rate, max_share=1.0):
    def rule(s, valid):
        from hsi_detect_engine.thresholds import false_alarm_threshold, hysteresis_mask

        return hysteresis_mask(s, valid, false_alarm_threshold(s[valid], seed_rate),
                               false_alarm_threshold(s[valid], grow_rate), max_share)
    return rule


def _engine_default(method: str):
    """The anomaly pipeline's default rule at ``method``'s default false-alarm rate."""
    def rule(s, valid):
        from hsi_detect_engine.parameters import ANOMALY_THRESHOLD, default_false_alarm_rate
        from hsi_detect_engine.thresholds import binary_map

        return binary_map(s, valid, ANOMALY_THRESHOLD, false_alarm_rate=default_false_alarm_rate(method))[0] == 1
    return rule


DEFAULT_RULE = "hysteresis (default)"
RULES = {"otsu": _single("otsu"), "kmeans": _single("kmeans"), "min-error": _single("min-error"),
         **{f"false-alarm {r:g}": _single("false-alarm", r) for r in (0.001, 0.003, 0.01, 0.03)},
         "false-alarm 0.003, regions > 2 % dropped": _hysteresis(0.003, 0.003, 0.02),
         "seeds 0.003 grown to 0.01, no region dropped": _hysteresis(0.003, 0.01),
         "seeds 0.001 grown to 0.01, no region dropped": _hysteresis(0.001, 0.01),
         "seeds 0.003 grown to 0.01, regions > 2 % dropped": _hysteresis(0.003, 0.01, 0.02),
         "seeds 0.001 grown to 0.02, regions > 2 % dropped": _hysteresis(0.001, 0.02, 0.02),
         "seeds 0.001 grown to 0.01, regions > 1 % dropped": _hysteresis(0.001, 0.01, 0.01),
         "seeds 0.001 grown to 0.01, regions > 2 % dropped": _hysteresis(0.001, 0.01, 0.02),
         **{f"hysteresis at rate {r:g} (seeds {r / 3:.2g} grown to {3 * r:.2g}, regions > 2 % dropped)":
            _hysteresis(r / 3, 3 * r, 0.02) for r in (0.001, 0.002, 0.003, 0.005)},
         DEFAULT_RULE: _engine_default("rx")}
OLD_DEFAULT = "false-alarm 0.003"


def normalised(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from hsi_detect_engine.classical import minmax_normalise

    return minmax_normalise(score, valid)


def binary_figures(detected: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict:
    """Pixel and object figures of a 2-D bool map over the valid pixels."""
    from sklearn.metrics import cohen_kappa_score

    from hsi_detect_engine.accuracy.metrics import object_figures

    d, g = detected[valid], gt[valid] == 1
    tp, fp, fn = int((d & g).sum()), int((d & ~g).sum()), int((~d & g).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"f1": f1, "kappa": float(cohen_kappa_score(g, d)), "precision": precision, "recall": recall,
            "flagged": int(d.sum()), "flagged_share": float(d.mean()),
            **object_figures(detected & valid, (gt == 1) & valid)}


def best_threshold(score: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """The threshold of highest F1 (the binary map flags the scores at or above it)."""
    from sklearn.metrics import precision_recall_curve

    p, r, t = precision_recall_curve(gt[valid] == 1, score[valid])
    f = 2 * p * r / np.maximum(p + r, 1e-12)
    return float(t[int(np.argmax(f[:-1]))])


def scene_rows(detector: str, name: str, score: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> list:
    """Every rule's figures on one score map; the default rule at the rate of the detector's method (RX's for
    'rx', BS3LNet's for every other map)."""
    s = normalised(score, valid)
    rules = {**RULES, DEFAULT_RULE: _engine_default("rx" if detector == "rx" else "bs3lnet")}
    rows = [{"detector": detector, "scene": name, "rule": rule, **binary_figures(flag(s, valid), gt, valid)}
            for rule, flag in rules.items()]
    t = best_threshold(s, gt, valid)
    rows.append({"detector": detector, "scene": name, "rule": "best", "threshold": t,
                 **binary_figures((s >= t) & valid, gt, valid)})
    return rows


def auc(score: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(gt[valid] == 1, score[valid]))


def robust_z(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from hsi_detect_engine.bs3lnet.fusion import standardised

    v = score[valid]
    median = np.median(v)
    return standardised(score, median, np.median(np.abs(v - median)))


def percentile_rank(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    out = np.zeros(score.shape)
    out[valid] = rankdata(score[valid]) / valid.sum()
    return out


def separation(z: np.ndarray, valid: np.ndarray, top: float = 0.005) -> float:
    """How far a score's highest ``top`` share stands out from its bulk, without labels: the mean
    robust z-score of those pixels."""
    v = np.sort(z[valid])
    return float(v[-max(1, int(top * v.size)):].mean())


def separation_weighted(scores: list, valid: np.ndarray) -> np.ndarray:
    """Robust z-scores summed with weights in proportion to each one's separation."""
    zs = [robust_z(s, valid) for s in scores]
    w = np.array([max(separation(z, valid), 0.0) for z in zs])
    w = w / w.sum() if w.sum() > 0 else np.full(len(zs), 1.0 / len(zs))
    return sum(wi * z for wi, z in zip(w, zs))


BULK = 0.99  # "RX of the bulk": the covariance refitted on the pixels at or below this quantile of their RX


def bulk_rx(pixels: np.ndarray) -> np.ndarray:
    """RX of (n, bands) pixels whose mean and covariance are refitted on the pixels at or below the BULK
    quantile of their plain RX, so that the anomalies do not widen the background they are measured against."""
    from hsi_detect_engine.classical import mahalanobis, safe_inverse

    def fitted(sample):
        return sample.mean(axis=0), safe_inverse(np.cov(sample, rowvar=False))

    plain = mahalanobis(pixels, *fitted(pixels))
    return mahalanobis(pixels, *fitted(pixels[plain <= np.quantile(plain, BULK)]))


def tail_rank(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """-log of the share of valid pixels scoring at least as high (an empirical p-value's surprise)."""
    rank = percentile_rank(score, valid) * valid.sum() / (valid.sum() + 1.0)
    return -np.log1p(-rank)


def tail_scaled(score: np.ndarray, valid: np.ndarray, q: float = 0.99) -> np.ndarray:
    """The score less its median, over the distance from the median to its ``q`` quantile."""
    median, top = np.quantile(score[valid], [0.5, q])
    return (score - median) / ((top - median) or 1.0)


def squared_sum(total: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A sum of robust z-scores shifted to 0 at its minimum and squared, as fusion.fuse returns its sum (which
    leaves the AUC as it is and feeds the threshold rules a squared distance)."""
    out = np.zeros(valid.shape)
    out[valid] = (total[valid] - total[valid].min()) ** 2
    return out


def guide_map(scaled: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """fusion's guide components of a scaled cube, as the detector computes them."""
    from hsi_detect_engine.bs3lnet.fusion import guide_of, projection
    from hsi_detect_engine.classical import mean_cov

    pixels = scaled[valid]
    mean, cov = mean_cov(pixels)
    matrix = projection(cov)
    out = np.zeros(valid.shape + (matrix.shape[1],))
    out[valid] = guide_of(pixels, mean, matrix)
    return out


def scaled_cube(cube: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The cube in BS3LNet's default scaling, as the detector sees it."""
    from hsi_detect_engine.parameters import BS3LNET, resolve
    from hsi_detect_engine.scaling import apply_scaling, fit_scaling

    mode = resolve(BS3LNET, {})["scaling"]
    return apply_scaling(cube, valid, fit_scaling(cube, valid, mode))


def partly_denoised_rx(scaled: np.ndarray, valid: np.ndarray, guide: np.ndarray, spacing: float, own: float,
                       width: float) -> np.ndarray:
    """fusion.rx_rows of the whole scaled scene with another own share and width."""
    from hsi_detect_engine.bs3lnet.fusion import rx_rows
    from hsi_detect_engine.classical import mean_cov, safe_inverse

    mean, cov = mean_cov(scaled[valid])
    return rx_rows(scaled, guide, valid, spacing, mean, safe_inverse(cov), own, width)


def candidate_scores(cube: np.ndarray, rx: np.ndarray, maps: dict, valid: np.ndarray) -> dict:
    """Scores of one trained network (maps: 'mse', 'mse-scaled', 'rx' and 'residual' of bs3lnet_maps), with
    global RX of the scene (``cube``) beside and their fusions; the smoothed ones with the engine's
    fusion.smooth (the default score: the detector's own fused_with_rx)."""
    from hsi_detect_engine.bs3lnet.detector import fused_with_rx
    from hsi_detect_engine.bs3lnet.fusion import DENOISE_WIDTH, OWN_SHARE, WIDTH, adjacent_distances, fuse, smooth, \
        spacing_of
    from hsi_detect_engine.classical import rx_scores

    mse, resid_rx = maps["mse"], maps["rx"]
    scaled = scaled_cube(cube, valid)
    guide = guide_map(scaled, valid)
    spacing = spacing_of(adjacent_distances(guide, valid))
    sigma = WIDTH * spacing
    parts = {"mse": mse, "rrx": resid_rx, "grx": rx}
    z = {k: robust_z(v, valid) for k, v in parts.items()}
    root = {k: robust_z(np.sqrt(np.maximum(v, 0.0)), valid) for k, v in parts.items()}
    fourth = {k: robust_z(np.maximum(v, 0.0) ** 0.25, valid) for k, v in parts.items()}
    log = {k: robust_z(np.log(np.maximum(v, 1e-12)), valid) for k, v in parts.items()}

    def on_valid(per_pixel):
        out = np.zeros(valid.shape)
        out[valid] = per_pixel
        return out

    bulk = {"rrx": on_valid(bulk_rx(maps["residual"][valid].astype(np.float64))),
            "grx": on_valid(bulk_rx(cube[valid].astype(np.float64)))}
    bulk_root = {k: robust_z(np.sqrt(v), valid) for k, v in bulk.items()}
    joint = on_valid(bulk_rx(np.hstack([cube[valid] / maps["scale"], maps["residual"][valid]]).astype(np.float64)))
    two = root["mse"] + root["grx"]
    # RX of the scene with each band averaged among alike neighbours (the sum's weights, or a third of their sigma)
    denoised_rx = {w: rx_scores(smooth(scaled.astype(np.float64), guide, valid, sigma * w).astype(np.float32), valid)
                   for w in (1, 1 / 3)}
    return {"global RX": rx, "BS3LNet mse (the paper's)": mse, "BS3LNet mse-scaled": maps["mse-scaled"],
            "BS3LNet residual RX": resid_rx,
            "rank mean (residual RX, global RX)": percentile_rank(resid_rx, valid) + percentile_rank(rx, valid),
            "robust-z sum (residual RX, global RX)": z["rrx"] + z["grx"],
            "robust-z sum (mse, global RX)": z["mse"] + z["grx"],
            "robust-z max (mse, global RX)": np.maximum(z["mse"], z["grx"]),
            "robust-z sum (mse, residual RX, global RX)": z["mse"] + z["rrx"] + z["grx"],
            "robust-z sum of roots (mse, residual RX, global RX)":
                squared_sum(root["mse"] + root["rrx"] + root["grx"], valid),
            "robust-z sum of roots (residual RX, global RX)": root["rrx"] + root["grx"],
            "robust-z sum of roots (mse, global RX), not smoothed": squared_sum(two, valid),
            "robust-z sum of roots, global RX counted 1.5 times": root["mse"] + root["rrx"] + 1.5 * root["grx"],
            "robust-z sum of fourth roots (mse, residual RX, global RX)": fourth["mse"] + fourth["rrx"] + fourth["grx"],
            "robust-z sum of logs (mse, residual RX, global RX)": log["mse"] + log["rrx"] + log["grx"],
            "robust-z sum of roots, RX of the bulk (mse, residual RX, global RX)":
                root["mse"] + bulk_root["rrx"] + bulk_root["grx"],
            "robust-z sum of roots (mse, residual RX, global RX, joint RX of the bulk)":
                root["mse"] + root["rrx"] + root["grx"] + robust_z(np.sqrt(joint), valid),
            "tail-scaled sum of roots (mse, residual RX, global RX)":
                sum(tail_scaled(np.sqrt(np.maximum(v, 0.0)), valid) for v in parts.values()),
            "tail-rank sum (mse, residual RX, global RX)": sum(tail_rank(v, valid) for v in parts.values()),
            "separation-weighted (mse, residual RX, global RX)": separation_weighted([mse, resid_rx, rx], valid),
            "rank mean (mse, residual RX, global RX)": (percentile_rank(mse, valid) + percentile_rank(resid_rx, valid)
                                                        + percentile_rank(rx, valid)),
            "global RX smoothed among alike neighbours": squared_sum(smooth(root["grx"], guide, valid, sigma), valid),
            "robust-z sum of roots (mse, global RX), plain 3 x 3 mean": squared_sum(smooth(two, guide, valid, np.inf),
                                                                                  valid),
            FORMER_DEFAULT: fuse([mse, rx], valid, guide),
            DEFAULT_SCORE: fused_with_rx(mse, scaled, valid),
            **{label: fuse([mse, partly_denoised_rx(scaled, valid, guide, spacing, own, width)], valid, guide)
               for label, own, width in ((OWN_LESS, OWN_SHARE - 0.1, DENOISE_WIDTH),
                                         (OWN_MORE, OWN_SHARE + 0.1, DENOISE_WIDTH),
                                         (WIDER, OWN_SHARE, 1.5 * DENOISE_WIDTH))},
            "robust-z sum of roots (mse, residual RX, global RX), smoothed among alike neighbours":
                fuse([mse, resid_rx, rx], valid, guide),
            DENOISED: fuse([mse, denoised_rx[1]], valid, guide),
            DENOISED_NARROW: fuse([mse, denoised_rx[1 / 3]], valid, guide),
            DENOISED_BOTH: fuse([mse, rx, denoised_rx[1 / 3]], valid, guide)}


def _mean(rows, key):
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def threshold_summary(rows: list, detector: str) -> list:
    mine = [r for r in rows if r["detector"] == detector]
    best = _mean([r for r in mine if r["rule"] == "best"], "f1")
    lines = [f"| rule | mean F1 | of best | mean Kappa | mean precision | mean recall | flagged % min-max | empty "
             f"| > {100 * MAX_FLAGGED:g} % | GT objects hit | false objects (mean) |", "|" + "---|" * 11]
    for rule in list(RULES) + ["best"]:
        rr = [r for r in mine if r["rule"] == rule]
        share = [r["flagged_share"] for r in rr]
        lines.append(f"| {rule} | {_mean(rr, 'f1'):.3f} | "
                     f"{_mean(rr, 'f1') / best:.2f} | {_mean(rr, 'kappa'):.3f} | {_mean(rr, 'precision'):.3f} | "
                     f"{_mean(rr, 'recall'):.3f} | {100 * min(share):.2f}-{100 * max(share):.2f} | "
                     f"{sum(r['flagged'] == 0 for r in rr)} | {sum(s > MAX_FLAGGED for s in share)} | "
                     f"{_mean(rr, 'objects_hit_share'):.2f} | {_mean(rr, 'false_objects'):.1f} |")
    return lines


def threshold_scenes(rows: list, detector: str) -> list:
    mine = {(r["scene"], r["rule"]): r for r in rows if r["detector"] == detector}
    names = sorted({r["scene"] for r in rows if r["detector"] == detector})
    lines = ["| scene | default F1 | Kappa | precision | recall | flagged | flagged % | GT objects hit | false objects "
             f"| {OLD_DEFAULT} F1 | its flagged | best F1 | best flagged |", "|" + "---|" * 13]
    for n in names:
        d, o, b = mine[(n, DEFAULT_RULE)], mine[(n, OLD_DEFAULT)], mine[(n, "best")]
        lines.append(f"| {n} | {d['f1']:.3f} | {d['kappa']:.3f} | {d['precision']:.3f} | {d['recall']:.3f} | "
                     f"{d['flagged']} | {100 * d['flagged_share']:.2f} | {d['objects_hit']}/{d['truth_objects']} | "
                     f"{d['false_objects']} | {o['f1']:.3f} | {o['flagged']} | {b['f1']:.3f} | {b['flagged']} |")
    return lines


SEEDS_DETECTOR = "bs3lnet, every seed"  # the rows of every cached seed's map (the per-scene table: THRESHOLD_SEED's)
BELOW = 0.005  # the bar: no scene below global RX by more than this
PUBLISHED_BAR = 0.98  # and a mean AUC of at least this over the five published scenes


# The paper's score and the candidates nearest the bar, thresholded by the default rule (every seed's map).
FORMER_DEFAULT = "robust-z sum of roots (mse, global RX), smoothed among alike neighbours: the former mse+rx"
DEFAULT_SCORE = ("mse+rx (default): robust-z sum of roots (mse, RX of each pixel half averaged with its alike "
                 "neighbours), smoothed among alike neighbours")
OWN_LESS = "the same, each pixel's own share 0.4"
OWN_MORE = "the same, each pixel's own share 0.6"
WIDER = "the same, its neighbours' mean with 1.5 times the sigma"
DENOISED = "robust-z sum of roots (mse, RX of the scene denoised among alike neighbours), smoothed"
DENOISED_NARROW = "the same, the scene denoised with a third of the sigma"
DENOISED_BOTH = "robust-z sum of roots (mse, global RX, RX of the scene denoised with a third of the sigma), smoothed"
THRESHOLDED_CANDIDATES = ("BS3LNet mse (the paper's)", "robust-z sum of roots (mse, global RX), not smoothed",
                          FORMER_DEFAULT, DEFAULT_SCORE, OWN_LESS, OWN_MORE, WIDER,
                          "robust-z sum of roots (mse, residual RX, global RX), smoothed among alike neighbours",
                          DENOISED, DENOISED_NARROW, DENOISED_BOTH)


def fused_thresholds(rows: list) -> list:
    """The default rule against the best threshold on the THRESHOLDED_CANDIDATES' maps."""
    lines = ["| score | maps | default mean F1 | best mean F1 | of best | empty maps | flagged % max |",
             "|---|---|---|---|---|---|---|"]
    for c in THRESHOLDED_CANDIDATES:
        default = [r for r in rows if r["detector"] == c and r["rule"] == DEFAULT_RULE]
        best = [r for r in rows if r["detector"] == c and r["rule"] == "best"]
        if default:
            lines.append(f"| {c} | {len(default)} | {_mean(default, 'f1'):.3f} | {_mean(best, 'f1'):.3f} | "
                         f"{_mean(default, 'f1') / _mean(best, 'f1'):.2f} | "
                         f"{sum(r['flagged'] == 0 for r in default)} | "
                         f"{100 * max(r['flagged_share'] for r in default):.2f} |")
    return lines


def all_bars(aucs: dict, rows: list) -> str:
    """The THRESHOLDED_CANDIDATES meeting both AUC bars on the seed mean and the binary maps' goal."""
    names = sorted(aucs)
    published = [n for n in names if n in PUBLISHED]

    def mean(n, c):
        return float(np.mean([a[c] for a in aucs[n].values()]))

    found = []
    for c in THRESHOLDED_CANDIDATES:
        default = [r for r in rows if r["detector"] == c and r["rule"] == DEFAULT_RULE]
        best = [r for r in rows if r["detector"] == c and r["rule"] == "best"]
        if not default or not published:
            continue
        ratio = _mean(default, "f1") / _mean(best, "f1")
        pub = float(np.mean([mean(n, c) for n in published]))
        if ratio >= GOAL and pub >= PUBLISHED_BAR and all(mean(n, c) - mean(n, "global RX") >= -BELOW for n in names):
            found.append(f"{c} (published five {pub:.4f}, maps {ratio:.3f} of the best F1)")
    return ("Meeting both AUC bars and the binary maps' goal (at least "
            f"{GOAL} of the best F1): {'; '.join(found) if found else 'none'}.")


def score_summary(aucs: dict) -> list:
    """aucs: scene -> seed -> candidate -> AUC. One row per candidate, its per-scene AUC the mean over the seeds."""
    names = sorted(aucs)
    candidates = list(next(iter(next(iter(aucs.values())).values())))
    mean = {n: {c: float(np.mean([a[c] for a in aucs[n].values()])) for c in candidates} for n in names}
    published = [n for n in names if n in PUBLISHED]
    lines = [f"| score | mean AUC ({len(names)} scenes, seed mean) | mean AUC (published: {len(published)} of "
             f"{len(PUBLISHED)}) | scenes below RX - {BELOW:g}: any seed | seed mean | worst vs RX: seed mean | "
             "any seed |", "|---|---|---|---|---|---|---|"]
    for c in candidates:
        gap = [mean[n][c] - mean[n]["global RX"] for n in names]
        seed_gaps = {n: [a[c] - a["global RX"] for a in aucs[n].values()] for n in names}
        lines.append(f"| {c} | {np.mean([mean[n][c] for n in names]):.4f} | "
                     f"{np.mean([mean[n][c] for n in published]) if published else float('nan'):.4f} | "
                     f"{sum(min(seed_gaps[n]) < -BELOW for n in names)} | {sum(g < -BELOW for g in gap)} | "
                     f"{min(gap):+.4f} | {min(min(g) for g in seed_gaps.values()):+.4f} |")
    meets = [c for c in candidates if c != "global RX"
             and all(mean[n][c] - mean[n]["global RX"] >= -BELOW for n in names)
             and published and np.mean([mean[n][c] for n in published]) >= PUBLISHED_BAR]
    best = max(meets, key=lambda c: np.mean([mean[n][c] for n in names])) if meets else None
    lines += ["", "Meeting the bar on the seed mean (AUC only; the binary maps of the candidates nearest the bar are in "
              f"the table after this one): {best + ' (the highest mean of those that do)' if best else 'none'}.",
              "", "Per scene, the mean AUC over the seeds:", "",
              "| scene | seeds | " + " | ".join(candidates) + " |", "|" + "---|" * (len(candidates) + 2)]
    for n in names:
        lines.append(f"| {n} | {len(aucs[n])} | " + " | ".join(f"{mean[n][c]:.4f}" for c in candidates) + " |")
    return lines


CHANGE_RULES = {"otsu (CVA default)": ("otsu", None), "kmeans": ("kmeans", None), "min-error": ("min-error", None),
                **{f"false-alarm {r:g}": ("false-alarm", r) for r in (0.003, 0.01, 0.03, 0.1)}}


def change_rows(data: str) -> list:
    """CVA's binary change maps on the real and simulated pairs, per rule and at the best threshold."""
    from hsi_detect_engine.classical import cva_magnitude
    from hsi_detect_engine.io.reader import read_cube
    from hsi_detect_engine.thresholds import choose_threshold

    from ..scenes import UNLABELLED, change_scenes, simulated_scenes

    work = os.path.join(REPO, "bench", "work")
    rows = []
    for scene in change_scenes(data, work) + simulated_scenes(data, work):
        if scene.make:
            scene.make()
        t1, t2 = read_cube(scene.inputs["t1"]), read_cube(scene.inputs["t2"])
        valid = t1.valid & t2.valid
        magnitude = cva_magnitude(t1.data, t2.data, valid)
        gt = scene.ground_truth()
        labelled = valid & (gt != UNLABELLED)
        for rule, (method, rate) in CHANGE_RULES.items():
            t = choose_threshold(magnitude[valid], method, false_alarm_rate=rate)
            rows.append({"detector": "cva", "scene": scene.name, "rule": rule,
                         **binary_figures((magnitude > t) & labelled, gt, labelled)})
        t = best_threshold(magnitude, gt, labelled)
        rows.append({"detector": "cva", "scene": scene.name, "rule": "best",
                     **binary_figures((magnitude >= t) & labelled, gt, labelled)})
    return rows


def change_table(rows: list) -> list:
    names = sorted({r["scene"] for r in rows})
    by = {(r["scene"], r["rule"]): r for r in rows}
    rules = list(CHANGE_RULES) + ["best"]
    lines = ["| rule | mean F1 | mean Kappa | " + " | ".join(f"{n} F1 / Kappa" for n in names) + " |",
             "|" + "---|" * (len(names) + 3)]
    for rule in rules:
        rr = [by[(n, rule)] for n in names]
        lines.append(f"| {rule} | {_mean(rr, 'f1'):.3f} | {_mean(rr, 'kappa'):.3f} | "
                     + " | ".join(f"{r['f1']:.3f} / {r['kappa']:.3f}" for r in rr) + " |")
    return lines


def report(rows: list, aucs: dict, bs3lnet_names: list, total: int, change: list = ()) -> str:
    from hsi_detect_engine.parameters import BS3LNET, HYSTERESIS_SPREAD, MAX_OBJECT_SHARE, default_false_alarm_rate

    default_score = next(p.default for p in BS3LNET if p.name == "score")
    rx_rate, bs_rate = default_false_alarm_rate("rx"), default_false_alarm_rate("bs3lnet")
    seeds = sorted({s for per in aucs.values() for s in per})
    out = ["# Anomaly binary maps: threshold rules against the best threshold", "",
           "Written by `python -m bench.studies.anomaly_thresholds`. Every score map is min-max normalised to "
           "0..1 as the anomaly pipeline writes it; each rule's binary map flags pixels of it. "
           "'best' is the threshold of highest F1 for the same map, read off the precision-recall curve (an upper "
           "bound no rule without the ground truth can reach). Objects are 8-connected regions: 'GT objects hit' "
           "is the mean share of ground-truth objects with at least one flagged pixel, 'false objects' the "
           "flagged regions touching no ground-truth object. "
           f"Goal: mean F1 of the default at least {GOAL} of the mean best F1, no empty map, no scene with more "
           f"than {100 * MAX_FLAGGED:g} % of its pixels flagged.", "",
           "false-alarm r: the background's scores modelled from the bulk (on the root of the scores above their "
           "minimum, an exponential upper half fitted from the median and the 90th percentile), cut where the "
           "model's exceedance is r, the expected share of background pixels flagged. 'seeds r grown to g': the "
           "8-connected regions of the pixels above the cut at g that hold a pixel above the cut at r (hysteresis; "
           "anomalies are compact objects, false alarms scattered); 'regions > x % dropped': a region covering more "
           "than x % of the valid pixels is taken as background (a bright field, a shoreline), not a rare object. "
           "The default, `--threshold hysteresis` at the method's expected false-alarm rate r (RX "
           f"{rx_rate:g}: seeds {rx_rate / HYSTERESIS_SPREAD:.2g} grown to {rx_rate * HYSTERESIS_SPREAD:.2g}; "
           f"BS3LNet {bs_rate:g}, whose default score is smoothed: seeds {bs_rate / HYSTERESIS_SPREAD:.2g} grown to "
           f"{bs_rate * HYSTERESIS_SPREAD:.2g}), regions > {100 * MAX_OBJECT_SHARE:g} % dropped "
           "(the rows 'hysteresis at rate r' show the rate a user sets moving it); the former default "
           "`--threshold false-alarm` is the row false-alarm 0.003. Rules were compared on the mean over all "
           "scenes, none tuned per scene.", ""]
    for detector, title in (("rx", "RX"), ("bs3lnet", f"BS3LNet (default parameters, score {default_score}, seed "
                                                      f"{THRESHOLD_SEED})")):
        n = len({r["scene"] for r in rows if r["detector"] == detector})
        if not n:
            continue
        out += [f"## {title}: {n} of {total} scenes", ""] + threshold_summary(rows, detector)
        out += ["", f"Per scene, the default rule beside the former default ({OLD_DEFAULT}) and the best threshold:",
                ""]
        out += threshold_scenes(rows, detector) + [""]
    over = [r for r in rows if r["detector"] == SEEDS_DETECTOR]
    if len({r["seed"] for r in over}) > 1:
        runs = ", ".join(f"seed {s} on {len({r['scene'] for r in over if r['seed'] == s})} scenes"
                         for s in sorted({r["seed"] for r in over}))
        out += [f"## BS3LNet over the seeds ({runs})", "",
                "The same rules on every cached training run, each scene and seed one map; means over all of them.",
                ""] + threshold_summary(rows, SEEDS_DETECTOR) + [""]
    if aucs:
        runs = ", ".join(f"seed {s} on {sum(s in per for per in aucs.values())}" for s in seeds)
        out += [f"## Scores of the default BS3LNet training against global RX (AUC; {len(aucs)} of {total} scenes; "
                f"{runs})", "",
                "Candidates from the same trained network (the paper's mse score, the same in the scaled units, the "
                "RX of its residual) and their fusions with global RX: sums of percentile ranks, of robust z-scores "
                "(median and MAD), of the robust z-scores of the scores' roots (a distance rather than a squared "
                "one), fourth roots or logs, of the roots scaled by their median-to-99th-percentile spread instead, "
                "of the tail ranks' surprise (-log of the share of pixels scoring at least as high), a sum of robust "
                "z-scores weighted by each one's separation measured without labels (the mean z of its highest 0.5 % "
                f"of pixels), and sums in which either RX takes its covariance from the bulk (the pixels at or below "
                f"the {100 * BULK:g}th percentile of its plain RX) or a joint RX of the scaled pixel and its residual "
                "is added; and sums smoothed among alike neighbours (bs3lnet/fusion.py: each pixel's 3 x 3 "
                "neighbours weighted by exp(-d^2 / 2 sigma^2), d the distance in the scaled scene's first three "
                "principal components at unit variance, sigma three times its median between horizontally adjacent "
                "pixels), beside the same sum under a plain 3 x 3 mean; and sums in which global RX is taken of "
                "the scene denoised among alike neighbours (each band averaged with the same weights, or with a third "
                "of their sigma), or, under the scene's own mean and covariance, of each pixel partly averaged with "
                "its alike neighbours (the default: half, the neighbours' weights with a third of the sigma, i.e. one "
                "median distance). The bar: at most "
                f"{BELOW:g} below global RX on every scene, a mean of at least {PUBLISHED_BAR:g} over the five published "
                "scenes, "
                "chosen by the mean over all scenes; the seed mean decides.", ""]
        out += score_summary(aucs) + [""]
        out += ["Binary maps of the paper's score and the candidates nearest the bar under the default rule "
                "(hysteresis at the default rate, the maps min-max normalised as written), every seed's map:", ""]
        out += fused_thresholds(rows) + ["", all_bars(aucs, rows), ""]
    if change:
        out += ["## Change maps: CVA on the change pairs (real and simulated)", "",
                "The change pipeline's default for CVA is Otsu's threshold on the magnitude; the same rules and the "
                "best threshold on the labelled pixels (255 = unlabelled left out).", ""]
        out += change_table(list(change)) + [""]
    out += [f"BS3LNet scenes in the threshold table: {', '.join(bs3lnet_names) or 'none'}.", ""]
    return "\n".join(out)


def default_score_map(cube: np.ndarray, maps: dict, valid: np.ndarray) -> np.ndarray:
    """The map of BS3LNet's default score (parameters.BS3LNET) from one run's cached maps."""
    from hsi_detect_engine.bs3lnet.detector import fused_with_rx
    from hsi_detect_engine.parameters import BS3LNET

    score = next(p.default for p in BS3LNET if p.name == "score")
    return fused_with_rx(maps["mse"], scaled_cube(cube, valid), valid) if score == "mse+rx" else maps[score]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=data_folder(),
                    help="folder with anomaly/*.npz (default: the benchmark's, $HSI_DETECT_DATA or ../shared/data)")
    ap.add_argument("--out", default=OUT, help="Markdown file to write")
    ap.add_argument("--no-change", action="store_true", help="leave out the change maps' table")
    args = ap.parse_args(argv)
    names = scene_names(args.data)
    rows, aucs, done = [], {}, []
    for name in names:
        rx = rx_score(args.data, name)
        cube, valid, gt = load_scene(args.data, name)
        rows += scene_rows("rx", name, rx, gt, valid)
        for seed in bs3lnet_maps.SEEDS:
            if not os.path.exists(bs3lnet_maps.map_path(name, seed)):
                continue
            maps = bs3lnet_maps.load_maps(name, seed)
            seed_rows = scene_rows(SEEDS_DETECTOR, name, default_score_map(cube, maps, valid), gt, valid)
            rows += [dict(r, seed=seed) for r in seed_rows]
            if seed == THRESHOLD_SEED:
                done.append(name)
                rows += [dict(r, detector="bs3lnet") for r in seed_rows]
            candidates = candidate_scores(cube, rx, maps, valid)
            aucs.setdefault(name, {})[seed] = {k: auc(v, gt, valid) for k, v in candidates.items()}
            for c in THRESHOLDED_CANDIDATES:
                rows += [dict(r, seed=seed) for r in scene_rows(c, name, candidates[c], gt, valid)
                         if r["rule"] in (DEFAULT_RULE, "best")]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(report(rows, aucs, done, len(names), [] if args.no_change else change_rows(args.data)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
