"""Running a command in a child process and measuring it: the one way the benchmark and its
studies take a run's wall time, CPU time and peak resident memory.

A small go-between process (this file run as a script) starts the command and reads its
resource usage from os.wait4 on its pid, which is that one process's own (with whatever it
waited for itself). The go-between is there because Linux counts the memory of the process
a child was forked from into the child's peak: measured straight from a large parent (the
benchmark after scoring, a study with torch loaded), a small run would get the parent's
size. Through the small go-between every run's peak is its own; unlike RUSAGE_CHILDREN,
which holds the largest child so far, a small run after a big one gets its own small figure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass
class ChildRun:
    returncode: int
    seconds: float  # wall time of the command
    cpu_seconds: Optional[float]  # user + system; None when it was killed for its time
    peak_rss_bytes: Optional[int]  # None when it was killed for its time
    timed_out: bool = False
    stdout_lines: list = field(default_factory=list)
    stderr: str = ""


def run_child(cmd: list, *, cwd: Optional[str] = None, env: Optional[dict] = None,
              on_line: Optional[Callable[[str], None]] = None, stderr_path: Optional[str] = None,
              timeout: Optional[float] = None) -> ChildRun:
    """Run ``cmd``; hand each stdout line to ``on_line`` as it comes and keep them all; stderr goes
    to ``stderr_path`` (a temporary file when not given) and is returned as text. After
    ``timeout`` seconds the command is killed."""
    with tempfile.TemporaryDirectory() as tmp:
        usage_path = os.path.join(tmp, "usage.json")
        err_path = stderr_path or os.path.join(tmp, "stderr.txt")
        with open(err_path, "w") as err:
            started = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), usage_path, *cmd], cwd=cwd, env=env,
                                    stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
            timed_out = threading.Event()

            def kill():
                timed_out.set()
                _kill_group(proc)

            timer = threading.Timer(timeout, kill) if timeout else None
            if timer:
                timer.start()
            lines = []
            try:
                for line in proc.stdout:
                    line = line.rstrip("\n")
                    lines.append(line)
                    if on_line:
                        on_line(line)
                proc.wait()
            finally:
                if timer:
                    timer.cancel()
                if proc.poll() is None:  # interrupted: take the command down with us
                    _kill_group(proc)
                    proc.wait()
                proc.stdout.close()
            seconds = time.perf_counter() - started
        with open(err_path) as f:
            stderr = f.read()
        if not os.path.exists(usage_path):
            return ChildRun(proc.returncode, seconds, None, None, timed_out.is_set(), lines, stderr)
        with open(usage_path) as f:
            usage = json.load(f)
    return ChildRun(usage["returncode"], usage["seconds"], usage["cpu_seconds"], usage["peak_rss_bytes"],
                    timed_out.is_set(), lines, stderr)


def _kill_group(proc: subprocess.Popen):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _measure(usage_path: str, cmd: list) -> int:
    """The go-between: run cmd with this process's stdin, stdout and stderr, write its usage."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(usage_path, "w") as f:
        json.dump({"returncode": proc.returncode, "seconds": time.perf_counter() - started,
                   "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_bytes": usage.ru_maxrss * 1024}, f)
    return proc.returncode if proc.returncode >= 0 else 128 - proc.returncode


if __name__ == "__main__":
    sys.exit(_measure(sys.argv[1], sys.argv[2:]))
