"""Checks on input and output paths, made before any work."""

from __future__ import annotations

import glob
import os
from typing import Iterable

from ..errors import HsiDetectError

def check_input_path(path: str) -> str:
    """An existing, readable file, or a product folder (EnMAP: one holding a METADATA.XML)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise HsiDetectError(f"Input file not found: {path}. Check the path and try again.")
    if os.path.isdir(path) and not (glob.glob(os.path.join(path, "*METADATA.XML"))
                                    or glob.glob(os.path.join(path, "*", "*METADATA.XML"))):
        raise HsiDetectError(f"Input {path} is a folder, not a raster file. Give the path of an image file.")
    if not os.access(path, os.R_OK):
        raise HsiDetectError(f"Input file {path} cannot be read (permission denied). Check its permissions.")
    return path


def check_output_path(path: str, inputs: Iterable[str] = ()) -> str:
    """Refuse an output whose folder is missing or that would overwrite an input."""
    if not path:
        raise HsiDetectError("No output path was given. Say where the result should be written.")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise HsiDetectError(f"Output folder {folder} does not exist. Create it or choose another output path.")
    if os.path.isdir(path) and not (glob.glob(os.path.join(path, "*METADATA.XML"))
                                    or glob.glob(os.path.join(path, "*", "*METADATA.XML"))):
        raise HsiDetectError(f"Output {path} is a folder. Give a file name such as {os.path.join(path, 'result.tif')}.")
    real = os.path.realpath(path)
    for inp in inputs:
        if not inp:
            continue
        same = os.path.realpath(inp) == real or (
            os.path.exists(inp) and os.path.exists(path) and os.path.samefile(inp, path))
        if same:
            raise HsiDetectError(f"Output {path} is the same file as input {inp}. Choose another output name so that the input is not overwritten.")
    return path
