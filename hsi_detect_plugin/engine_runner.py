"""Running the engine (`python -m hsi_detect_engine.cli`) in a child process.

The child reports JSON lines on stdout (progress, log, then a result or an error); they
become Processing feedback. Cancel writes "cancel" to the child's stdin and kills it if it
has not stopped within CANCEL_GRACE_S. The engine writes all its outputs or none (its output
transaction), so the plugin never deletes a file: after a failure every earlier file is as it was.
QGIS's own Python never imports the engine or torch.
"""

import collections
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time

from qgis.core import QgsProcessingException

from . import settings

CANCEL_GRACE_S = 1.2
POLL_S = 0.05
CANCELLED_MESSAGE = "The run was cancelled; no output was written."

# Run in the candidate interpreter: which of the named modules fail to import, and where the engine is.
_CHECK_CODE = """
import importlib, json, sys
missing = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        missing[name] = f"{type(exc).__name__}: {exc}"
engine = sys.modules.get("hsi_detect_engine")
print(json.dumps({"missing": missing, "python": sys.version.split()[0],
                  "engine": getattr(engine, "__file__", None), "version": getattr(engine, "__version__", None)}))
"""

_usable = {}  # (python, engine folder, modules) -> check answer, for interpreters that passed


def _install_hint(python: str, engine_dir: str) -> str:
    return (f"Install the engine's requirements there with: \"{python}\" -m pip install \"{engine_dir}\" "
            "(GDAL's Python bindings come from your system: python3-gdal, conda-forge gdal or OSGeo4W), "
            "or choose another interpreter under Processing > Options > Providers > Hyperspectral Detection "
            "or with the environment variable HSI_DETECT_PYTHON. The README's plugin section explains the set-up.")


def _child_env(engine_dir: str) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)  # QGIS's own Python home would break another interpreter
    env["PYTHONPATH"] = engine_dir
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _popen_options() -> dict:
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NO_WINDOW}
    return {}


def _ask_interpreter(python: str, engine_dir: str, modules) -> dict:
    """The check's answer from ``python``; RuntimeError(why) when it gives none."""
    try:
        done = subprocess.run([python, "-c", _CHECK_CODE, *modules], env=_child_env(engine_dir),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, **_popen_options())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(str(exc)) from None
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError((done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]) from None


class Engine:
    """A checked engine installation: the interpreter and the engine source folder."""

    def __init__(self, python: str, engine_dir: str, info: dict):
        self.python = python
        self.engine_dir = engine_dir
        self.info = info

    @classmethod
    def find(cls, modules=()) -> "Engine":
        """The configured engine, checked to import the engine and ``modules``; else a QgsProcessingException."""
        python, origin = settings.configured_python()
        engine_dir = settings.engine_source_dir()
        if not engine_dir:
            raise QgsProcessingException(
                f"The hsi-detect engine's source is missing from the plugin folder {settings.PLUGIN_DIR}. "
                "Reinstall the plugin from its ZIP.")
        if not python:
            raise QgsProcessingException(
                "No Python interpreter is set for the hsi-detect engine. Set one (a Python with numpy, GDAL and "
                "torch) under Processing > Options > Providers > Hyperspectral Detection, or in the environment "
                "variable HSI_DETECT_PYTHON. " + _install_hint("python", engine_dir))
        if not os.path.isfile(python):
            raise QgsProcessingException(
                f"The engine's Python interpreter {python} (from {origin}) does not exist. "
                + _install_hint(python, engine_dir))
        modules = tuple(sorted(set(("numpy", "osgeo.gdal", "hsi_detect_engine.cli") + tuple(modules))))
        key = (python, engine_dir, modules)
        if key not in _usable:
            try:
                answer = _ask_interpreter(python, engine_dir, modules)
            except RuntimeError as exc:
                raise QgsProcessingException(
                    f"{python} (from {origin}) is not a working Python interpreter ({exc}). "
                    + _install_hint(python, engine_dir)) from None
            if answer["missing"]:
                problems = "; ".join(f"{name} ({why})" for name, why in answer["missing"].items())
                raise QgsProcessingException(
                    f"The Python environment {python} (from {origin}) cannot run the hsi-detect engine: "
                    f"it cannot import {problems}. " + _install_hint(python, engine_dir))
            _usable[key] = answer
        return cls(python, engine_dir, _usable[key])

    def run(self, command: str, arguments: list, feedback) -> dict:
        """Run one engine command; return its result dict."""
        cmd = [self.python, "-m", "hsi_detect_engine.cli", command, *arguments, "--json-progress", "--cancel-on-stdin"]
        feedback.pushInfo(f"Engine {self.info.get('version')} from {os.path.dirname(self.info.get('engine') or '')}, "
                          f"Python {self.info.get('python')} ({self.python})")
        feedback.pushCommandInfo(" ".join(shlex.quote(c) for c in cmd))
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=_child_env(self.engine_dir), text=True, encoding="utf-8", errors="replace",
                                    bufsize=1, **_popen_options())
        except OSError as exc:
            raise QgsProcessingException(f"Could not start the engine with {self.python}: {exc}") from None
        with proc:
            try:
                result = self._follow(proc, feedback)
                _report_summary(result, feedback)
                return result
            finally:
                if proc.poll() is None:  # only when following the run itself failed
                    proc.kill()

    def _follow(self, proc, feedback) -> dict:
        lines = queue.Queue()
        stderr_tail = collections.deque(maxlen=20)
        readers = [threading.Thread(target=_pump, args=(proc.stdout, lines.put, True), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, stderr_tail.append, False), daemon=True)]
        for reader in readers:
            reader.start()
        report = _FeedbackReport(feedback)
        result = error = None
        cancelled_at = None
        stdout_open = True
        while stdout_open or proc.poll() is None:
            if cancelled_at is None and feedback.isCanceled():
                cancelled_at = time.monotonic()
                _ask_to_cancel(proc)
            if cancelled_at is not None and time.monotonic() - cancelled_at > CANCEL_GRACE_S and proc.poll() is None:
                proc.kill()
            try:
                line = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:
                stdout_open = False
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                feedback.pushConsoleInfo(line.rstrip())
            elif "result" in event:
                result = event["result"]
            elif "error" in event:
                error = event
            else:
                report.event(event)
        code = proc.wait()
        for reader in readers:
            reader.join(timeout=2)
        if code == 0 and result is not None:  # outputs in place: a cancel that came too late changes nothing
            return result
        if cancelled_at is not None:
            raise QgsProcessingException(CANCELLED_MESSAGE)
        if error is not None:
            if error.get("kind") == "internal":
                raise QgsProcessingException(f"The engine failed: {error['error']}")
            raise QgsProcessingException(error["error"])
        raise QgsProcessingException(_crash_message(code, list(stderr_tail)))


def _report_summary(result: dict, feedback):
    facts = [f"{key.replace('_', ' ')} {result[key]}" for key in
             ("device", "threshold", "detected_pixels", "changed_pixels", "seconds") if key in result]
    if result.get("bands"):
        waves = result.get("wavelengths")
        facts.insert(0, f"{result['bands']} bands" + (f" ({min(waves):.0f}-{max(waves):.0f} nm)" if waves else ""))
    if facts:
        feedback.pushInfo("Engine finished: " + ", ".join(facts))


class _FeedbackReport:
    """Progress events to the Processing progress bar, and a progress text (which QGIS also logs)
    at each new stage and each further tenth of a stage."""

    def __init__(self, feedback):
        self.feedback = feedback
        self.stage = None
        self.tenth = -1

    def event(self, event: dict):
        stage, message = event.get("stage", ""), event.get("message", "")
        if stage == "log":
            self.feedback.pushInfo(message)
            return
        self.feedback.setProgress(100.0 * float(event.get("overall", 0.0)))
        tenth = int(float(event.get("fraction", 0.0)) * 10)
        if stage != self.stage or tenth > self.tenth:
            self.stage, self.tenth = stage, tenth
            loss = f" (loss {event['loss']:.5g})" if "loss" in event else ""
            self.feedback.setProgressText(f"{stage}: {message}{loss}" if message else f"{stage}{loss}")


def _pump(stream, put, mark_end: bool):
    """Hand each line of ``stream`` to ``put``; then None when ``mark_end``."""
    try:
        for line in stream:
            put(line)
    finally:
        if mark_end:
            put(None)


def _ask_to_cancel(proc):
    try:
        proc.stdin.write("cancel\n")
        proc.stdin.flush()
        proc.stdin.close()
    except (OSError, ValueError):
        pass  # the child has already gone


def _crash_message(code: int, stderr_lines: list) -> str:
    tail = " ".join(line.strip() for line in stderr_lines[-5:] if line.strip())
    detail = f" Its last words: {tail}" if tail else ""
    if code in (-9, 137):
        return ("The engine was killed (signal 9), most often by the system when it runs out of memory. "
                "Select fewer bands, process a smaller area, or use a machine with more memory." + detail)
    if code < 0:
        return f"The engine crashed (signal {-code}).{detail}"
    if code == 2:
        return ("The engine refused its command line; the plugin and the engine may be of different versions. "
                "Reinstall the plugin." + detail)
    return f"The engine stopped with exit status {code} and no result.{detail}"
