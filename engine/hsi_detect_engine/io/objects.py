"""Detected objects: the binary map's connected regions as a GeoPackage polygon layer.

Each 8-connected region of detected pixels (optionally only those of at least a minimum
number of pixels) becomes one feature with its rank by peak score (1 = highest), its pixel
count and area in map units, its peak and mean score, the map coordinates of the peak
pixel's centre (the first in raster order where the peak is tied) and of the region's centroid. The layer carries the raster's CRS and its
style (outline, labelled by rank), stored in the GeoPackage as the layer's default style
and as a .qml beside it. Like every output, it is written where the run's transaction says
(a temporary name, renamed into place with the run's other outputs).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import HsiDetectError
from .cube import Georef
from .gdal_utils import gdal as _gdal, short_error as _short
from .styles import objects_qml, write_qml

EIGHT = np.ones((3, 3), dtype=bool)
FIELDS = ("id", "rank", "pixels", "area", "peak_score", "mean_score", "peak_x", "peak_y", "centroid_x", "centroid_y")


def check_objects_output(path: str, min_size: int):
    """Refuse, before any work, an objects file that is not a GeoPackage or a minimum size below 1."""
    if not str(path).lower().endswith(".gpkg"):
        raise HsiDetectError(f"The objects file {path} must be a GeoPackage: give a name ending in .gpkg.")
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise HsiDetectError(f"The minimum object size must be a whole number of at least 1 pixel (got {min_size!r}).")


def label_objects(detected: np.ndarray, min_size: int = 1):
    """(labels, count): 8-connected regions of ``detected`` numbered 1..count, 0 elsewhere;
    regions of fewer than ``min_size`` pixels are dropped."""
    from scipy import ndimage

    if min_size < 1:
        raise HsiDetectError(f"The minimum object size must be at least 1 pixel (got {min_size}).")
    labels, count = ndimage.label(np.asarray(detected, dtype=bool), structure=EIGHT)
    if min_size > 1 and count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        keep = sizes >= min_size
        keep[0] = False
        renumber = np.zeros(count + 1, dtype=np.int32)
        renumber[keep] = np.arange(1, int(keep.sum()) + 1)
        labels, count = renumber[labels], int(keep.sum())
    return labels.astype(np.int32), int(count)


def _map_xy(geotransform, rows: np.ndarray, cols: np.ndarray):
    """Map coordinates of pixel positions (fractional row, col of a pixel's corner)."""
    g = geotransform or (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    return g[0] + cols * g[1] + rows * g[2], g[3] + cols * g[4] + rows * g[5]


def object_table(labels: np.ndarray, count: int, score: np.ndarray, georef: Georef) -> list:
    """One dict per object (FIELDS), ordered by rank."""
    from scipy import ndimage

    if count == 0:
        return []
    index = np.arange(1, count + 1)
    score = np.asarray(score, dtype=np.float64)
    pixels = ndimage.sum_labels(np.ones_like(score), labels, index)
    mean = ndimage.mean(score, labels, index)
    flat = np.flatnonzero(labels)  # in raster order
    v = score.ravel()[flat]
    top = highest(labels.ravel()[flat] - 1, v, flat, count)
    peak = v[top]
    peak_rc = np.stack(np.divmod(flat[top], labels.shape[1]), axis=1).astype(np.float64)
    centre_rc = np.array(ndimage.center_of_mass(np.ones_like(score), labels, index), dtype=np.float64).reshape(-1, 2)
    return object_rows(pixels, peak, mean, peak_rc, centre_rc, georef)


def highest(groups: np.ndarray, values: np.ndarray, positions: np.ndarray, count: int) -> np.ndarray:
    """For each group 0..count-1 (every one present in ``groups``): the index of its highest value,
    the one at the lowest position where the value is tied."""
    order = np.lexsort((positions, -values, groups))
    return order[np.searchsorted(groups[order], np.arange(count))]


def object_rows(pixels, peak, mean, peak_rc, centre_rc, georef: Georef) -> list:
    """object_table's rows from each object's figures, objects numbered 1.. in the order given:
    pixel count, peak and mean score, (row, col) of the peak pixel and of the centroid."""
    count = len(pixels)
    index = np.arange(1, count + 1)
    g = georef.geotransform or (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    pixel_area = abs(g[1] * g[5] - g[2] * g[4])
    peak_x, peak_y = _map_xy(g, peak_rc[:, 0] + 0.5, peak_rc[:, 1] + 0.5)
    cx, cy = _map_xy(g, centre_rc[:, 0] + 0.5, centre_rc[:, 1] + 0.5)
    order = np.lexsort((index, -peak))  # highest peak first; ties by label
    rank = np.empty(count, dtype=np.int64)
    rank[order] = np.arange(1, count + 1)
    return sorted(({"id": int(i), "rank": int(rank[k]), "pixels": int(pixels[k]), "area": float(pixels[k] * pixel_area),
                    "peak_score": float(peak[k]), "mean_score": float(mean[k]), "peak_x": float(peak_x[k]),
                    "peak_y": float(peak_y[k]), "centroid_x": float(cx[k]), "centroid_y": float(cy[k])}
                   for k, i in enumerate(index)), key=lambda r: r["rank"])


def label_polygons(labels: np.ndarray, georef: Georef) -> dict:
    """{label: OGR geometry} of a label array (band_polygons on it)."""
    gdal = _gdal()
    rows, cols = labels.shape
    raster = gdal.GetDriverByName("MEM").Create("", cols, rows, 1, gdal.GDT_Int32)
    raster.SetGeoTransform(georef.geotransform or (0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    band = raster.GetRasterBand(1)
    band.WriteArray(labels)
    return band_polygons(band)


def band_polygons(band) -> dict:
    """{label: OGR multipolygon} from GDAL's polygonize (8-connected) of a label raster band
    (0: none), in its raster's map coordinates. GDAL reads the band a few lines at a time."""
    gdal = _gdal()
    from osgeo import ogr

    ogr.UseExceptions()
    memory = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = memory.CreateLayer("regions", geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTInteger))
    gdal.Polygonize(band, band, layer, 0, ["8CONNECTED=8"])
    parts = {}
    for feature in layer:
        parts.setdefault(feature.GetField(0), []).append(feature.GetGeometryRef().Clone())
    out = {}
    for key, geoms in parts.items():
        if len(geoms) == 1:
            out[key] = ogr.ForceToMultiPolygon(geoms[0])
        else:
            union = ogr.Geometry(ogr.wkbMultiPolygon)
            for g in geoms:
                union.AddGeometry(g)
            out[key] = ogr.ForceToMultiPolygon(union.UnionCascaded())
    return out


def _write_default_style(ds, layer_name: str, geometry_column: str, qml: str):
    """QGIS's layer_styles table, so that the layer opens with its style wherever it is loaded."""
    from osgeo import ogr

    styles = ds.CreateLayer("layer_styles", geom_type=ogr.wkbNone)
    for name, kind in (("f_table_catalog", ogr.OFTString), ("f_table_schema", ogr.OFTString),
                       ("f_table_name", ogr.OFTString), ("f_geometry_column", ogr.OFTString),
                       ("styleName", ogr.OFTString), ("styleQML", ogr.OFTString), ("styleSLD", ogr.OFTString),
                       ("useAsDefault", ogr.OFTInteger), ("description", ogr.OFTString),
                       ("owner", ogr.OFTString), ("ui", ogr.OFTString), ("update_time", ogr.OFTDateTime)):
        field = ogr.FieldDefn(name, kind)
        if name == "useAsDefault":
            field.SetSubType(ogr.OFSTBoolean)
        styles.CreateField(field)
    f = ogr.Feature(styles.GetLayerDefn())
    for name, value in (("f_table_catalog", ""), ("f_table_schema", ""), ("f_table_name", layer_name),
                        ("f_geometry_column", geometry_column), ("styleName", layer_name), ("styleQML", qml),
                        ("styleSLD", ""), ("useAsDefault", 1), ("description", "hsi-detect"), ("owner", ""),
                        ("ui", "")):
        f.SetField(name, value)
    styles.CreateFeature(f)


def write_objects(path: str, table: list, geometries: dict, georef: Georef, layer_name: str,
                  score_name: str = "score", colour: str = "#e31a1c", style: Optional[str] = None) -> str:
    """Write the objects of ``table`` (object_table), their ``geometries`` by id, as the polygon
    layer ``layer_name`` of a new GeoPackage at ``path``, with its style (stored in it, and as a
    .qml at ``style``, default beside it). Returns the path."""
    from osgeo import ogr, osr

    ogr.UseExceptions()
    ds = None
    try:
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
        srs = None
        if georef.crs_wkt:
            srs = osr.SpatialReference()
            srs.ImportFromWkt(georef.crs_wkt)
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        layer = ds.CreateLayer(layer_name, srs=srs, geom_type=ogr.wkbMultiPolygon, options=["FID=fid"])
        kinds = {"id": ogr.OFTInteger, "rank": ogr.OFTInteger, "pixels": ogr.OFTInteger}
        for name in FIELDS:
            layer.CreateField(ogr.FieldDefn(_field_name(name, score_name), kinds.get(name, ogr.OFTReal)))
        defn = layer.GetLayerDefn()
        ds.StartTransaction()
        for row in table:
            feature = ogr.Feature(defn)
            for name in FIELDS:
                feature.SetField(_field_name(name, score_name), row[name])
            feature.SetGeometry(geometries[row["id"]])
            layer.CreateFeature(feature)
        ds.CommitTransaction()
        qml = objects_qml(colour)
        _write_default_style(ds, layer_name, layer.GetGeometryColumn() or "geom", qml)
    except RuntimeError as exc:
        raise HsiDetectError(f"Cannot write the objects layer ({_short(exc)}). Check that the folder is writable "
                             "and has space.") from None
    finally:
        ds = None
    write_qml(path, qml, style)
    return path


def _field_name(name: str, score_name: str) -> str:
    """The score fields take the score's name: peak_change and mean_change for a change magnitude."""
    if name in ("peak_score", "mean_score") and score_name != "score":
        return name.replace("score", score_name)
    return name


def write_detected_objects(path: str, detected: np.ndarray, score: np.ndarray, georef: Georef, *,
                           min_size: int = 1, layer_name: str = "detected_objects", score_name: str = "score",
                           style: Optional[str] = None) -> dict:
    """Label ``detected`` (bool map), measure each object on ``score`` and write the layer.
    Returns {"path", "objects"}."""
    labels, count = label_objects(detected, min_size)
    table = object_table(labels, count, score, georef)
    geometries = label_polygons(labels, georef) if count else {}
    return {"path": write_objects(path, table, geometries, georef, layer_name, score_name, style=style),
            "objects": count}
