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
from ..errors import HsiDetectError
from ..io.model_files import load_model, save_model as write_model
from ..io.tiles import choose_tile
from ..parameters import HYPERNET, MIN_CROP, resolve
from ..progress import Progress
from ..scaling import scale_on_own_statistics
from .training_pixels import select_training_pixels

METHOD = "hypernet"
MEMORY_FRACTION = 0.25  # share of free memory that training activations or a detection tile may take


def training_bytes_per_pixel(bands: int, hidden: int) -> float:
    """Activations kept for the backward pass, both dates (measured on CPU, float32)."""
    return 4.0 * 2 * (3 * bands + 110 * hidden)


def detection_bytes_per_pixel(bands: int, hidden: int) -> float:
    """Peak of a no-gradient feature pass (input, a few working maps, the features)."""
    return 4.0 * (3 * bands + 16 * hidden)


def build_network(bands: int, p: dict):
    from .network import HyperNetModel, hidden_width

    return HyperNetModel(bands, hidden_width(bands, p["hidden"]))


def trainer(model, x1, x2, valid, chosen, p: dict, crop: Optional[int], dev, seed: int, progress: Progress):
    """The optimiser, loss_at(epoch) and lr_at(epoch) for ``training.train``, and seen(), the
    training pixels the epochs covered so far (distinct, and counted once per epoch): each
    epoch is a forward and backward pass of both dates, whole or one random crop of both.
    x1, x2: the scaled dates, arrays or ScratchCubes (read a crop at a time)."""
    import torch

    from ..training import cosine_lr
    from .network import focal_cosine

    rows, cols = valid.shape
    rng = np.random.default_rng(seed)
    whole = None if crop else _window_tensors(x1, x2, valid, chosen, (slice(0, rows), slice(0, cols)), dev)
    if whole is not None and whole[3].numel() == 0:
        raise HsiDetectError("No training pixel is valid in both dates.")
    optimizer = torch.optim.SGD(model.parameters(), lr=p["learning_rate"], momentum=p["momentum"],
                                weight_decay=p["weight_decay"])
    covered = None if whole is not None else np.zeros((rows, cols), dtype=bool)
    visits = []

    def loss_at(step):
        if whole is not None:
            t1, t2, mask, pixels = whole
        else:
            window = _random_crop(valid, chosen, crop, rng)
            t1, t2, mask, pixels = _window_tensors(x1, x2, valid, chosen, window, dev)
            covered[window] |= chosen[window]
        visits.append(pixels.numel())
        z1, q1 = model.embed(t1, mask)
        progress.check()
        z2, q2 = model.embed(t2, mask)
        return focal_cosine(q1, q2, z1, z2, pixels, p["gamma"])

    def seen():
        return int(whole[3].numel()) if whole is not None else int(covered.sum()), int(sum(visits))

    return optimizer, loss_at, cosine_lr(p["learning_rate"], p["epochs"]), seen


def train_network(model, x1, x2, valid, chosen, p: dict, crop: Optional[int], dev, seed: int,
                  progress: Progress) -> dict:
    """Train on the scaled dates (arrays or ScratchCubes); the summary's entries, with the
    training pixels the epochs saw (logged: the training's cost is set by the epochs and the
    crop, not by the scene)."""
    from ..training import train

    optimizer, loss_at, lr_at, seen = trainer(model, x1, x2, valid, chosen, p, crop, dev, seed, progress)
    losses = train(model, optimizer, loss_at, p["epochs"], progress, lr_at, "epoch")
    distinct, visits = seen()
    where = f"random {crop} x {crop} crops" if crop else "the whole pair"
    progress.log(f"Training saw {distinct} of the {int(chosen.sum())} training pixels ({visits} pixel visits in "
                 f"{p['epochs']} epochs on {where}).")
    return {"hidden": model.hidden, "epochs": p["epochs"], "training_pixels": int(chosen.sum()),
            "training_pixels_seen": distinct, "training_pixel_visits": visits, "crop_size": crop or 0,
            "final_loss": losses[-1] if losses else None}


def score_pair(model, dates: list, valid, p: dict, dev, tile: Optional[int], cva, progress: Progress,
               memory_budget: Optional[int] = None):
    """The two scaled dates' fused features compared: (change magnitude (rows, cols) float32,
    |f1 - f2| (rows, cols, 2h) float32); invalid pixels 0 in both. ``dates`` is emptied once
    both features are out, so the scaled dates are freed before the comparison."""
    from ..progress import SubProgress
    from .features import extract_features

    model.stats.date_norm = p["bn_statistics"] == "date"
    progress.update("detecting", 0.0, "extracting features", force=True)
    f1 = extract_features(model, dates[0], valid, dev, tile, SubProgress(progress, 0.0, 0.5), " of date 1",
                          memory_budget=memory_budget)
    f2 = extract_features(model, dates[1], valid, dev, tile, SubProgress(progress, 0.5, 0.5), " of date 2",
                          memory_budget=memory_budget)
    dates.clear()
    magnitude = change_score(f1, f2, p["score"], cva)
    diff = np.abs(f1 - f2, out=f1)
    del f2
    diff[~valid] = 0.0
    magnitude[~valid] = 0.0
    progress.update("detecting", 1.0, "features compared")
    return magnitude.astype(np.float32), diff


def load_network(model_path: str, bands: int, wavelengths, dev):
    tensors, config = load_model(model_path, METHOD, bands, wavelengths)
    hidden, scaling = int(config["hidden"]), config["scaling"]
    model = build_network(bands, {"hidden": hidden})
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError:
        raise HsiDetectError(f"{model_path} does not hold a complete HyperNet network for {bands} bands and "
                             f"hidden width {hidden}. The file may be damaged: train a new model.") from None
    return model.to(dev), scaling


def detect(pair, params: Optional[dict], *, training_mask: Optional[np.ndarray] = None, device: str = "auto",
           seed: int = 1, model_path: Optional[str] = None, save_model: Optional[str] = None,
           progress: Optional[Progress] = None, memory_limit: Optional[int] = None):
    """Train HyperNet on the pair (or load a model) and compare the two dates' features.

    ``memory_limit`` (bytes): the run's limit; the activations stored between layers of a tiled
    detection take at most STORAGE_FRACTION of it in host memory, the rest go to scratch files.

    Returns (change magnitude (rows, cols) float32, |f1 - f2| (rows, cols, 2h) float32, info).
    Invalid pixels are 0 in both arrays. ``save_model``: where to write the trained model
    (the pipeline's transaction gives a temporary path).
    """
    from ..runtime import describe_device, resolve_device, seed_everything
    from .layerwise import STORAGE_FRACTION
    from .network import RECEPTIVE_RADIUS

    progress = progress or Progress()
    p = resolve(HYPERNET, params)
    rows, cols, bands = pair.t1.shape
    dev = resolve_device(device)
    seed_everything(seed)
    valid = pair.valid
    info = {"device": describe_device(dev), "threshold_transform": p["threshold_transform"]}

    if model_path:
        model, scaling = load_network(model_path, bands, pair.t1.wavelengths, dev)
        info.update({"model": model_path, "hidden": model.hidden, "scaling": scaling})
        progress.log(f"Applying the saved model {model_path} (hidden width {model.hidden}, scaling {scaling}).")
    else:
        model, scaling = build_network(bands, p).to(dev), p["scaling"]
    progress.update("preparing", 0.0, f"scaling both dates ({scaling})", force=True)
    x1 = scale_on_own_statistics(pair.t1.data, valid, scaling)
    x2 = scale_on_own_statistics(pair.t2.data, valid, scaling)

    # the change-vector magnitude, computed once for the training-pixel rule and the score
    picks_by_cva = not model_path and training_mask is None and p["training_pixels"].startswith("cva")
    cva = cva_magnitude(pair.t1.data, pair.t2.data, valid) if picks_by_cva or p["score"] == "cosine-cva" else None
    hooks = network_cancel_hooks(model, progress)
    try:
        if not model_path:
            chosen = select_training_pixels(pair.t1.data, pair.t2.data, valid, p["training_pixels"],
                                            p["training_fraction"], training_mask, cva)
            source = "the training mask" if training_mask is not None else f"rule {p['training_pixels']}"
            progress.log(f"Training on {int(chosen.sum())} pixels believed unchanged ({source}).")
            crop = choose_tile(p["crop_size"], rows, cols, training_bytes_per_pixel(bands, model.hidden), dev,
                               fraction=MEMORY_FRACTION, minimum=MIN_CROP)
            info.update(train_network(model, x1, x2, valid, chosen, p, crop, dev, seed, progress))
            info.update({"scaling": scaling, "training_rule": "mask" if training_mask is not None
                         else p["training_pixels"]})
        info["bn_statistics"] = p["bn_statistics"]
        tile = choose_tile(p["tile_size"], rows, cols, detection_bytes_per_pixel(bands, model.hidden), dev,
                           RECEPTIVE_RADIUS, MEMORY_FRACTION)
        info["tile_size"] = tile or 0
        dates = [x1, x2]
        del x1, x2
        budget = int(memory_limit * STORAGE_FRACTION) if memory_limit else None
        magnitude, diff = score_pair(model, dates, valid, p, dev, tile, cva, progress, budget)
    finally:
        for h in hooks:
            h.remove()

    if save_model and not model_path:
        info["saved_model"] = save_network(save_model, model, pair.t1.wavelengths, scaling, seed, p)
    return magnitude, diff, info


def save_network(path: str, model, wavelengths, scaling: str, seed: int, p: dict) -> str:
    """Write the trained network and what it was trained with (io/model_files.py)."""
    config = {"bands": model.bands, "wavelengths": wavelengths, "hidden": model.hidden, "scaling": scaling,
              "seed": seed, "params": {k: v for k, v in p.items()}}
    return write_model(path, METHOD, model.state_dict(), config)


def network_cancel_hooks(model, progress: Progress) -> list:
    """runtime.cancel_hooks on each block of the network, the projector and the predictor."""
    from ..runtime import cancel_hooks
    from .network import SpatialBlock, SpectralBlock

    return cancel_hooks([m for m in model.modules() if isinstance(m, (SpatialBlock, SpectralBlock))
                         or m in (model.projector, model.predictor)], progress)


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


def _window_tensors(x1, x2, valid, chosen, window, dev):
    import torch

    from ..runtime import image_tensor, mask_tensor

    pixels = torch.from_numpy(np.flatnonzero(chosen[window])).to(dev)
    return image_tensor(x1[window], dev), image_tensor(x2[window], dev), mask_tensor(valid[window], dev), pixels


def _random_crop(valid, chosen, crop, rng, tries: int = 20) -> tuple:
    """A crop's window (same place in both dates) holding at least one training pixel."""
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
            return window
    raise HsiDetectError("No training pixel is valid in both dates.")
