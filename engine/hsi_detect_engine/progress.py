"""Progress reporting and cancellation: one object handed down every pipeline.

A pipeline calls ``progress.update(stage, fraction, message, loss)`` as it goes and
``progress.check()`` at least once a second; ``check`` raises ``Cancelled`` once the
cancel flag is set (by a signal handler in the CLI, or by a caller's own flag).
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from typing import Callable, Optional

from .errors import Cancelled

# Stages in the order a run goes through them, with the share of the whole run each takes.
STAGE_WEIGHTS = {"reading": 0.03, "preparing": 0.02, "training": 0.85, "detecting": 0.07, "writing": 0.03}


class Progress:
    """Forwards progress events to a callback and carries the cancel flag.

    The callback receives a dict: stage, fraction (0..1 of that stage), overall
    (0..1 of the whole run), message, and loss when there is one.
    """

    def __init__(self, callback: Optional[Callable[[dict], None]] = None,
                 cancel: Optional[threading.Event] = None, min_interval: float = 0.2):
        self.callback = callback
        self.cancel_event = cancel if cancel is not None else threading.Event()
        self.min_interval = min_interval
        self._last = 0.0
        self._stages = {}
        self.stage_seconds = {}  # wall time spent in each stage so far
        self.stage_peak_mib = {}  # the process's peak resident memory when each stage last ended
        self._current = None  # (stage, monotonic time it began)

    def cancel(self):
        self.cancel_event.set()

    def check(self):
        if self.cancel_event.is_set():
            raise Cancelled()

    def overall(self, stage: str, fraction: float) -> float:
        before = 0.0
        for name, weight in STAGE_WEIGHTS.items():
            if name == stage:
                return min(1.0, before + weight * fraction)
            before += weight
        return min(1.0, fraction)

    def update(self, stage: str, fraction: float = 0.0, message: str = "", loss: Optional[float] = None,
               force: bool = False):
        self.check()
        now = time.monotonic()
        if self._current is None or self._current[0] != stage:
            self._close_stage(now)
            self._current = (stage, now)
        if self.callback is None:
            return
        new_stage = self._stages.get(stage) is None
        if not (force or new_stage or fraction >= 1.0 or now - self._last >= self.min_interval):
            return
        self._stages[stage] = True
        self._last = now
        event = {"stage": stage, "fraction": round(float(fraction), 4),
                 "overall": round(self.overall(stage, fraction), 4), "message": message}
        if loss is not None:
            event["loss"] = float(loss)
        self.callback(event)

    def _close_stage(self, now: float):
        if self._current is not None:
            name, began = self._current
            self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + now - began
            self.stage_peak_mib[name] = peak_rss_mib()

    def finish(self, stage: str, message: str = ""):
        """The last event of a run whose outputs are in place: a cancel arriving now changes nothing."""
        self._close_stage(time.monotonic())
        self._current = None
        if self.callback is not None:
            self.callback({"stage": stage, "fraction": 1.0, "overall": round(self.overall(stage, 1.0), 4),
                           "message": message})

    def log(self, message: str):
        """A message for the log that moves no progress bar."""
        if self.callback is not None:
            self.callback({"stage": "log", "message": message})


def peak_rss_mib(usage=None) -> float:
    """Peak resident memory in MiB of a resource usage (``os.wait4``'s of a child), by default this
    process's so far. ru_maxrss counts KiB on Linux, bytes on macOS."""
    peak = (usage or resource.getrusage(resource.RUSAGE_SELF)).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


class SubProgress(Progress):
    """Maps the fractions of a sub-task onto [start, start + span] of the caller's stage."""

    def __init__(self, inner: Progress, start: float, span: float, prefix: str = ""):
        super().__init__(None, inner.cancel_event)
        self.inner, self.start, self.span, self.prefix = inner, start, span, prefix

    def update(self, stage, fraction=0.0, message="", loss=None, force=False):
        self.inner.update(stage, min(1.0, self.start + self.span * fraction), self.prefix + message, loss, force)

    def log(self, message):
        self.inner.log(message)
