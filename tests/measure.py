"""Helpers shared by the tests: a CLI run's peak memory, a small real disk, and a run stopped midway."""

import contextlib
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Starts the CLI and reports its exit status and peak resident memory (os.wait4's ru_maxrss, in KB).
# It runs in a small Python of its own: Linux records a process's peak when exec replaces the
# forked copy of its parent, so the CLI started straight from the test process would report the
# test process's own peak.
_MEASURE = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def peak_rss_mb(args, **env) -> float:
    """Peak resident memory in MB of the engine's CLI with ``args`` (asserting it succeeded);
    ``env``: extra environment variables."""
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "engine"), **env)
    done = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "hsi_detect_engine.cli"] + list(args),
                          env=env, capture_output=True, text=True)
    status, peak_kb = done.stdout.split()
    assert status == "0", done.stderr
    return int(peak_kb) / 1024


@contextlib.contextmanager
def tmpfs(folder, size: str):
    """A real tmpfs of ``size`` (e.g. '1m') mounted at ``folder`` for the block; the test is
    skipped where mounting is not allowed."""
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


class StopAt:
    """A progress callback that cancels the run (how 'cancel') or fails it with ``error`` at the
    first event ``when(event)`` accepts, noting the files of ``folder`` at that moment in ``seen``."""

    def __init__(self, folder, how: str, when, error=RuntimeError):
        from hsi_detect_engine.progress import Progress

        self.folder, self.how, self.when, self.error = folder, how, when, error
        self.seen = []
        self.progress = Progress(self, min_interval=0.0)

    @property
    def expected(self):
        from hsi_detect_engine.errors import Cancelled

        return Cancelled if self.how == "cancel" else self.error

    def __call__(self, event):
        if not self.when(event):
            return
        self.seen.append(sorted(os.listdir(self.folder)))
        if self.how == "cancel":
            self.progress.cancel()
        else:
            raise self.error("the disk went away")
