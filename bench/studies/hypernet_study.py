"""HyperNet study: which settings make the default, measured on the change pairs.

Runs named configurations of the engine's HyperNet on Taizhou, Nanjing and the two
simulated hyperspectral pairs, with several seeds, and keeps for every run the change
magnitude map and the accuracy of the binary map under several threshold variants.

    python -m bench.studies.hypernet_study run CONFIG[,CONFIG..] PAIR[,PAIR..] SEED[,SEED..]
    python -m bench.studies.hypernet_study cva            # the CVA baseline rows
    python -m bench.studies.hypernet_study table CONFIG[,..] [PAIR,..]   # Kappa of every threshold variant
    python -m bench.studies.hypernet_study figures CONFIG[,..] [PAIR,..] # all figures, CVA beside
    python -m bench.studies.hypernet_study scores CONFIG[,..] PAIR[,..] SEED[,..]  # score variants
    python -m bench.studies.hypernet_study scores-table [THRESHOLD]     # their AUC / Kappa
    python -m bench.studies.hypernet_study report     # all tables -> bench/results/studies/hypernet_tables.md

Runs use one thread (the machine is shared); their times are not speed figures.
Results: bench/work/hypernet_study/runs.jsonl (one JSON object per run) and the maps
beside it; a run already in runs.jsonl is not repeated.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from hsi_detect_engine.accuracy.metrics import accuracy_figures, labelled_pixels
from hsi_detect_engine.classical import cva_magnitude, rx_scores
from hsi_detect_engine.io.cube import Cube, Georef
from hsi_detect_engine.io.pairs import Pair
from hsi_detect_engine.thresholds import kmeans_threshold, otsu_threshold

from ..runner import REPO
from ..scenes import data_folder

DATA = data_folder()
WORK = os.path.join(REPO, "bench", "work", "hypernet_study")
RUNS = os.path.join(WORK, "runs.jsonl")
UNLABELLED = 255
PAIRS = ("taizhou", "nanjing", "sim-sandiego", "sim-beach")

# The paper's settings: values as stored, the whole image every epoch, 200 epochs, BatchNorm
# with its running statistics at detection, the mean squared feature difference, Otsu on it.
PAPER_DETECTION = {"score": "mse", "bn_statistics": "running", "threshold_transform": "none"}
FAITHFUL = {"scaling": "none", "crop_size": 100000, "epochs": 200, **PAPER_DETECTION}
STD = {"scaling": "standardize", **PAPER_DETECTION}
C128 = {**STD, "crop_size": 128, "epochs": 200}
CONFIGS = {
    "faithful": FAITHFUL,
    "std": {**FAITHFUL, **STD},
    # screening on crops of 128 pixels (a tenth of Taizhou's cost per epoch)
    "c128": C128,
    "c128-none": {**C128, "scaling": "none"},
    "c128-e50": {**C128, "epochs": 50},
    "c128-e100": {**C128, "epochs": 100},
    "c128-f30": {**C128, "training_fraction": 0.3},
    "c128-f70": {**C128, "training_fraction": 0.7},
    "c128-otsu": {**C128, "training_pixels": "cva-otsu"},
    "c128-angle": {**C128, "training_pixels": "angle-fraction"},
    "c128-all": {**C128, "training_pixels": "all"},
    "c128-g0": {**C128, "gamma": 0.0},
    "c128-g2": {**C128, "gamma": 2.0},
    "c64": {**C128, "crop_size": 64},
    "c32": {**C128, "crop_size": 32},
    "c64-e100": {**C128, "crop_size": 64, "epochs": 100},
    "c64-e400": {**C128, "crop_size": 64, "epochs": 400},
    "c64-angle": {**C128, "crop_size": 64, "training_pixels": "angle-fraction"},
    "c64-f30": {**C128, "crop_size": 64, "training_fraction": 0.3},
    "c64-none": {**C128, "crop_size": 64, "scaling": "none"},
    "random": {**STD, "crop_size": 64, "epochs": 1, "learning_rate": 1e-12},  # an untrained network (for reference)
    "default": {},
    # one change from the default each
    "d-otsu": {"training_pixels": "cva-otsu"},
    "d-angle": {"training_pixels": "angle-fraction"},
    "d-all": {"training_pixels": "all"},
    "d-f30": {"training_fraction": 0.3},
    "d-e100": {"epochs": 100},
    "d-e400": {"epochs": 400},
    "d-c128": {"crop_size": 128},
    "d-std": {"scaling": "standardize"},
    "d-lr01": {"learning_rate": 0.01},
    "d-g0": {"gamma": 0.0},
    "d-cosine": {"score": "cosine"},
    # the default's detection on an untrained network: what the training adds
    "d-untrained": {"epochs": 1, "learning_rate": 1e-12},
    "d-untrained-cosine": {"score": "cosine", "epochs": 1, "learning_rate": 1e-12},
}
# Threshold variants for the binary map: the method and the transform of the score it is
# applied to; thresholds are taken over all valid pixels, as the product does.
TRANSFORMS = {"mse": lambda s: s, "sqrt": np.sqrt, "log": lambda s: np.log(s + 1e-12 * max(float(s.max()), 1e-30))}
THRESHOLDS = {f"{m}-{t}": (m, t) for m in ("otsu", "kmeans") for t in TRANSFORMS}


def load_pair(name: str):
    """(Pair, ground truth) of a study pair; simulated pairs use simulation seed 0."""
    if name in ("taizhou", "nanjing"):
        file = {"taizhou": "taizhou-landsat7-etm-6band.npz", "nanjing": "nanjing-landsat5-tm-6band.npz"}[name]
        with np.load(os.path.join(DATA, "change", file)) as z:
            t1, t2, gt = z["t1"].astype(np.float32), z["t2"].astype(np.float32), z["gt"]
    else:
        from hsi_detect_engine.simulate import preset_pair

        sim = preset_pair(name, os.path.join(DATA, "anomaly"), seed=0)
        t1, t2, gt = sim.t1, sim.t2, sim.gt
    rows, cols, nb = t1.shape
    valid = np.ones((rows, cols), bool)
    bands = list(range(1, nb + 1))
    cubes = [Cube(t, valid, Georef(rows, cols), bands) for t in (t1, t2)]
    return Pair(cubes[0], cubes[1], valid), gt


def binary_figures(score: np.ndarray, valid: np.ndarray, gt: np.ndarray) -> dict:
    """AUC of the score and, per threshold variant, the binary figures on the labelled pixels."""
    s, t = labelled_pixels(score.astype(np.float64), valid, gt, UNLABELLED)
    out = {"auc": accuracy_figures(s, t)["auc"]}
    for name, (method, transform) in THRESHOLDS.items():
        f = TRANSFORMS[transform]
        cut = (otsu_threshold if method == "otsu" else kmeans_threshold)(f(score[valid].astype(np.float64)))
        fig = accuracy_figures(f(s), t, threshold=cut)
        out[name] = {k: round(fig[k], 4) for k in ("oa", "kappa", "f1", "precision", "recall")}
    return out


def done(path: str = RUNS) -> set:
    """(config, pair, seed) of the runs recorded in ``path``."""
    if not os.path.exists(path):
        return set()
    with open(path) as f:
        return {(r["config"], r["pair"], r["seed"]) for r in map(json.loads, f)}


def record(row: dict):
    os.makedirs(WORK, exist_ok=True)
    with open(RUNS, "a") as f:
        f.write(json.dumps(row) + "\n")


def run(configs, pairs, seeds):
    import torch

    from hsi_detect_engine.hypernet.detector import detect
    from hsi_detect_engine.parameters import HYPERNET, resolve

    torch.set_num_threads(1)
    finished = done()
    for pair_name in pairs:
        pair, gt = load_pair(pair_name)
        for config in configs:
            for seed in seeds:
                if (config, pair_name, seed) in finished:
                    continue
                started = time.perf_counter()
                magnitude, diff, info = detect(pair, CONFIGS[config], device="cpu", seed=seed)
                seconds = time.perf_counter() - started
                row = {"config": config, "pair": pair_name, "seed": seed, "params": resolve(HYPERNET, CONFIGS[config]),
                       "seconds_1thread": round(seconds, 1), "info": info}
                row.update(binary_figures(magnitude, pair.valid, gt))
                acd = rx_scores(diff, pair.valid)
                row["acd_auc"] = binary_figures(acd, pair.valid, gt)["auc"]
                os.makedirs(WORK, exist_ok=True)
                np.save(os.path.join(WORK, f"{config}_{pair_name}_{seed}.npy"), magnitude.astype(np.float32))
                record(row)
                print(config, pair_name, seed, f"{seconds:.0f}s AUC {row['auc']:.4f} ACD {row['acd_auc']:.4f}",
                      " ".join(f"{k} {row[k]['kappa']:.3f}" for k in THRESHOLDS), flush=True)


def cva(pairs):
    finished = done()
    for pair_name in pairs:
        if ("cva", pair_name, 0) in finished:
            continue
        pair, gt = load_pair(pair_name)
        magnitude = cva_magnitude(pair.t1.data, pair.t2.data, pair.valid)
        row = {"config": "cva", "pair": pair_name, "seed": 0}
        row.update(binary_figures(magnitude ** 2, pair.valid, gt))  # squared: 'mse' is then CVA's own Otsu on ||d||^2
        record(row)
        print("cva", pair_name, f"AUC {row['auc']:.4f}", " ".join(f"{k} {row[k]['kappa']:.3f}" for k in THRESHOLDS))


def table(configs, pairs=PAIRS, threshold=None):
    """Means over seeds: AUC, ACD AUC and the Kappa of every threshold variant."""
    with open(RUNS) as f:
        rows = [json.loads(line) for line in f]
    lines = ["| config | pair | seeds | AUC | ACD AUC | " + " | ".join(f"Kappa {k}" for k in THRESHOLDS) + " |",
             "|---" * (5 + len(THRESHOLDS)) + "|"]
    for config in configs:
        for pair in pairs:
            sel = [r for r in rows if r["config"] == config and r["pair"] == pair]
            if not sel:
                continue
            mean = lambda get: np.mean([get(r) for r in sel])  # noqa: E731
            acd = f"{mean(lambda r: r['acd_auc']):.4f}" if "acd_auc" in sel[0] else "-"
            lines.append(f"| {config} | {pair} | {len(sel)} | {mean(lambda r: r['auc']):.4f} | {acd} | " +
                         " | ".join(f"{mean(lambda r: r[k]['kappa']):.3f}" for k in THRESHOLDS) + " |")
    return "\n".join(lines)


SCORES_RUNS = os.path.join(WORK, "scores.jsonl")


def score_variants(configs, pairs, seeds):
    """Train once (saved model), then compare detection scores on the same network:
    BatchNorm in eval mode (running statistics, the paper) or with each date's own batch
    statistics; mean squared difference, cosine distance, spectral-branch-only MSE of the
    fused features. Results: scores.jsonl."""
    import torch

    from hsi_detect_engine.hypernet.detector import detect
    from hsi_detect_engine.scaling import scale_on_own_statistics
    from hsi_detect_engine.hypernet.network import HyperNetModel
    from hsi_detect_engine.io.model_files import load_model

    torch.set_num_threads(1)
    finished = done(SCORES_RUNS)
    for pair_name in pairs:
        pair, gt = load_pair(pair_name)
        for config in configs:
            for seed in seeds:
                if (config, pair_name, seed) in finished:
                    continue
                path = os.path.join(WORK, "models", f"{config}_{pair_name}_{seed}.model")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                if not os.path.exists(path):
                    detect(pair, CONFIGS[config], device="cpu", seed=seed, save_model=path)
                tensors, cfg = load_model(path, "hypernet")
                net = HyperNetModel(pair.t1.shape[2], cfg["hidden"])
                net.load_state_dict(tensors)
                net.eval()
                x = [torch.from_numpy(scale_on_own_statistics(c.data, pair.valid, cfg["scaling"]).transpose(2, 0, 1).copy())[None]
                     for c in (pair.t1, pair.t2)]
                row = {"config": config, "pair": pair_name, "seed": seed}
                h = net.hidden
                with torch.no_grad():
                    for bn in ("eval", "date"):
                        if bn == "date":
                            for m in net.modules():
                                if isinstance(m, torch.nn.BatchNorm2d):
                                    m.train()
                                    m.momentum = 0.0
                        f1, f2 = net.features(x[0]), net.features(x[1])
                        maps = {"mse": ((f1 - f2) ** 2).mean(1)[0],
                                "cosine": 1 - torch.nn.functional.cosine_similarity(f1, f2, dim=1)[0],
                                "spectral-mse": ((f1[:, h:] - f2[:, h:]) ** 2).mean(1)[0]}
                        for name, m in maps.items():
                            m = m.numpy().astype(np.float64)
                            row[f"{bn}/{name}"] = binary_figures_extended(m, pair.valid, gt)
                with open(SCORES_RUNS, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(config, pair_name, seed, " ".join(f"{k} {v['auc']:.4f}" for k, v in row.items()
                                                         if isinstance(v, dict)), flush=True)


def binary_figures_extended(score, valid, gt):
    """AUC and the Kappa of Otsu / minimum-error thresholds on the score and its square root."""
    from hsi_detect_engine.thresholds import choose_threshold

    s, t = labelled_pixels(score, valid, gt, UNLABELLED)
    out = {"auc": round(accuracy_figures(s, t)["auc"], 5)}
    for method in ("otsu", "min-error"):
        for transform in ("none", "sqrt", "log"):
            cut = choose_threshold(score[valid], method, transform=transform)
            out[f"{method}-{transform}"] = round(accuracy_figures(s, t, threshold=cut)["kappa"], 4)
    return out


def cva_reference() -> dict:
    """pair -> (AUC, Kappa of Otsu on its magnitude over all valid pixels), from runs.jsonl."""
    with open(RUNS) as f:
        return {r["pair"]: (r["auc"], r["otsu-sqrt"]["kappa"]) for r in map(json.loads, f) if r["config"] == "cva"}


def scores_table(threshold: str = "otsu-sqrt", pairs=PAIRS) -> str:
    """The score-variant study: mean AUC / Kappa (at ``threshold``) per pair, wins over CVA."""
    with open(SCORES_RUNS) as f:
        rows = [json.loads(line) for line in f]
    cva = cva_reference()
    groups = {}
    for r in rows:
        for key, value in r.items():
            if isinstance(value, dict):
                groups.setdefault((r["config"], key), {}).setdefault(r["pair"], []).append(value)
    lines = ["| training | detection | " + " | ".join(pairs) + " | mean AUC | mean Kappa | beats CVA in both |",
             "|---" * (len(pairs) + 5) + "|"]
    lines.append("| CVA | Otsu | " + " | ".join(f"{cva[p][0]:.3f} / {cva[p][1]:.2f}" for p in pairs) +
                 f" | {np.mean([cva[p][0] for p in pairs]):.3f} | {np.mean([cva[p][1] for p in pairs]):.3f} | |")
    ranked = []
    for (config, variant), by_pair in groups.items():
        if set(by_pair) != set(pairs):
            continue
        auc = [np.mean([x["auc"] for x in by_pair[p]]) for p in pairs]
        kappa = [np.mean([x[threshold] for x in by_pair[p]]) for p in pairs]
        n = min(len(by_pair[p]) for p in pairs)
        wins = sum(a > cva[p][0] and k > cva[p][1] for a, k, p in zip(auc, kappa, pairs))
        ranked.append((np.mean(auc), f"| {config} ({n} seeds) | {variant} | " +
                       " | ".join(f"{a:.3f} / {k:.2f}" for a, k in zip(auc, kappa)) +
                       f" | {np.mean(auc):.3f} | {np.mean(kappa):.3f} | {wins} |"))
    return "\n".join(lines + [line for _, line in sorted(ranked, reverse=True)])


def figures_table(configs, pairs=PAIRS, threshold_of=None):
    """Means over seeds of AUC, ACD AUC, OA, Kappa, F1, precision and recall, CVA included.

    threshold_of: config -> threshold variant of its binary map (default: that config's
    own threshold_transform with Otsu; CVA: Otsu on its magnitude).
    """
    with open(RUNS) as f:
        rows = [json.loads(line) for line in f]
    head = "| pair | method | seeds | AUC | ACD AUC | OA | Kappa | F1 | precision | recall | binary map |"
    lines = [head, "|---" * 11 + "|"]
    for pair in pairs:
        for config in ["cva"] + list(configs):
            sel = [r for r in rows if r["config"] == config and r["pair"] == pair]
            if not sel:
                continue
            if config == "cva":
                variant = "otsu-sqrt"  # CVA's own magnitude (the rows hold its square)
            elif threshold_of and config in threshold_of:
                variant = threshold_of[config]
            else:
                transform = sel[0]["params"].get("threshold_transform", "none")
                variant = f"otsu-{'mse' if transform == 'none' else transform}"
            mean = lambda key: np.mean([r[variant][key] for r in sel])  # noqa: E731
            acd = np.mean([r["acd_auc"] for r in sel]) if "acd_auc" in sel[0] else None
            lines.append(f"| {pair} | {config} | {len(sel)} | {np.mean([r['auc'] for r in sel]):.4f} | "
                         f"{'-' if acd is None else f'{acd:.4f}'} | {mean('oa'):.4f} | {mean('kappa'):.4f} | "
                         f"{mean('f1'):.4f} | {mean('precision'):.4f} | {mean('recall'):.4f} | {variant} |")
    return "\n".join(lines)


REPORT = os.path.join(REPO, "bench", "results", "studies")


def report():
    """Write the study's tables to bench/results/studies/hypernet_tables.md, with its run logs beside."""
    import shutil

    sections = [
        ("The default and its parts, 3 seeds: the change magnitude as the product of the features' and the "
         "spectra's distances (default), the features alone (d-cosine), and both on an untrained network "
         "(what the training adds); binary maps at Otsu on the square root of the magnitude",
         figures_table(["default", "d-cosine", "d-untrained", "d-untrained-cosine"])),
        ("Training variants of the default, seeds 1-2 (default: seeds 1-3)",
         figures_table(["default", "d-lr01", "d-e100"])),
        ("The paper's setting (whole images, mse, running BatchNorm statistics, Otsu on the mse) and the "
         "screening runs on crops of 128 and 64 pixels (Taizhou unless said; Kappa at every threshold variant)",
         table(["faithful", "std", "c128", "c128-e50", "c128-e100", "c128-f30", "c128-otsu", "c128-angle",
                "c128-all", "c128-g0", "c64"])),
        ("Detection variants on the same trained networks (scores.jsonl), AUC / Kappa at Otsu on the square "
         "root; eval = BatchNorm running statistics, date = each date's own", scores_table()),
    ]
    os.makedirs(REPORT, exist_ok=True)
    with open(os.path.join(REPORT, "hypernet_tables.md"), "w") as f:
        f.write("# HyperNet study tables (generated by python -m bench.studies.hypernet_study report)\n\n"
                "Runs on one thread; CVA is on the standardised dates with Otsu on its magnitude. "
                "Run logs: hypernet_runs.jsonl, hypernet_scores.jsonl.\n")
        for title, body in sections:
            f.write(f"\n**{title}**\n\n{body}\n")
    shutil.copyfile(RUNS, os.path.join(REPORT, "hypernet_runs.jsonl"))
    shutil.copyfile(SCORES_RUNS, os.path.join(REPORT, "hypernet_scores.jsonl"))


def main(argv):
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
    elif argv[0] == "run":
        run(split(argv[1]), split(argv[2]), [int(s) for s in split(argv[3])])
    elif argv[0] == "cva":
        cva(split(argv[1]) if len(argv) > 1 else PAIRS)
    elif argv[0] == "table":
        print(table(split(argv[1]), split(argv[2]) if len(argv) > 2 else PAIRS))
    elif argv[0] == "scores":
        score_variants(split(argv[1]), split(argv[2]), [int(x) for x in split(argv[3])])
    elif argv[0] == "scores-table":
        print(scores_table(argv[1] if len(argv) > 1 else "otsu-sqrt"))
    elif argv[0] == "report":
        report()
    elif argv[0] == "figures":
        print(figures_table(split(argv[1]), split(argv[2]) if len(argv) > 2 else PAIRS))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}; see python -m bench.studies.hypernet_study --help")


if __name__ == "__main__":
    main(sys.argv[1:])
