"""The streamed networks' scratch copy: windows read back as written, space reserved up front."""

import os

import numpy as np
import pytest

from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.scratch import ScratchCube, fill_scratch


def test_windows_read_back_as_written_with_invalid_pixels_zero(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(37, 23, 7)).astype(np.float32)
    valid = rng.random((37, 23)) > 0.1
    plan = [(0, 0, 10, 23), (10, 0, 27, 12), (10, 12, 27, 11)]
    scratch = fill_scratch(str(tmp_path / "s.bin"), cube.shape,
                           lambda r, c, h, w: (cube[r:r + h, c:c + w].copy(), valid[r:r + h, c:c + w]), plan,
                           lambda x, v: x * 2)
    with scratch:
        expected = cube * 2
        expected[~valid] = 0
        assert os.path.getsize(scratch.path) == scratch.nbytes == 37 * 23 * 7 * 4
        for r, c, h, w in [(0, 0, 37, 23), (3, 5, 10, 4), (36, 22, 1, 1), (0, 0, 1, 23)]:
            got, ok = scratch.read(r, c, h, w)
            assert np.array_equal(got, expected[r:r + h, c:c + w])
            assert np.array_equal(ok, valid[r:r + h, c:c + w])
        with pytest.raises(HsiDetectError, match="outside"):
            scratch.read(30, 0, 8, 23)


def test_a_disk_without_room_is_refused_when_the_copy_is_made(tmp_path):
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    free = os.statvfs("/dev/shm")
    too_big = free.f_bavail * free.f_frsize // 4 + (1 << 20)
    path = f"/dev/shm/hsi-scratch-test-{os.getpid()}.bin"
    try:
        with pytest.raises(HsiDetectError, match="scratch copy.*(full|quota)"):
            ScratchCube(path, too_big, 1, 1)
    finally:
        if os.path.exists(path):
            os.remove(path)
