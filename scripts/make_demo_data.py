"""Rebuild the demo GeoTIFFs in data/demo from the benchmark files in ../shared/data.

The sources carry no georeference; the CRS and geotransform given here are illustrative
(a plausible UTM zone and pixel size for each scene), as data/demo/README.md says.
Run: .venv/bin/python scripts/make_demo_data.py [SHARED_DATA_DIR]
"""

import os
import sys

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "demo")


def write(path, array, epsg, origin, pixel, nodata=None, descriptions=None):
    arr = array if array.ndim == 3 else array[:, :, None]
    types = {np.dtype("uint8"): gdal.GDT_Byte, np.dtype("uint16"): gdal.GDT_UInt16, np.dtype("int16"): gdal.GDT_Int16}
    ds = gdal.GetDriverByName("GTiff").Create(path, arr.shape[1], arr.shape[0], arr.shape[2], types[arr.dtype],
                                              ["COMPRESS=DEFLATE", "PREDICTOR=2", "TILED=YES", "INTERLEAVE=PIXEL"])
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for i in range(arr.shape[2]):
        band = ds.GetRasterBand(i + 1)
        band.WriteArray(arr[:, :, i])
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if descriptions:
            band.SetDescription(descriptions[i])
    ds = None


def main(shared):
    os.makedirs(OUT, exist_ok=True)
    hyd = np.load(os.path.join(shared, "anomaly", "hydice-urban-80x100x162.npz"))
    # HYDICE Urban (Copperas Cove, Texas): UTM 14N, about 2 m pixels (illustrative).
    write(os.path.join(OUT, "hydice_urban.tif"), hyd["cube"], 32614, (600000.0, 3440000.0), 2.0)
    write(os.path.join(OUT, "hydice_urban_gt.tif"), hyd["gt"].astype(np.uint8), 32614, (600000.0, 3440000.0), 2.0)
    tz = np.load(os.path.join(shared, "change", "taizhou-landsat7-etm-6band.npz"))
    names = ["TM1 blue", "TM2 green", "TM3 red", "TM4 NIR", "TM5 SWIR1", "TM7 SWIR2"]
    # Taizhou (Jiangsu, China): UTM 51N, 30 m Landsat pixels (illustrative).
    origin = (230000.0, 3600000.0)
    write(os.path.join(OUT, "taizhou_2000.tif"), tz["t1"], 32651, origin, 30.0, descriptions=names)
    write(os.path.join(OUT, "taizhou_2003.tif"), tz["t2"], 32651, origin, 30.0, descriptions=names)
    write(os.path.join(OUT, "taizhou_gt.tif"), tz["gt"].astype(np.uint8), 32651, origin, 30.0, nodata=255)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "data"))
