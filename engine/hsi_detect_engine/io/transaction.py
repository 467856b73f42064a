"""All of a run's outputs, written together or not at all.

A pipeline opens one ``OutputTransaction`` before any work, naming every file it may
write (kind -> path). The transaction checks the paths at once (distinct from each other
and from the inputs, style sidecars included; folders that exist and can be written;
later, enough free space), then hands out a hidden temporary name in each target folder
for every file. The writers write there. ``commit()`` flushes the temporaries to disk and
renames them all into place at the very end; leaving the block before that (an error, a
cancellation) removes the temporaries and leaves every earlier file as it was.

A temporary's name carries the writing process's id, so a run killed outright (SIGKILL)
leaves only hidden ``.NAME.<pid>-<tag>.partial.EXT`` files, which the next run writing to
that folder removes once that process is gone.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import uuid
from typing import Dict, Iterable, Optional

from ..errors import HsiDetectError
from .paths import check_output_path

RASTER, LAYER, FILE = "raster", "layer", "file"  # LAYER: a vector file with a .qml style beside it
_STALE = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.partial(\.[^.]*)?(\.aux\.xml)?$")
_TEMP_NAME = re.compile(r"^\.(.+)\.\d+-[0-9a-f]{8}\.partial(\.[^.]*)?$")
_DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exhausted",
                errno.EFBIG: "the file is larger than the system allows", errno.EROFS: "the disk is read-only",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def sidecars(path: str, kind: str) -> Dict[str, str]:
    """The files written for one output: the file itself and, for a raster, its .qml style and
    the .aux.xml that GDAL may add."""
    files = {"": path}
    if kind in (RASTER, LAYER):
        files["qml"] = os.path.splitext(path)[0] + ".qml"
    if kind == RASTER:
        files["aux"] = path + ".aux.xml"
    return files


def disk_error(exc: BaseException, what: str) -> Optional[HsiDetectError]:
    """A user error for a failure that is about the disk or permissions (by its errno, or by the
    system's words for it in a library's message); None for others."""
    code = getattr(exc, "errno", None)
    if code not in _DISK_ERRORS:
        text = str(exc)
        code = next((c for c in _DISK_ERRORS if os.strerror(c) in text), None)
    if code is None:
        return None
    return HsiDetectError(f"Cannot write {what}: {_DISK_ERRORS[code]}. Free some space or choose another output "
                          "folder you may write to; earlier outputs were left as they were.")


def final_name(path: str) -> str:
    """The output's own name for a temporary's path (for messages); other paths unchanged."""
    folder, name = os.path.split(path)
    m = _TEMP_NAME.match(name)
    return os.path.join(folder, m.group(1)) if m else path


def _key(path: str) -> str:
    return os.path.normcase(os.path.realpath(os.path.abspath(path)))


def _same(a: str, b: str) -> bool:
    if _key(a) == _key(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str):
    """Remove the hidden temporaries left in ``folder`` by runs whose process is gone."""
    for path in glob.glob(os.path.join(glob.escape(folder), ".*.partial*")):
        m = _STALE.match(os.path.basename(path))
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                os.remove(path)
            except OSError:
                pass


class OutputTransaction:
    """The outputs of one run. ``outputs``: kind -> (path, RASTER, LAYER or FILE); empty paths are skipped.

    Use as a context manager; call ``commit()`` as the last step of the block.
    """

    def __init__(self, outputs: Dict[str, tuple], inputs: Iterable[str] = ()):
        self.inputs = [p for p in inputs if p]
        self.outputs = {kind: (os.fspath(path), what) for kind, (path, what) in outputs.items() if path}
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.committed = False
        self._check_paths()
        self._temps = {}  # (kind, sidecar) -> (temporary, target)
        self._scratch = []  # files a run needs only while it runs: removed at commit and at abort
        self.scratch_bytes = 0
        for kind, (path, what) in self.outputs.items():
            for side, target in sidecars(path, what).items():
                folder, name = os.path.split(os.path.abspath(target))
                if side == "aux":  # where GDAL puts it: beside the temporary raster
                    tmp = self._temps[(kind, "")][0] + ".aux.xml"
                else:  # the extension is kept: GDAL chooses its driver by it
                    tmp = os.path.join(folder, f".{name}.{self.tag}.partial{os.path.splitext(name)[1]}")
                self._temps[(kind, side)] = (tmp, target)
        for folder in {os.path.dirname(t) for t, _ in self._temps.values()}:
            remove_stale_temporaries(folder)
            self._probe(folder)

    # ------------------------------------------------------------------ checks made before any work

    def _check_paths(self):
        seen = []  # (file, the output it belongs to, which of its files)
        input_files = [f for p in self.inputs for f in (p, os.path.splitext(p)[0] + ".qml")]
        for kind, (path, what) in self.outputs.items():
            check_output_path(path, self.inputs)
            for side, target in sidecars(path, what).items():
                for other, owner, other_side in seen:
                    if _same(target, other):
                        raise HsiDetectError(
                            f"Two outputs would be written to the same file {other}: {_role(path, side)} and "
                            f"{_role(owner, other_side)}. Give each output its own name (a raster's .qml style "
                            "takes its name without the extension).")
                if side:
                    for inp in input_files:
                        if _same(target, inp):
                            raise HsiDetectError(
                                f"The output {path} would overwrite {inp}, a file of the input. Choose another "
                                "output name.")
                seen.append((target, path, side))

    def _probe(self, folder: str):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise HsiDetectError(f"Cannot write to the output folder {folder} (permission denied). "
                                 "Choose a folder you may write to.")
        probe = os.path.join(folder, f".hsi-detect.{self.tag}.partial")
        try:
            with open(probe, "wb"):
                pass
        except OSError as exc:
            raise (disk_error(exc, f"to {folder}") or HsiDetectError(
                f"Cannot write to the output folder {folder} ({exc.strerror}). Choose another folder.")) from None
        finally:
            if os.path.exists(probe):
                os.remove(probe)

    def check_space(self, sizes: Dict[str, int]):
        """Refuse when a target folder's disk lacks the expected bytes (kind -> size) plus a margin."""
        need = {}
        for kind, size in sizes.items():
            if kind in self.outputs:
                folder = os.path.dirname(os.path.abspath(self.outputs[kind][0]))
                dev = os.stat(folder).st_dev
                need.setdefault(dev, [folder, 0])[1] += int(size) + 64 * 1024
        for folder, size in need.values():
            free = shutil.disk_usage(folder).free
            if free < size:
                raise HsiDetectError(f"Not enough free space in {folder}: the outputs need about "
                                     f"{_mb(size)}, the disk has {_mb(free)} free. Free some space or choose "
                                     "another output folder.")

    # ------------------------------------------------------------------ writing

    def path(self, kind: str, sidecar: str = "") -> str:
        """The temporary to write output ``kind`` (or its ``sidecar``, e.g. 'qml') to."""
        return self._temps[(kind, sidecar)][0]

    def scratch(self, kind: str, name: str) -> str:
        """A hidden scratch file beside output ``kind`` (e.g. raw scores of a streamed run), named like a
        temporary, so that a run killed outright leaves nothing the next run does not remove."""
        folder, base = os.path.split(os.path.abspath(self.outputs[kind][0]))
        path = os.path.join(folder, f".{base}-{name}.{self.tag}.partial{os.path.splitext(name)[1]}")
        self._scratch.append(path)
        return path

    def _remove_scratch(self):
        """Remove the scratch files, noting their total size (``scratch_bytes``) for the run's summary."""
        for path in self._scratch:
            for p in (path, path + ".aux.xml"):
                try:
                    self.scratch_bytes += os.path.getsize(p)
                    os.remove(p)
                except FileNotFoundError:
                    pass

    def commit(self) -> Dict[str, str]:
        """Flush every written temporary to disk, then rename them all into place; kind -> final path."""
        self._remove_scratch()
        written = [(tmp, target) for tmp, target in self._temps.values() if os.path.exists(tmp)]
        try:
            for tmp, target in written:
                _fsync(tmp)
        except OSError as exc:
            raise (disk_error(exc, final_name(tmp)) or exc) from None
        done = {}
        for (kind, side), (tmp, target) in self._temps.items():
            if os.path.exists(tmp):
                os.replace(tmp, target)
                if side == "":
                    done[kind] = target
            elif side == "aux" and kind in done and os.path.exists(target):
                os.remove(target)  # a replaced raster's old statistics would describe the old raster
        for folder in {os.path.dirname(os.path.abspath(t)) for _, t in written}:
            _fsync(folder)
        self.committed = True
        return done

    def abort(self):
        self._remove_scratch()
        for tmp, _ in self._temps.values():
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.committed:
            self.abort()
        if isinstance(exc, OSError):
            error = disk_error(exc, final_name(exc.filename or "the outputs"))
            if error is not None:
                raise error from None
        return False


def _fsync(path: str):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL or not os.path.isdir(path):  # some systems cannot sync a folder
            raise
    finally:
        os.close(fd)


def _role(path: str, side: str) -> str:
    return {"": f"the output {path}", "qml": f"the style of {path}", "aux": f"the statistics of {path}"}[side]


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
