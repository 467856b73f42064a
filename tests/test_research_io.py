"""Research cubes: MATLAB v5, MATLAB v7.3 (HDF5), .npy and .npz."""

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from hsi_detect_engine.errors import HsiDetectError
from hsi_detect_engine.io.reader import read_cube


@pytest.fixture
def arrays():
    rng = np.random.default_rng(1)
    cube = rng.integers(0, 5000, size=(9, 13, 5)).astype(np.uint16)
    gt = (rng.random((9, 13)) > 0.9).astype(np.uint8)
    return cube, gt


def test_mat_v5(tmp_path, arrays):
    cube, gt = arrays
    p = tmp_path / "scene.mat"
    savemat(p, {"data": cube, "map": gt})
    c = read_cube(str(p))
    np.testing.assert_array_equal(c.data, cube.astype(np.float32))
    np.testing.assert_array_equal(c.ground_truth, gt)
    assert c.georef.geotransform is None


def test_mat_v73_hdf5_is_transposed_back(tmp_path, arrays):
    cube, gt = arrays
    p = tmp_path / "scene73.mat"
    with h5py.File(p, "w", userblock_size=512) as f:  # MATLAB v7.3 layout: HDF5, arrays transposed
        f["data"] = cube.T
        f["groundtruth"] = gt.T.astype(np.float64)
    with open(p, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    c = read_cube(str(p))
    np.testing.assert_array_equal(c.data, cube.astype(np.float32))
    np.testing.assert_array_equal(c.ground_truth, gt)


def test_npz_by_key_and_band_subset(tmp_path, arrays):
    cube, gt = arrays
    p = tmp_path / "scene.npz"
    np.savez(p, cube=cube, other=cube[:, :, :3], gt=gt)
    with pytest.raises(HsiDetectError, match="several 3-D arrays"):
        read_cube(str(p))
    c = read_cube(str(p), key="cube", bands=[1, 4, 5])
    np.testing.assert_array_equal(c.data, cube[:, :, [0, 3, 4]].astype(np.float32))
    np.testing.assert_array_equal(c.ground_truth, gt)


def test_npy_and_non_finite(tmp_path, arrays):
    cube = arrays[0].astype(np.float32)
    cube[2, 3, 1] = np.nan
    p = tmp_path / "scene.npy"
    np.save(p, cube)
    c = read_cube(str(p))
    assert not c.valid[2, 3] and c.valid.sum() == 9 * 13 - 1


def test_research_file_errors(tmp_path, arrays):
    p = tmp_path / "flat.npz"
    np.savez(p, img=arrays[1])
    with pytest.raises(HsiDetectError, match="no 3-D"):
        read_cube(str(p))
    with pytest.raises(HsiDetectError, match="no array named 'x'"):
        read_cube(str(p), key="x")
    bad = tmp_path / "broken.mat"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(HsiDetectError, match="could not be read"):
        read_cube(str(bad))
