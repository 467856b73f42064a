"""The one training loop both networks use, with progress, loss and cancellation."""

from __future__ import annotations

import math
from typing import Callable, Optional

from .progress import Progress
from .runtime import channels_last


def train(model, optimizer, loss_at: Callable[[int], "object"], steps: int, progress: Progress,
          lr_at: Optional[Callable[[int], float]] = None, label: str = "step") -> list:
    """Run ``steps`` optimisation steps; ``loss_at(i)`` builds the loss of step i.

    ``lr_at(i)``, when given, sets the learning rate before step i. Cancellation is
    checked before every step. Returns the loss of every step.
    """
    with channels_last(model):
        history = _steps(model, optimizer, loss_at, steps, progress, lr_at, label)
    model.eval()
    return history


def _steps(model, optimizer, loss_at, steps: int, progress: Progress, lr_at, label: str) -> list:
    model.train()
    history = []
    progress.update("training", 0.0, f"training: 0/{steps} {label}s", force=True)
    for i in range(steps):
        progress.check()
        if lr_at is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(i)
        loss = loss_at(i)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            from .errors import HsiDetectError

            raise HsiDetectError("Training diverged (the loss is not a finite number). "
                                 "Try a smaller learning rate or another input scaling.")
        history.append(value)
        progress.update("training", (i + 1) / steps, f"training: {i + 1}/{steps} {label}s", loss=value)
    return history


def cosine_lr(base_lr: float, steps: int) -> Callable[[int], float]:
    """lr_e = lr * 0.5 * (1 + cos(pi * e / E)), as HyperNet's authors decay it."""
    return lambda e: base_lr * 0.5 * (1.0 + math.cos(math.pi * e / steps))
