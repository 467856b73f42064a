"""HyperNet change detection: train on the pair itself (no labels), then compare features.

Steps: scale each date; choose training pixels believed unchanged (training_pixels.py)
or take the user's mask; train the network (network.py) with the shared training
loop, one epoch being a forward and backward pass of both dates (or of one random crop
of both, for scenes too large for memory); extract both dates' fused features, by tiles
when needed (features.py); return the change magnitude (change_score) and the
absolute feature difference (for the RX anomalous-change score).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..classical import cva_magnitude
from ..io.tiles import available_memory_bytes, tile_size_for
from ..errors import HsiDetectError
from ..io.model_files import load_model, save_model as write_model
from ..parameters import HYPERNET, resolve
from ..progress import Progress
from ..scaling import apply_scaling, fit_scaling
from .training_pixels import select_training_pixels

METHOD = "hypernet"
MEMORY_FRACTION = 0.25  # share of free memory that training activations or a detection tile may take
MIN_CROP = 32


def training_bytes_per_pixel(bands: int, hidden: int) -> float:
    """Activations kept for the backward pass, both dates (measured on CPU, float32)."""
    return 4.0 * 2 * (3 * bands + 110 * hidden)


def detection_bytes_per_pixel(bands: int, hidden: int) -> float:
    """Peak of a no-gradient feature pass (input, a few working maps, the features)."""
    return 4.0 * (3 * bands + 16 * hidden)


def check_params(p: dict):
    for prm in HYPERNET:
        if prm.choices and p[prm.name] not in prm.choices:
            raise HsiDetectError(f"HyperNet parameter {prm.name} must be one of {', '.join(prm.choices)} "
                                 f"(got '{p[prm.name]}').")
    positive = {"learning_rate": p["learning_rate"], "epochs": p["epochs"]}
    for name, value in positive.items():
        if not value > 0:
            raise HsiDetectError(f"HyperNet parameter {name} must be above 0 (got {value}).")
    if p["hidden"] < 0 or 0 < p["hidden"] < 16:
        raise HsiDetectError(f"The hidden width must be 0 (automatic) or at least 16 (got {p['hidden']}): "
                             "channel attention divides it by 16.")
    if p["momentum"] < 0 or p["weight_decay"] < 0 or p["gamma"] < 0:
        raise HsiDetectError("Momentum, weight decay and gamma cannot be negative.")
    if p["crop_size"] < 0 or 0 < p["crop_size"] < MIN_CROP:
        raise HsiDetectError(f"The crop size must be 0 (automatic) or at least {MIN_CROP} pixels (got {p['crop_size']}).")
    if p["tile_size"] < 0:
        raise HsiDetectError(f"The tile size cannot be negative (got {p['tile_size']}).")
    if not 0 < p["training_fraction"] <= 1:
        raise HsiDetectError(f"The training fraction must lie in (0, 1] (got {p['training_fraction']}).")


def scale_date(cube: np.ndarray, valid: np.ndarray, mode: str) -> np.ndarray:
    """Each date is scaled on its own statistics ('standardize') or used as stored ('none')."""
    return apply_scaling(cube, valid, fit_scaling(cube, valid, mode))


def detect(pair, params: Optional[dict], *, training_mask: Optional[np.ndarray] = None, device: str = "auto",
           seed: int = 1, model_path: Optional[str] = None, save_model: Optional[str] = None, inputs=(),
           progress: Optional[Progress] = None):
    """Train HyperNet on the pair (or load a model) and compare the two dates' features.

    Returns (change magnitude (rows, cols) float32, |f1 - f2| (rows, cols, 2h) float32, info).
    Invalid pixels are 0 in both arrays. A saved model is written last, so that a
    cancelled run leaves no file.
    """
    from .network import HyperNetModel, hidden_width
    from .features import SubProgress, extract_features
    from ..runtime import describe_device, resolve_device, seed_everything

    progress = progress or Progress()
    p = resolve(HYPERNET, params)
    rows, cols, bands = pair.t1.shape
    check_params(p)
    dev = resolve_device(device)
    seed_everything(seed)
    valid = pair.valid
    info = {"device": describe_device(dev), "threshold_transform": p["threshold_transform"]}

    if model_path:
        tensors, config = load_model(model_path, METHOD, bands, pair.t1.wavelengths)
        hidden, scaling = int(config["hidden"]), config["scaling"]
        model = HyperNetModel(bands, hidden)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError:
            raise HsiDetectError(f"{model_path} does not hold a complete HyperNet network for {bands} bands and "
                                 f"hidden width {hidden}. The file may be damaged: train a new model.") from None
        model.to(dev)
        info.update({"model": model_path, "hidden": hidden, "scaling": scaling})
        progress.log(f"Applying the saved model {model_path} (hidden width {hidden}, scaling {scaling}).")
    else:
        hidden, scaling = hidden_width(bands, p["hidden"]), p["scaling"]
    progress.update("preparing", 0.0, f"scaling both dates ({scaling})", force=True)
    x1 = scale_date(pair.t1.data, valid, scaling)
    x2 = scale_date(pair.t2.data, valid, scaling)

    # the change-vector magnitude, computed once for the training-pixel rule and the score
    picks_by_cva = not model_path and training_mask is None and p["training_pixels"].startswith("cva")
    cva = cva_magnitude(pair.t1.data, pair.t2.data, valid) if picks_by_cva or p["score"] == "cosine-cva" else None
    if not model_path:
        chosen = select_training_pixels(pair.t1.data, pair.t2.data, valid, p["training_pixels"],
                                        p["training_fraction"], training_mask, cva)
        source = "the training mask" if training_mask is not None else f"rule {p['training_pixels']}"
        progress.log(f"Training on {int(chosen.sum())} pixels believed unchanged ({source}).")
        model = HyperNetModel(bands, hidden).to(dev)
        crop = _crop_side(p["crop_size"], rows, cols, bands, hidden, dev)
        losses = _train(model, x1, x2, valid, chosen, p, crop, dev, seed, progress)
        info.update({"hidden": hidden, "scaling": scaling, "epochs": p["epochs"],
                     "training_pixels": int(chosen.sum()),
                     "training_rule": "mask" if training_mask is not None else p["training_pixels"],
                     "crop_size": crop or 0, "final_loss": losses[-1] if losses else None})

    model.stats.date_norm = p["bn_statistics"] == "date"
    info["bn_statistics"] = p["bn_statistics"]
    tile = _tile_side(p["tile_size"], rows, cols, bands, hidden, dev)
    info["tile_size"] = tile or 0
    progress.update("detecting", 0.0, "extracting features", force=True)
    f1 = extract_features(model, x1, valid, dev, tile, SubProgress(progress, 0.0, 0.5), " of date 1")
    f2 = extract_features(model, x2, valid, dev, tile, SubProgress(progress, 0.5, 0.5), " of date 2")
    del x1, x2
    magnitude = change_score(f1, f2, p["score"], cva)
    diff = np.abs(f1 - f2, out=f1)
    del f2
    diff[~valid] = 0.0
    magnitude[~valid] = 0.0
    progress.update("detecting", 1.0, "features compared")

    if save_model and not model_path:
        config = {"bands": bands, "wavelengths": pair.t1.wavelengths, "hidden": hidden, "scaling": scaling, "seed": seed,
                  "params": {k: v for k, v in p.items()}}
        info["saved_model"] = write_model(save_model, METHOD, model.state_dict(), config, inputs)
    return magnitude.astype(np.float32), diff, info


def change_score(f1: np.ndarray, f2: np.ndarray, score: str, cva: Optional[np.ndarray] = None) -> np.ndarray:
    """Per pixel, float64 (rows, cols):

    - 'mse': the mean squared difference of the features (the paper);
    - 'cosine': one minus their cosine similarity (blind to a common scaling of the
      feature vector, e.g. by illumination);
    - 'cosine-cva': the root of the cosine distance times ``cva``, the change-vector
      magnitude of the standardised dates. Its square root is the geometric mean of the
      two distances, so neither's units nor scale matter, and a pixel scores high only
      where both the learned features and the spectra changed: the features alone blur
      edges (their spatial context) and the spectra alone keep the dates' radiometric
      differences.
    """
    dot = lambda a, b: np.einsum("ijk,ijk->ij", a, b, dtype=np.float64)  # noqa: E731
    if score == "mse":
        d = f1 - f2
        return dot(d, d) / f1.shape[2]
    norms = np.sqrt(dot(f1, f1) * dot(f2, f2))
    distance = 1.0 - np.divide(dot(f1, f2), norms, out=np.ones(norms.shape), where=norms > 1e-12)
    if score == "cosine":
        return distance
    return np.sqrt(np.maximum(distance, 0.0)) * cva


def _crop_side(requested: int, rows: int, cols: int, bands: int, hidden: int, dev) -> Optional[int]:
    """Side of the training crops, or None to train on the whole image."""
    if requested:
        side = requested
    else:
        budget = available_memory_bytes(dev) * MEMORY_FRACTION
        side = max(MIN_CROP, int((budget / training_bytes_per_pixel(bands, hidden)) ** 0.5))
    return None if side >= rows and side >= cols else side


def _tile_side(requested: int, rows: int, cols: int, bands: int, hidden: int, dev) -> Optional[int]:
    from .network import RECEPTIVE_RADIUS

    side = requested or tile_size_for(detection_bytes_per_pixel(bands, hidden), dev, MEMORY_FRACTION,
                                      overlap=RECEPTIVE_RADIUS)
    return None if side >= rows and side >= cols else side


def _train(model, x1, x2, valid, chosen, p, crop, dev, seed, progress) -> list:
    import torch

    from .network import focal_cosine
    from ..training import cosine_lr, train

    rows, cols = valid.shape
    rng = np.random.default_rng(seed)
    whole = None if crop else _window_tensors(x1, x2, valid, chosen, (slice(0, rows), slice(0, cols)), dev)
    if whole is not None and whole[3].numel() == 0:
        raise HsiDetectError("No training pixel is valid in both dates.")
    hooks = _cancellation_hooks(model, progress)
    optimizer = torch.optim.SGD(model.parameters(), lr=p["learning_rate"], momentum=p["momentum"],
                                weight_decay=p["weight_decay"])

    def loss_at(step):
        t1, t2, mask, pixels = whole if whole is not None else _random_crop(x1, x2, valid, chosen, crop, rng, dev)
        z1, q1 = model.embed(t1, mask)
        progress.check()
        z2, q2 = model.embed(t2, mask)
        return focal_cosine(q1, q2, z1, z2, pixels, p["gamma"])

    try:
        return train(model, optimizer, loss_at, p["epochs"], progress, cosine_lr(p["learning_rate"], p["epochs"]), "epoch")
    finally:
        for h in hooks:
            h.remove()


def _window_tensors(x1, x2, valid, chosen, window, dev):
    import torch

    def image(x):
        return torch.from_numpy(np.ascontiguousarray(x[window].transpose(2, 0, 1)))[None].to(dev)

    mask = torch.from_numpy(np.ascontiguousarray(valid[window]))[None, None].to(dev)
    pixels = torch.from_numpy(np.flatnonzero(chosen[window])).to(dev)
    return image(x1), image(x2), mask, pixels


def _random_crop(x1, x2, valid, chosen, crop, rng, dev, tries: int = 20):
    """A crop (same place in both dates) holding at least one training pixel."""
    rows, cols = valid.shape
    ch, cw = min(crop, rows), min(crop, cols)
    for attempt in range(tries + 1):
        if attempt < tries:
            r, c = int(rng.integers(0, rows - ch + 1)), int(rng.integers(0, cols - cw + 1))
        else:  # centre the crop on a training pixel
            flat = np.flatnonzero(chosen)
            r0, c0 = divmod(int(flat[rng.integers(0, flat.size)]), cols)
            r, c = min(max(0, r0 - ch // 2), rows - ch), min(max(0, c0 - cw // 2), cols - cw)
        window = (slice(r, r + ch), slice(c, c + cw))
        if chosen[window].any():
            return _window_tensors(x1, x2, valid, chosen, window, dev)
    raise HsiDetectError("No training pixel is valid in both dates.")


def _cancellation_hooks(model, progress: Progress) -> list:
    """Check for cancellation between the network's blocks, forward and backward, so that
    a long epoch on a large scene still reacts within about a second."""
    from .network import SpatialBlock, SpectralBlock

    def on_output(module, args, output):
        progress.check()
        if output.requires_grad:
            output.register_hook(lambda grad: progress.check())

    return [m.register_forward_hook(on_output) for m in model.modules()
            if isinstance(m, (SpatialBlock, SpectralBlock)) or m in (model.projector, model.predictor)]
