"""Research cubes: MATLAB .mat (v5 and v7.3/HDF5), .npy and .npz.

These files carry a (rows, cols, bands) array and often a 2-D ground truth, but no
georeference. MATLAB v7.3 files are HDF5, where arrays appear transposed; they are
turned back into MATLAB's (rows, cols, bands) order.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ..errors import HsiDetectError
from .bands import select_bands
from .cube import Cube, Georef

RESEARCH_SUFFIXES = (".mat", ".npy", ".npz")

GT_HINTS = ("gt", "map", "groundtruth", "ground_truth", "mask", "label", "labels")


def load_arrays(path: str) -> dict:
    """All numeric arrays of a research file, by key."""
    lower = path.lower()
    try:
        if lower.endswith(".npy"):
            return {"array": np.load(path, allow_pickle=False)}
        if lower.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if lower.endswith(".mat"):
            return _load_mat(path)
    except HsiDetectError:
        raise
    except Exception as exc:  # numpy/scipy/h5py raise many types for damaged files
        raise HsiDetectError(f"{path} could not be read as a {os.path.splitext(path)[1]} file ({exc}). "
                             "Check that the file is complete.") from None
    raise HsiDetectError(f"{path}: unknown research file type. Use .mat, .npy or .npz.")


def _load_mat(path: str) -> dict:
    with open(path, "rb") as f:
        head = f.read(128)
    if b"MATLAB 7.3" in head or head[:8] == b"\x89HDF\r\n\x1a\n" or _is_hdf5(path):
        import h5py

        out = {}
        with h5py.File(path, "r") as f:
            for k, v in f.items():
                if isinstance(v, h5py.Dataset) and v.dtype.kind in "biuf":
                    out[k] = np.asarray(v[()]).T  # HDF5 stores MATLAB arrays transposed
        return out
    from scipy.io import loadmat

    data = loadmat(path)
    return {k: v for k, v in data.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "biuf"}


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(512)
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _pick(arrays: dict, ndim: int, key: Optional[str], what: str, path: str):
    if key is not None:
        if key not in arrays:
            raise HsiDetectError(f"{path} has no array named '{key}'. It holds: {', '.join(sorted(arrays)) or 'nothing numeric'}.")
        arr = arrays[key]
        if arr.ndim != ndim:
            raise HsiDetectError(f"Array '{key}' in {path} has {arr.ndim} dimensions; the {what} must have {ndim}.")
        return key, arr
    cands = {k: v for k, v in arrays.items() if v.ndim == ndim}
    if ndim == 2:
        hinted = [k for k in cands if k.lower() in GT_HINTS]
        if len(hinted) == 1:
            return hinted[0], cands[hinted[0]]
    if len(cands) == 1:
        k = next(iter(cands))
        return k, cands[k]
    if not cands:
        return None, None
    raise HsiDetectError(f"{path} holds several {ndim}-D arrays ({', '.join(sorted(cands))}). Say which is the {what} by its key.")


def read_research_cube(path: str, bands: Optional[Sequence[int]] = None, min_bands: int = 3,
                       key: Optional[str] = None, gt_key: Optional[str] = None) -> Cube:
    arrays = load_arrays(path)
    name, arr = _pick(arrays, 3, key, "image cube", path)
    if arr is None:
        shapes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items()) or "no numeric array"
        raise HsiDetectError(f"{path} holds no 3-D (rows, cols, bands) array ({shapes}). A hyperspectral cube is needed.")
    band_numbers = select_bands(bands, arr.shape[2], path)
    if len(band_numbers) < min_bands:
        raise HsiDetectError(f"{path}: {len(band_numbers)} band(s) selected, but a hyperspectral cube needs at least {min_bands}.")
    data = np.ascontiguousarray(arr[:, :, [b - 1 for b in band_numbers]], dtype=np.float32)
    valid = np.isfinite(data).all(axis=2)
    data[~valid] = 0.0
    _, gt = _pick({k: v for k, v in arrays.items() if k != name}, 2, gt_key, "ground truth", path)
    if gt is not None and gt.shape != arr.shape[:2]:
        if gt_key is not None:
            raise HsiDetectError(f"Ground truth '{gt_key}' in {path} is {gt.shape} but the cube is {arr.shape[:2]}.")
        gt = None
    return Cube(data, valid, Georef(arr.shape[0], arr.shape[1]), band_numbers,
                [f"Band {n}" for n in band_numbers], None, "", path, gt)


def read_research_2d(path: str, key: Optional[str] = None) -> np.ndarray:
    arrays = load_arrays(path)
    _, arr = _pick(arrays, 2, key, "2-D map", path)
    if arr is None:
        raise HsiDetectError(f"{path} holds no 2-D array to use as a map.")
    return arr

