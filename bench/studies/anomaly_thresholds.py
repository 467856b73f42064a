"""Binary maps of the anomaly detectors: each threshold rule against the best threshold, on every real scene.

For RX and BS3LNet (default parameters, one seed) the score maps of all scenes in the benchmark's anomaly folder
are computed once and cached under bench/work/anomaly_thresholds/. For every threshold rule
the binary map is scored against the ground truth at pixel level (F1, Cohen's kappa,
precision, recall, pixels flagged) and at object level (share of ground-truth objects hit,
detected objects touching none), beside the F1 of the best threshold for the same score map
(read off the precision-recall curve). The same trained network also gives the RX of its
residual, so the candidate scores of the "never lose to RX" question are compared here too
(one seed only).

    python -m bench.studies.anomaly_thresholds [--scores-only] [--data DIR]

writes bench/results/studies/anomaly_thresholds.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ..runner import REPO
from ..scenes import data_folder

CACHE = os.path.join(REPO, "bench", "work", "anomaly_thresholds")
OUT = os.path.join(REPO, "bench", "results", "studies", "anomaly_thresholds.md")
SEED = 1


def scene_names(data: str) -> list:
    folder = os.path.join(data, "anomaly")
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".npz"))


def load_scene(data: str, name: str):
    with np.load(os.path.join(data, "anomaly", name + ".npz")) as d:
        cube = d["cube"].astype(np.float32)
        gt = d["gt"].astype(np.uint8)
    return cube, np.isfinite(cube).all(axis=2), gt


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


def bs3lnet_scores(data: str, name: str) -> dict:
    """{'mse': the default score, 'rx': RX of the same network's residual} of one training run."""
    paths = {s: os.path.join(CACHE, f"bs3lnet-{s}", f"{name}-seed{SEED}.npy") for s in ("mse", "rx")}
    if not all(os.path.exists(p) for p in paths.values()):
        import torch

        from hsi_detect_engine.bs3lnet import detector as bs3lnet
        from hsi_detect_engine.parameters import BS3LNET, resolve
        from hsi_detect_engine.progress import Progress
        from hsi_detect_engine.runtime import seed_everything
        from hsi_detect_engine.scaling import apply_scaling, fit_scaling

        cube, valid, _ = load_scene(data, name)
        p = resolve(BS3LNET, {})
        seed_everything(SEED)
        stats = fit_scaling(cube, valid, p["scaling"])
        image = torch.from_numpy(apply_scaling(cube, valid, stats))
        valid_t = torch.from_numpy(valid)
        net = bs3lnet.build_network(cube.shape[2], p)
        started = time.perf_counter()
        bs3lnet.fit(net, image, valid_t, p, bs3lnet.training_steps(p, int(valid.sum())), SEED, Progress())
        for s, path in paths.items():
            score = bs3lnet.score_image(net, image, valid_t, dict(p, score=s), torch.device("cpu"), SEED,
                                        Progress(), stats["scale"])
            _cached(path, lambda: score)
        print(f"{name}: BS3LNet trained and scored in {time.perf_counter() - started:.0f} s", flush=True)
    return {s: np.load(p) for s, p in paths.items()}


RULES = {"otsu": ("otsu", None), "kmeans": ("kmeans", None), "min-error": ("min-error", None),
         **{f"false-alarm {r:g}": ("false-alarm", r) for r in (0.001, 0.003, 0.01, 0.03)}}
DEFAULT_RULE = "false-alarm 0.003"
MAX_FLAGGED = 0.05
GOAL = 0.85
PUBLISHED = ("abu-airport-1", "abu-airport-2", "abu-airport-4", "abu-urban-1", "abu-beach-1")


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
    from hsi_detect_engine.thresholds import choose_threshold

    s = normalised(score, valid)
    rows = []
    for rule, (method, rate) in RULES.items():
        t = choose_threshold(s[valid], method, false_alarm_rate=rate)
        rows.append({"detector": detector, "scene": name, "rule": rule, "threshold": t,
                     **binary_figures((s > t) & valid, gt, valid)})
    t = best_threshold(s, gt, valid)
    rows.append({"detector": detector, "scene": name, "rule": "best", "threshold": t,
                 **binary_figures((s >= t) & valid, gt, valid)})
    return rows


def auc(score: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(gt[valid] == 1, score[valid]))


def robust_z(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    v = score[valid]
    median = np.median(v)
    mad = 1.4826 * np.median(np.abs(v - median)) or 1.0
    return (score - median) / mad


def percentile_rank(score: np.ndarray, valid: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    out = np.zeros(score.shape)
    out[valid] = rankdata(score[valid]) / valid.sum()
    return out


def candidate_scores(rx: np.ndarray, mse: np.ndarray, resid_rx: np.ndarray, valid: np.ndarray) -> dict:
    """Scores of one trained network, with global RX beside and their fusions."""
    return {"global RX": rx, "BS3LNet mse (default)": mse, "BS3LNet residual RX": resid_rx,
            "rank mean (residual RX, global RX)": percentile_rank(resid_rx, valid) + percentile_rank(rx, valid),
            "robust-z sum (residual RX, global RX)": robust_z(resid_rx, valid) + robust_z(rx, valid),
            "robust-z sum (mse, global RX)": robust_z(mse, valid) + robust_z(rx, valid),
            "robust-z max (mse, global RX)": np.maximum(robust_z(mse, valid), robust_z(rx, valid))}


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
        lines.append(f"| {rule}{' (default)' if rule == DEFAULT_RULE else ''} | {_mean(rr, 'f1'):.3f} | "
                     f"{_mean(rr, 'f1') / best:.2f} | {_mean(rr, 'kappa'):.3f} | {_mean(rr, 'precision'):.3f} | "
                     f"{_mean(rr, 'recall'):.3f} | {100 * min(share):.2f}-{100 * max(share):.2f} | "
                     f"{sum(r['flagged'] == 0 for r in rr)} | {sum(s > MAX_FLAGGED for s in share)} | "
                     f"{_mean(rr, 'objects_hit_share'):.2f} | {_mean(rr, 'false_objects'):.1f} |")
    return lines


def threshold_scenes(rows: list, detector: str) -> list:
    mine = {(r["scene"], r["rule"]): r for r in rows if r["detector"] == detector}
    names = sorted({r["scene"] for r in rows if r["detector"] == detector})
    lines = ["| scene | default F1 | Kappa | precision | recall | flagged | GT objects hit | false objects | "
             "best F1 | best flagged | Otsu F1 | Otsu flagged |", "|" + "---|" * 12]
    for n in names:
        d, b, o = mine[(n, DEFAULT_RULE)], mine[(n, "best")], mine[(n, "otsu")]
        lines.append(f"| {n} | {d['f1']:.3f} | {d['kappa']:.3f} | {d['precision']:.3f} | {d['recall']:.3f} | "
                     f"{d['flagged']} | {d['objects_hit']}/{d['truth_objects']} | {d['false_objects']} | "
                     f"{b['f1']:.3f} | {b['flagged']} | {o['f1']:.3f} | {o['flagged']} |")
    return lines


def score_table(aucs: dict) -> list:
    names = sorted(aucs)
    candidates = list(next(iter(aucs.values()))) if aucs else []
    published = sum(n in PUBLISHED for n in names)
    lines = [f"| score | mean AUC ({len(names)} scenes) | mean AUC (published: {published} of {len(PUBLISHED)}) | "
             "scenes below global RX - 0.005 | worst vs RX |",
             "|---|---|---|---|---|"]
    for c in candidates:
        gap = [aucs[n][c] - aucs[n]["global RX"] for n in names]
        pub = [aucs[n][c] for n in names if n in PUBLISHED]
        lines.append(f"| {c} | {np.mean([aucs[n][c] for n in names]):.4f} | "
                     f"{np.mean(pub) if pub else float('nan'):.4f} | {sum(g < -0.005 for g in gap)} | "
                     f"{min(gap):+.4f} |")
    lines += ["", "| scene | " + " | ".join(candidates) + " |", "|" + "---|" * (len(candidates) + 1)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{aucs[n][c]:.4f}" for c in candidates) + " |")
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
    out = ["# Anomaly binary maps: threshold rules against the best threshold", "",
           "Written by `python -m bench.studies.anomaly_thresholds`. Every score map is min-max normalised to "
           "0..1 as the anomaly pipeline writes it; each rule's binary map flags the scores above its threshold. "
           "'best' is the threshold of highest F1 for the same map, read off the precision-recall curve (an upper "
           "bound no rule without the ground truth can reach). Objects are 8-connected regions: 'GT objects hit' "
           "is the mean share of ground-truth objects with at least one flagged pixel, 'false objects' the "
           "flagged regions touching no ground-truth object. "
           f"Goal: mean F1 of the default at least {GOAL} of the mean best F1, no empty map, no scene with more "
           f"than {100 * MAX_FLAGGED:g} % of its pixels flagged.", "",
           "false-alarm r: the background's scores modelled from the bulk (on the root of the scores above their "
           "minimum, an exponential upper half fitted from the median and the 90th percentile), cut where the "
           "model's exceedance is r, the expected share of background pixels flagged.", ""]
    for detector, title in (("rx", "RX"), ("bs3lnet", "BS3LNet (default parameters, seed 1)")):
        n = len({r["scene"] for r in rows if r["detector"] == detector})
        if not n:
            continue
        out += [f"## {title}: {n} of {total} scenes", ""] + threshold_summary(rows, detector)
        out += ["", f"Per scene, the default rule ({DEFAULT_RULE}) beside the best threshold and Otsu:", ""]
        out += threshold_scenes(rows, detector) + [""]
    if aucs:
        out += [f"## Scores of one BS3LNet training against global RX (AUC; seed 1 only, {len(aucs)} of {total} "
                "scenes)", "",
                "Candidates from the same trained network (the default mse score, the RX of its residual) and "
                "their fusions with global RX: the sum of the two scores' percentile ranks, or of their robust "
                "z-scores (median and MAD). One seed: a choice needs the three-seed run.", ""]
        out += score_table(aucs) + [""]
    if change:
        out += ["## Change maps: CVA on the change pairs (real and simulated)", "",
                "The change pipeline's default for CVA is Otsu's threshold on the magnitude; the same rules and the "
                "best threshold on the labelled pixels (255 = unlabelled left out).", ""]
        out += change_table(list(change)) + [""]
    out += [f"BS3LNet scenes in this table: {', '.join(bs3lnet_names) or 'none'}.", ""]
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=data_folder(),
                    help="folder with anomaly/*.npz (default: the benchmark's, $HSI_DETECT_DATA or ../shared/data)")
    ap.add_argument("--scores-only", action="store_true", help="compute and cache the score maps, write no table")
    ap.add_argument("--cached-bs3lnet", action="store_true",
                    help="train no network: use the BS3LNet score maps cached so far")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for BS3LNet")
    ap.add_argument("--out", default=OUT, help="Markdown file to write")
    ap.add_argument("--scenes", help="comma-separated scene names to compute now, in this order (default: all)")
    args = ap.parse_args(argv)
    names = scene_names(args.data)
    if args.scenes:
        unknown = set(args.scenes.split(",")) - set(names)
        if unknown:
            ap.error(f"unknown scene(s): {', '.join(sorted(unknown))}")
        names = args.scenes.split(",")
    rows, aucs, done = [], {}, []
    for name in names:
        rx = rx_score(args.data, name)
        cached = all(os.path.exists(os.path.join(CACHE, f"bs3lnet-{s}", f"{name}-seed{SEED}.npy")) for s in ("mse", "rx"))
        net = None
        if cached or not args.cached_bs3lnet:
            import torch

            torch.set_num_threads(args.threads)
            net = bs3lnet_scores(args.data, name)
        if args.scores_only:
            continue
        _, valid, gt = load_scene(args.data, name)
        rows += scene_rows("rx", name, rx, gt, valid)
        if net is not None:
            done.append(name)
            rows += scene_rows("bs3lnet", name, net["mse"], gt, valid)
            aucs[name] = {k: auc(v, gt, valid) for k, v in candidate_scores(rx, net["mse"], net["rx"], valid).items()}
    if args.scores_only:
        return
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(report(rows, aucs, done, len(names), change_rows(args.data)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
