"""Raw BS3LNet maps of the default training, cached per scene and seed, for the score and threshold studies.

One default training run (parameters.BS3LNET's defaults) per scene and seed; its .npz holds the
reconstruction residual in the scaled units (H, W, B float32), the scaling's per-band scale, and
the score maps the detector gives from it: 'mse' (the default), 'mse-scaled' and 'rx' (the
residual's Mahalanobis distance). Any score built from the residual is then evaluated without
training again.

    python -m bench.studies.bs3lnet_maps [--seeds 1,2,3] [--scenes a,b] [--threads N]

The cache folder is $BS3LNET_MAPS, else bench/work/bs3lnet_maps.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ..runner import REPO
from ..scenes import data_folder

CACHE = os.environ.get("BS3LNET_MAPS") or os.path.join(REPO, "bench", "work", "bs3lnet_maps")
SEEDS = (1, 2, 3)


def map_path(name: str, seed: int) -> str:
    return os.path.join(CACHE, f"{name}-seed{seed}.npz")


def load_scene(data: str, name: str):
    with np.load(os.path.join(data, "anomaly", name + ".npz")) as d:
        cube = d["cube"].astype(np.float32)
        gt = d["gt"].astype(np.uint8)
    return cube, np.isfinite(cube).all(axis=2), gt


def train_and_cache(data: str, name: str, seed: int) -> str:
    """Train the default BS3LNet on one scene with one seed and write its maps (once)."""
    path = map_path(name, seed)
    if os.path.exists(path):
        return path
    import torch

    from hsi_detect_engine.bs3lnet import detector as bs3lnet
    from hsi_detect_engine.classical import rx_scores
    from hsi_detect_engine.parameters import BS3LNET, resolve
    from hsi_detect_engine.progress import Progress
    from hsi_detect_engine.runtime import seed_everything
    from hsi_detect_engine.scaling import apply_scaling, fit_scaling

    cube, valid, _ = load_scene(data, name)
    p = resolve(BS3LNET, {})
    seed_everything(seed)
    stats = fit_scaling(cube, valid, p["scaling"])
    image = torch.from_numpy(apply_scaling(cube, valid, stats))
    valid_t = torch.from_numpy(valid)
    net = bs3lnet.build_network(cube.shape[2], p)
    started = time.perf_counter()
    bs3lnet.fit(net, image, valid_t, p, bs3lnet.training_steps(p, int(valid.sum())), seed, Progress())
    trained = time.perf_counter() - started
    cpu = torch.device("cpu")
    maps = {s: bs3lnet.score_image(net, image, valid_t, dict(p, score=s), cpu, seed, Progress(), stats["scale"])
            for s in ("mse", "mse-scaled")}
    resid = bs3lnet.residual(net, image, p, cpu, seed, Progress())
    resid[~valid] = 0.0
    maps["rx"] = rx_scores(resid, valid)
    maps["rx"][~valid] = 0.0
    os.makedirs(CACHE, exist_ok=True)
    tmp = path[:-4] + ".tmp.npz"
    np.savez(tmp, residual=resid.astype(np.float32), scale=np.asarray(stats["scale"], dtype=np.float32),
             train_s=trained, **maps)
    os.replace(tmp, path)
    print(f"{name} seed {seed}: trained in {trained:.0f} s", flush=True)
    return path


def load_maps(name: str, seed: int) -> dict:
    with np.load(map_path(name, seed)) as d:
        return {k: d[k] for k in d.files}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=data_folder())
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--scenes", help="comma-separated scene names (default: all)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    folder = os.path.join(args.data, "anomaly")
    names = args.scenes.split(",") if args.scenes else sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".npz"))
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in names:
            train_and_cache(args.data, name, seed)


if __name__ == "__main__":
    main()
