"""Turning an input raster layer into a file that the engine's own GDAL can open.

A layer read straight from a file on disk is handed over by its path. Anything else (a
layer in GDAL's memory file system, a virtual raster, a web service, a GDAL source with
open options) lives only in this QGIS process, so it is written to a temporary GeoTIFF
first. The export keeps every band in its order, so QGIS band numbers stay valid.
"""

import os

from qgis.core import (QgsProcessingException, QgsProcessingUtils, QgsProviderRegistry, QgsRasterFileWriter,
                       QgsRasterPipe)

from .qgis_compat import RASTER_WRITE_SUCCESS


def plain_file(layer) -> str:
    """The layer's file path when GDAL in another process can open it as it is, else ''."""
    if layer.providerType() != "gdal":
        return ""
    parts = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())
    path = parts.get("path") or ""
    if parts.get("layerName") or parts.get("openOptions") or not os.path.isfile(path):
        return ""
    return os.path.abspath(path)


def raster_file(layer, label: str, context, feedback) -> str:
    """A GeoTIFF or other GDAL file holding ``layer``'s pixels, exporting it when needed."""
    path = plain_file(layer)
    if path:
        return path
    provider = layer.dataProvider()
    if provider is None or provider.xSize() <= 0 or provider.ySize() <= 0:
        raise QgsProcessingException(
            f"The layer '{layer.name()}' ({label}) has no fixed pixel grid to export. Save it as a GeoTIFF "
            "(Export > Save As...) and use that file.")
    out = QgsProcessingUtils.generateTempFilename(f"{label.lower().replace(' ', '_')}.tif")
    pipe = QgsRasterPipe()
    if not pipe.set(provider.clone()):
        raise QgsProcessingException(f"Could not read the layer '{layer.name()}' ({label}) for export.")
    writer = QgsRasterFileWriter(out)
    writer.setOutputFormat("GTiff")
    writer.setCreateOptions(["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER"])
    error = writer.writeRaster(pipe, provider.xSize(), provider.ySize(), provider.extent(), provider.crs(),
                               context.transformContext())
    if error != RASTER_WRITE_SUCCESS:
        raise QgsProcessingException(
            f"Could not export the layer '{layer.name()}' ({label}) to a temporary GeoTIFF (error {error}). "
            "Save it as a GeoTIFF yourself and use that file.")
    feedback.pushInfo(f"{label}: the layer '{layer.name()}' is not a plain file; exported it to {out}")
    return out
