"""Test inputs written with GDAL directly, independently of the engine's writer."""

from osgeo import gdal, osr


def write_tif(path, data, geotransform=(500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0), epsg=32651, nodata=None):
    """An (H, W, B) array as a float32 GeoTIFF with a projected CRS; returns the path."""
    rows, cols, bands = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal.GDT_Float32)
    ds.SetGeoTransform(geotransform)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(data[:, :, b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None
    return str(path)
