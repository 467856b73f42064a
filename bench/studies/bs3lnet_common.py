"""Shared helpers of the BS3LNet studies: AUC against training time on the real scenes.

One run trains once and scores at several checkpoints, so a whole AUC-vs-time curve
costs one training run. Training time is counted alone (scoring at checkpoints is
not), and each score mode's detection time is recorded beside it.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from ..published import published_bs3lnet_auc
from ..scenes import data_folder

DATA = data_folder()
PUBLISHED = published_bs3lnet_auc()  # scene -> published BS3LNet AUC, the five published scenes


def set_threads(n: int):
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    torch.set_num_threads(n)


def all_scenes() -> list:
    folder = os.path.join(DATA, "anomaly")
    return sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".npz"))


def load_scene(name: str):
    d = np.load(os.path.join(DATA, "anomaly", name + ".npz"))
    cube = d["cube"].astype(np.float32)
    valid = np.isfinite(cube).all(axis=2)
    return cube, valid, d["gt"].astype(np.uint8)


def auc(score: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(gt[valid].ravel(), score[valid].ravel()))


def rx_auc(name: str) -> float:
    from hsi_detect_engine.classical import rx_scores

    cube, valid, gt = load_scene(name)
    return auc(rx_scores(cube, valid), gt, valid)


def curve(name: str, overrides: dict, seed: int, checkpoints: list, score_rounds: list,
          extra_scores=("mse", "mse-scaled", "rx")) -> list:
    """Train with ``overrides`` and return one row per (checkpoint, score): the configured score
    for each of ``score_rounds``, and each of ``extra_scores`` other than it on the unmasked pass."""
    import torch

    from hsi_detect_engine.bs3lnet import detector as bs3lnet
    from hsi_detect_engine.parameters import BS3LNET, resolve
    from hsi_detect_engine.progress import Progress
    from hsi_detect_engine.runtime import seed_everything
    from hsi_detect_engine.scaling import apply_scaling, fit_scaling
    from hsi_detect_engine.training import train

    cube, valid, gt = load_scene(name)
    p = resolve(BS3LNET, overrides)
    seed_everything(seed)
    dev = torch.device("cpu")
    stats = fit_scaling(cube, valid, p["scaling"])
    image = torch.from_numpy(apply_scaling(cube, valid, stats))
    valid_t = torch.from_numpy(valid)
    net = bs3lnet.build_network(cube.shape[2], p)
    optimizer, batches, loss_at = bs3lnet.trainer(net, image, valid_t, p, seed)
    quiet = Progress()
    rows, done, seconds, cpu, losses = [], 0, 0.0, 0.0, []
    for target in checkpoints:
        started, cpu_started = time.perf_counter(), time.process_time()
        losses += train(net, optimizer, loss_at, target - done, quiet)
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        done = target
        common_fields = {"scene": name, "seed": seed, "iterations": done,
                         "epochs": round(done * p["batch_size"] / batches.pixels, 4),
                         "train_s": round(seconds, 2), "train_cpu_s": round(cpu, 2),
                         "loss": round(float(np.mean(losses[-10:])), 6) if losses else None, **overrides}
        for r in score_rounds:
            q = dict(p, score_rounds=r)
            t0 = time.perf_counter()
            score = bs3lnet.score_image(net, image, valid_t, q, dev, seed, quiet, stats["scale"])
            rows.append({**common_fields, "score_rounds": r, "score": p["score"],
                         "detect_s": round(time.perf_counter() - t0, 2), "auc": round(auc(score, gt, valid), 5)})
        for variant in [v for v in extra_scores if v != p["score"]]:
            score = bs3lnet.score_image(net, image, valid_t, dict(p, score=variant), dev, seed, quiet, stats["scale"])
            rows.append({**common_fields, "score_rounds": 0, "score": variant, "auc": round(auc(score, gt, valid), 5)})
        net.train()
    return rows


def append_jsonl(path: str, rows: list):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def read_jsonl(path: str) -> list:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
