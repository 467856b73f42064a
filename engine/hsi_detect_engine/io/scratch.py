"""A scene's scaled copy on disk for the streamed networks: float32, pixel-interleaved, read by windows.

The networks read training crops at random places and detection tiles with their halo, many
times over; a source file's own layout (band-sequential, compressed tiles) makes that slow.
A streamed run writes the scaled pixels once into this copy and reads windows from it with
positioned reads: no memory map, so what was read does not stay in the process's resident
memory. Its space is reserved when it is made, so a disk without room fails before the work.
The validity mask (one byte per pixel) is kept in memory.
"""

from __future__ import annotations

import os
import weakref
from typing import Callable, Optional

import numpy as np

from ..errors import HsiDetectError
from .transaction import disk_error

_ITEM = 4  # float32


class ScratchCube:
    """A (rows, cols, bands) float32 cube in a file at ``path``; invalid pixels hold 0.

    ``working``: a store of intermediate values (a network's activations) rather than a scene:
    its file is removed at once (its space stays reserved until the cube is closed or dropped)
    and it keeps no validity mask."""

    def __init__(self, path: str, rows: int, cols: int, bands: int, working: bool = False):
        self.path = path
        self.shape = (rows, cols, bands)
        self.valid = None if working else np.zeros((rows, cols), dtype=bool)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._closer = weakref.finalize(self, os.close, self._fd)
        try:
            if working:
                os.remove(path)
            os.posix_fallocate(self._fd, 0, max(1, rows * cols * bands * _ITEM))
        except OSError as exc:
            self.close()
            raise (disk_error(exc, f"the scratch copy {path}") or exc) from None

    @property
    def nbytes(self) -> int:
        rows, cols, bands = self.shape
        return rows * cols * bands * _ITEM

    def _rows(self, row: int, col: int, rows: int, cols: int):
        """(file offset, byte count, row index) of each image row of a window; one run when it spans the width."""
        height, width, bands = self.shape
        if row < 0 or col < 0 or rows <= 0 or cols <= 0 or row + rows > height or col + cols > width:
            raise HsiDetectError(f"Window ({row}, {col}, {rows}, {cols}) lies outside the {height} x {width} image.")
        line = width * bands * _ITEM
        if cols == width:
            return [((row * width) * bands * _ITEM, rows * line, slice(0, rows))]
        size = cols * bands * _ITEM
        return [(((row + r) * width + col) * bands * _ITEM, size, slice(r, r + 1)) for r in range(rows)]

    def write(self, row: int, col: int, cube: np.ndarray, valid: Optional[np.ndarray] = None):
        """Store a window (rows, cols, bands) float32 and its validity (none for a working store)."""
        rows, cols = cube.shape[:2]
        data = np.ascontiguousarray(cube, dtype=np.float32)
        try:
            for offset, size, part in self._rows(row, col, rows, cols):
                view = memoryview(data[part]).cast("B")
                done = 0
                while done < size:
                    done += os.pwrite(self._fd, view[done:], offset + done)
        except OSError as exc:
            raise (disk_error(exc, f"the scratch copy {self.path}") or exc) from None
        if self.valid is not None:
            self.valid[row:row + rows, col:col + cols] = valid

    def read(self, row: int, col: int, rows: int, cols: int) -> tuple:
        """(cube (rows, cols, bands) float32, valid (rows, cols) bool) of a window."""
        out = np.empty((rows, cols, self.shape[2]), dtype=np.float32)
        for offset, size, part in self._rows(row, col, rows, cols):
            view = memoryview(out[part]).cast("B")
            done = 0
            while done < size:
                n = os.preadv(self._fd, [view[done:]], offset + done)
                if n <= 0:
                    raise HsiDetectError(f"The scratch copy {self.path} ended early; its disk may have been "
                                         "cleared during the run. Run again.")
                done += n
        return out, None if self.valid is None else self.valid[row:row + rows, col:col + cols].copy()

    def __getitem__(self, window: tuple) -> np.ndarray:
        """cube[r0:r1, c0:c1]: the values of a window, as an array's slice gives them."""
        rs, cs = window
        r0, r1, _ = rs.indices(self.shape[0])
        c0, c1, _ = cs.indices(self.shape[1])
        return self.read(r0, c0, r1 - r0, c1 - c0)[0]

    def close(self):
        if self._fd is not None:
            self._closer()
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def fill_scratch(path: str, shape: tuple, read: Callable, plan: list, transform: Optional[Callable] = None,
                 windows=None) -> ScratchCube:
    """A ScratchCube of ``shape`` filled window by window: ``read(row, col, rows, cols)`` gives
    (cube, valid) of each planned window, ``transform(cube, valid)`` the values stored (e.g. the
    scaling; invalid pixels are set to 0). ``windows``: an iterator over ``plan`` that reports
    progress (streaming.rx.windows), else the plan itself."""
    scratch = ScratchCube(path, *shape)
    try:
        for window in (windows if windows is not None else plan):
            cube, valid = read(*window)
            if transform is not None:
                cube = transform(cube, valid)
            cube[~valid] = 0.0
            scratch.write(window[0], window[1], cube, valid)
    except BaseException:
        scratch.close()
        raise
    return scratch
