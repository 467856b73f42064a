"""BS3LNet anomaly detection: train the blind-spot network on the image itself, then score
every pixel by its reconstruction error.

The same shape as HyperNet's detector: ``build_network``, ``trainer`` (the optimiser and
the loss of each step for the shared training loop), ``score_image``, and ``detect``, which
the anomaly pipeline calls. The studies in bench/studies call ``build_network``, ``trainer``
and ``score_image`` themselves, to score at several checkpoints of one training run.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import HsiDetectError
from ..parameters import BS3LNET, MODEL_KEYS, resolve
from ..progress import Progress


def training_steps(p: dict, valid_pixels: int) -> int:
    """Iterations, or epochs as the paper counts them (one patch per valid pixel) when given."""
    if p["epochs"] > 0:
        return max(1, math.ceil(p["epochs"] * valid_pixels / p["batch_size"]))
    return int(p["iterations"])


def build_network(bands: int, p: dict):
    from .network import BS3LNet

    return BS3LNet(bands, p["features"], p["blocks"], p["norm"])


def trainer(net, image, valid, p: dict, seed: int):
    """The optimiser, the batch maker and loss_at(i) for ``training.train``."""
    from .blindspot import BlindSpotBatches

    batches = BlindSpotBatches(image, valid, p["patch_size"], p["ratio"], p["window"], p["batch_size"],
                               p["redraw"], seed)
    return trainer_on(net, batches, p)


def trainer_on(net, batches, p: dict):
    """``trainer`` for any batch maker with a ``next()`` (a streamed run's crops)."""
    import torch

    from .blindspot import masked_loss

    optimizer = torch.optim.Adam(net.parameters(), lr=p["learning_rate"], betas=(p["beta1"], 0.999),
                                 weight_decay=p["weight_decay"])

    def loss_at(i):
        batch = batches.next()
        return masked_loss(net(batch.inputs), batch, p["loss"])

    return optimizer, batches, loss_at


def fit(net, image, valid, p: dict, steps: int, seed: int, progress: Progress):
    """Train ``net`` on blind-spot batches of ``image`` (H, W, B tensor on the training device)."""
    from ..training import train

    optimizer, batches, loss_at = trainer(net, image, valid, p, seed)
    return train(net, optimizer, loss_at, steps, progress, label="iteration"), batches


def _bytes_per_pixel(bands: int, features: int) -> float:
    # input, output and the reflection-padded copies, plus a handful of live feature maps
    return 4.0 * (4 * bands + 10 * features)


CPU_TILE_BYTES = 1 << 30  # on the CPU larger tiles are no faster, and memory stays low
FIT_PER_BAND = 20  # bytes per pixel and band while ``detect`` fits the scaling: the float32 cube, and
#                    fit_scaling's float64 copy of the valid pixels with its centred temporary
SCORE_PER_BAND = 8  # while it trains and scores: the float32 cube and its scaled copy
IN_MEMORY_PER_PIXEL = 64  # the masks, the float64 and float32 scores, the normalised score
TRAINING_FACTOR = 3  # a training step's memory over its batch's forward activations (measured 2.8 at
#                      224 bands: the activations kept for the backward pass, their gradients, Adam's state)


def training_bytes(p: dict, bands: int) -> int:
    """Host memory of a training step on the CPU, set by the parameters, not by the scene (about
    670 MB at the defaults and 224 bands)."""
    return int(TRAINING_FACTOR * p["batch_size"] * p["patch_size"] ** 2 * _bytes_per_pixel(bands, p["features"]))


def in_memory_bytes(rows: int, cols: int, bands: int, p: dict) -> int:
    """Host memory of ``detect`` and the pipeline around it on a (rows, cols, bands) scene with the
    parameters ``p``: the larger of its peak while fitting the scaling and its peak while training
    or scoring (the arrays plus a training step, or the detection tile's activations on the CPU,
    at most CPU_TILE_BYTES)."""
    pixels = rows * cols
    tile = min(pixels * _bytes_per_pixel(bands, p["features"]), CPU_TILE_BYTES)
    step = max(tile, training_bytes(p, bands))
    return int(pixels * IN_MEMORY_PER_PIXEL + max(pixels * FIT_PER_BAND * bands, pixels * SCORE_PER_BAND * bands + step))


def _forward(net, part, with_error: bool, weights=None):
    """Network output of an (h, w, B) tensor as numpy (h, w, B); with_error: instead the mean
    over bands of the squared residual, each band's residual multiplied by ``weights``."""
    import torch

    from ..runtime import channels_last

    with torch.no_grad(), channels_last(net):
        t = part.permute(2, 0, 1).unsqueeze(0)  # channels-last, as the network runs fastest
        h, w = t.shape[2:]
        # A one-pixel-wide image cannot be reflection-padded: repeat it, run, crop.
        y = net(t.repeat(1, 1, 2 if h == 1 else 1, 2 if w == 1 else 1) if min(h, w) == 1 else t)[0, :, :h, :w]
        if with_error:
            r = t[0] - y
            if weights is not None:
                r = r * weights[:, None, None]
            return (r * r).mean(dim=0, keepdim=True).permute(1, 2, 0).cpu().numpy()
        return y.permute(1, 2, 0).cpu().numpy()


def _by_tiles(net, x, p: dict, device, progress: Progress, with_error: bool, weights=None) -> np.ndarray:
    """_forward over an (H, W, B) tensor in eval mode, by tiles overlapping by the receptive
    radius (the whole image when it fits), which gives the whole-image result."""
    from ..io.tiles import apply_by_tiles, choose_tile

    overlap = net.receptive_radius(p["blocks"])
    tile = choose_tile(p["tile_size"], x.shape[0], x.shape[1], _bytes_per_pixel(x.shape[2], p["features"]), device,
                       overlap, cpu_cap_bytes=CPU_TILE_BYTES)
    net.eval()
    return apply_by_tiles(lambda part: _forward(net, part, with_error, weights), x,
                          1 if with_error else x.shape[2], tile, overlap, progress)


def residual(net, image, p: dict, device, seed: int, progress: Progress) -> np.ndarray:
    """Reconstruction residual x - y (H, W, B) float32 of a scaled image tensor.

    score_rounds 0 (the paper): one pass over the unmasked image. R > 0: R rounds of
    blind passes; in each round every pixel is blind once, replaced as in training by a
    random neighbour inside the window, and its residual is taken from that pass.
    """
    import torch

    from .blindspot import blind_count, reflect_index

    rows, cols, bands = image.shape

    def run(x):
        return _by_tiles(net, x, p, device, progress, with_error=False)

    if p["score_rounds"] == 0:
        return image.cpu().numpy() - run(image)
    groups = max(1, round(p["patch_size"] ** 2 / blind_count(p["patch_size"], p["ratio"])))
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) + 7919)
    w = p["window"]
    ys = torch.arange(rows, device=device)[:, None].expand(rows, cols).reshape(-1)
    xs = torch.arange(cols, device=device)[None, :].expand(rows, cols).reshape(-1)
    flat = image.reshape(-1, bands)
    flat_np = flat.cpu().numpy()
    total = np.zeros((rows * cols, bands), dtype=np.float32)
    for _ in range(p["score_rounds"]):
        group = torch.randperm(rows * cols, device=device, generator=gen) % groups
        code = torch.randint(0, w * w - 1, (rows * cols,), device=device, generator=gen)
        code = code + (code >= (w * w) // 2).long()
        sy = reflect_index(ys + code // w - w // 2, rows)
        sx = reflect_index(xs + code % w - w // 2, cols)
        for g in range(groups):
            blind = torch.nonzero(group == g).reshape(-1)
            x = flat.clone()
            x[blind] = flat[sy[blind] * cols + sx[blind]]
            y = run(x.reshape(rows, cols, bands)).reshape(-1, bands)
            b = blind.cpu().numpy()
            total[b] += flat_np[b] - y[b]
    return (total / p["score_rounds"]).reshape(rows, cols, bands)


def score_image(net, image, valid, p: dict, device, seed: int, progress: Progress, scale=None) -> np.ndarray:
    """Anomaly score (H, W) float64 of a scaled image (H, W, B tensor on ``device``); invalid pixels 0.

    score 'mse' (the paper): mean over bands of the squared residual in the input's own
    units (the residual times the scaling's per-band ``scale``), so that the scaling only
    conditions training; 'mse-scaled': the same in the scaled units; 'rx': Mahalanobis
    distance of the residual to the mean and covariance of the valid pixels' residuals; 'mse+rx':
    'mse' fused with RX of the image (each pixel half averaged with its alike neighbours), the sum
    smoothed among alike neighbours (fusion.py).
    """
    import torch

    from ..classical import rx_scores

    valid_np = valid.cpu().numpy() if hasattr(valid, "cpu") else valid
    weights = None
    if p["score"] in ("mse", "mse+rx") and scale is not None:
        weights = torch.as_tensor(np.asarray(scale, dtype=np.float32), device=device)
    if p["score"] != "rx" and p["score_rounds"] == 0:
        # Reduced tile by tile: no (H, W, B) residual is kept.
        score = _by_tiles(net, image, p, device, progress, with_error=True, weights=weights)[:, :, 0]
        score = score.astype(np.float64)
    else:
        resid = residual(net, image, p, device, seed, progress)
        if p["score"] == "rx":
            score = rx_scores(resid, valid_np)
        else:
            if weights is not None:
                resid = resid * weights.cpu().numpy()
            score = (resid.astype(np.float64) ** 2).mean(axis=2)
    if p["score"] == "mse+rx":
        score = fused_with_rx(score, image.cpu().numpy(), valid_np)
    score[~valid_np] = 0.0
    return score


def fused_with_rx(mse: np.ndarray, image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Score 'mse+rx' of the mse map and the scaled (rows, cols, bands) image: the RX part and the
    guide components come from one mean and covariance of its valid pixels."""
    from ..classical import mean_cov, safe_inverse
    from .fusion import adjacent_distances, fuse, guide_of, projection, rx_part, spacing_of

    pixels = image.reshape(-1, image.shape[-1]) if valid.all() else image[valid]  # no copy when all are valid
    mean, cov = mean_cov(pixels)
    matrix = projection(cov)
    guide = np.zeros(valid.shape + (matrix.shape[1],))
    guide[valid] = guide_of(pixels, mean, matrix)
    spacing = spacing_of(adjacent_distances(guide, valid))
    return fuse([mse, rx_part(image, valid, guide, spacing, mean, safe_inverse(cov))], valid, guide)


def load_network(net, tensors: dict, model_path: str):
    """Put a saved model's weights into ``net``, or refuse a model of another shape."""
    try:
        net.load_state_dict(tensors)
    except RuntimeError:
        raise HsiDetectError(f"{model_path} does not hold a BS3LNet network of the expected shape. "
                             "Give a model saved by this tool.") from None


def store(path: str, net, stats: dict, p: dict, bands: int, wavelengths) -> str:
    """Save the network with its scaling and parameters (safetensors); returns the path written."""
    import torch

    from ..io.model_files import save_model as write_model

    tensors = dict(net.state_dict())
    tensors["scaling.offset"] = torch.from_numpy(np.asarray(stats["offset"], dtype=np.float32))
    tensors["scaling.scale"] = torch.from_numpy(np.asarray(stats["scale"], dtype=np.float32))
    config = {"bands": bands, "wavelengths": wavelengths, **{k: p[k] for k in p}}
    return write_model(path, "bs3lnet", tensors, config)


def load(model_path: str, bands: int, wavelengths=None):
    """(the network's tensors, the model's configuration, its scaling statistics) of a saved model."""
    from ..io.model_files import load_model

    tensors, config = load_model(model_path, "bs3lnet", bands, wavelengths)
    stats = {"mode": config["scaling"], "offset": tensors.pop("scaling.offset").numpy(),
             "scale": tensors.pop("scaling.scale").numpy()}
    return tensors, config, stats


def detect(cube, params: dict, *, device: str = "auto", seed: int = 1, model_path=None, save_model=None,
           progress: Progress = None):
    """Train BS3LNet on ``cube`` (or apply a saved model) and return (raw score, info)."""
    import torch

    from ..runtime import cancel_hooks, describe_device, resolve_device, seed_everything
    from ..scaling import apply_scaling, fit_scaling

    progress = progress or Progress()
    p = resolve(BS3LNET, params)
    rows, cols, bands = cube.shape
    dev = resolve_device(device)
    seed_everything(seed)
    progress.update("preparing", 0.0, "preparing", force=True)
    if model_path:
        tensors, config, stats = load(model_path, bands, cube.wavelengths)
        p.update({k: config[k] for k in MODEL_KEYS["bs3lnet"]})
    else:
        stats = fit_scaling(cube.data, cube.valid, p["scaling"])
    scaled = apply_scaling(cube.data, cube.valid, stats)
    image = torch.from_numpy(scaled).to(dev)
    valid = torch.from_numpy(cube.valid).to(dev)
    net = build_network(bands, p).to(dev)
    hooks = cancel_hooks([m for m in net.modules() if isinstance(m, torch.nn.Conv2d)], progress)
    info = {"device": describe_device(dev)}
    progress.update("preparing", 1.0, "ready")
    if model_path:
        load_network(net, tensors, model_path)
        info["model"] = model_path
    else:
        steps = training_steps(p, int(cube.valid.sum()))
        started = time.perf_counter()
        history, batches = fit(net, image, valid, p, steps, seed, progress)
        info["training"] = {"iterations": steps, "epochs": round(steps * p["batch_size"] / batches.pixels, 4),
                            "seconds": round(time.perf_counter() - started, 3),
                            "final_loss": float(np.mean(history[-10:])) if history else None}
    started = time.perf_counter()
    score = score_image(net, image, valid, p, dev, seed, progress, stats["scale"])
    info["detection_seconds"] = round(time.perf_counter() - started, 3)
    for h in hooks:
        h.remove()
    if save_model:
        info["saved_model"] = store(save_model, net, stats, p, bands, cube.wavelengths)
    info["parameters"] = p
    return score, info
