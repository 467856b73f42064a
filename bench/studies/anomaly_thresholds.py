"""Binary maps of the anomaly detectors: each threshold rule against the best threshold, on every real scene.

For RX and BS3LNet (default parameters, one seed) the score maps of all scenes in DATA/anomaly
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

DATA = os.environ.get("HSI_DETECT_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, help="folder with anomaly/*.npz (default ../shared/data)")
    ap.add_argument("--scores-only", action="store_true", help="compute and cache the score maps, write no table")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for BS3LNet")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    names = scene_names(args.data)
    for name in names:
        rx_score(args.data, name)
        bs3lnet_scores(args.data, name)
    if args.scores_only:
        return


if __name__ == "__main__":
    main()
