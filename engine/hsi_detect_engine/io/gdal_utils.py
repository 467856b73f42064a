"""GDAL with exceptions switched on, and GDAL's error text shortened to one clause."""

from __future__ import annotations


def gdal():
    from osgeo import gdal as _gdal_module

    _gdal_module.UseExceptions()
    return _gdal_module


def short_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")
