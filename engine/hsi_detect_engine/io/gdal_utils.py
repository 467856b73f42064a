"""GDAL with exceptions switched on, and GDAL's error text shortened to one clause."""

from __future__ import annotations

from contextlib import contextmanager


def gdal():
    from osgeo import gdal as _gdal_module

    _gdal_module.UseExceptions()
    return _gdal_module


def short_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


@contextmanager
def cache_at_most(size: int):
    """GDAL's block cache held to ``size`` bytes (or its current smaller size) inside the block.
    By default it may grow to 5% of the machine's memory and keep that much of a file just read."""
    g = gdal()
    before = g.GetCacheMax()
    g.SetCacheMax(min(before, int(size)))
    try:
        yield
    finally:
        g.SetCacheMax(before)
