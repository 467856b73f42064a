"""What both networks need from torch at run time: the device, repeatable seeds, image
tensors, and cancellation checked inside the network."""

from __future__ import annotations

import contextlib
import ctypes
import os
import random

import numpy as np

from .errors import HsiDetectError


def resolve_device(spec: str = "auto"):
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise HsiDetectError(f"Device '{spec}' was asked for, but this torch build sees no CUDA GPU. "
                                 "Use --device cpu (or auto), or install a CUDA build of torch.")
        try:
            dev = torch.device(spec)
        except RuntimeError:
            raise HsiDetectError(f"'{spec}' is not a device name. Use auto, cpu, cuda or cuda:N.") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HsiDetectError(f"GPU {dev.index} does not exist: {torch.cuda.device_count()} GPU(s) are visible.")
        return dev
    raise HsiDetectError(f"'{spec}' is not a device name. Use auto, cpu, cuda or cuda:N.")


def describe_device(device) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int):
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def image_tensor(image: np.ndarray, device):
    """(rows, cols, B) numpy -> (1, B, rows, cols) float tensor on ``device``, in channels-last
    memory format (the array's own layout, not copied on the CPU), which convolutions run faster in."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)


_TRIM = None  # glibc's malloc_trim, found on first use (False where there is none)


def release_free_memory():
    """Hand the memory freed since the last call back to the system (glibc keeps freed blocks of
    its heap: between HyperNet's tiled layer passes they grew the process by hundreds of MB);
    nothing where the C library is not glibc."""
    global _TRIM
    if _TRIM is None:
        try:
            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


@contextlib.contextmanager
def channels_last(model):
    """The model's convolution weights in channels-last memory format for the block's duration:
    with channels-last inputs (image_tensor's) HyperNet's feature pass runs 1.3-1.4 times faster
    on the CPU, to float rounding the same."""
    import torch

    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def mask_tensor(valid: np.ndarray, device):
    """(rows, cols) bool numpy -> (1, 1, rows, cols) tensor on ``device``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(valid))[None, None].to(device)


def cancel_hooks(modules, progress) -> list:
    """Check the cancel flag after each of ``modules``, forward and backward, so that one
    long training step or a large detection tile delays a cancel by at most a layer's
    time. Returns the hook handles; remove them when done."""

    def on_output(module, args, output):
        progress.check()
        if output.requires_grad:
            output.register_hook(lambda grad: progress.check())

    return [m.register_forward_hook(on_output) for m in modules]
