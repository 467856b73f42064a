"""Small sensor-product files in each product's documented layout, made from a real scene.

The spectra of a real scene (default: ABU urban-1, AVIRIS, from ../shared/data) are
resampled to each product's band centres and written as the product stores them
(products.md): an ENVI header + BIL data, an EnMAP L2A product folder, a PRISMA L2D .he5
with its two cubes and an EMIT L2A .nc with a rotated swath and its GLT. The scene's
files carry no wavelengths after their band removal, so its bands are spread evenly over
400-2500 nm: the spectra are real, their wavelength labels nominal. Sizes are tiny
(40 x 50 pixels) but band counts are the products' own.

Run: python scripts/make_product_samples.py OUT_FOLDER [--scene SCENE.npz]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENES = [os.path.join(ROOT, "..", "shared", "data", "anomaly", "abu-urban-1.npz"),
          "/work/shared/data/anomaly/abu-urban-1.npz"]
ROWS, COLS = 40, 50
UTM_EPSG = 32633
EASTING, NORTHING = 500000.0, 4100000.0  # upper-left corner of the map grid
ENMAP_NAME = "ENMAP01-____L2A-DT0000004950_20220609T100231Z_003_V010400_20231005T005813Z"
PRISMA_NAME = "PRS_L2D_STD_20220609100231_20220609100235_0001.he5"
EMIT_NAME = "EMIT_L2A_RFL_001_20230101T100000_2300107_002.nc"


# ------------------------------------------------------------------------------------ the scene

def load_scene(path: str = "", offset: tuple = (10, 20)) -> np.ndarray:
    """(ROWS, COLS, bands) reflectance-like float32 from a real scene (a 40 x 50 crop)."""
    path = path or next((p for p in SCENES if os.path.exists(p)), "")
    if not path:
        raise SystemExit("No scene found: give --scene with an .npz holding 'cube' (rows, cols, bands).")
    cube = np.load(path)["cube"].astype(np.float32)
    r, c = offset
    crop = cube[r:r + ROWS, c:c + COLS]
    scale = np.percentile(crop, 99) / 0.5
    return np.clip(crop / scale, 0, None)


def resample(cube: np.ndarray, centres) -> np.ndarray:
    """The scene's spectra, its bands spread evenly over 400-2500 nm, interpolated to ``centres``."""
    source = np.linspace(400.0, 2500.0, cube.shape[2])
    weights = np.zeros((cube.shape[2], len(centres)), dtype=np.float32)
    for j, w in enumerate(centres):
        k = int(np.clip(np.searchsorted(source, w) - 1, 0, len(source) - 2))
        t = float(np.clip((w - source[k]) / (source[k + 1] - source[k]), 0, 1))
        weights[k, j], weights[k + 1, j] = 1 - t, t
    return cube @ weights


def utm_wkt(epsg: int = UTM_EPSG) -> str:
    from osgeo import osr

    s = osr.SpatialReference()
    s.ImportFromEPSG(epsg)
    return s.ExportToWkt()


# ------------------------------------------------------------------------------------ ENVI

ENVI_WAVES_UM = np.round(np.linspace(0.40, 2.50, 120), 4)


def make_envi(folder: str, scene: np.ndarray) -> str:
    """int16 BIL, reflectance x 10000, micrometre wavelengths, bbl, data ignore value, map info."""
    refl = resample(scene, ENVI_WAVES_UM * 1000)
    dn = np.round(refl * 10000).astype("<i2")
    dn[:3, :4] = -9999  # a corner of nodata
    bbl = np.ones(len(ENVI_WAVES_UM), dtype=int)
    bbl[[0, 1, 119]] = 0
    data = os.path.join(folder, "envi_scene.bil")
    dn.transpose(0, 2, 1).tofile(data)  # BIL: line, band, sample
    header = [
        "ENVI", "description = {hsi-detect sample}", f"samples = {COLS}", f"lines = {ROWS}",
        f"bands = {len(ENVI_WAVES_UM)}", "header offset = 0", "file type = ENVI Standard", "data type = 2",
        "interleave = bil", "byte order = 0",
        f"map info = {{UTM, 1.000, 1.000, {EASTING:.3f}, {NORTHING:.3f}, 30.000, 30.000, 33, North, WGS-84, units=Meters}}",
        "wavelength units = Micrometers",
        "wavelength = {" + ", ".join(f"{w:.4f}" for w in ENVI_WAVES_UM) + "}",
        "fwhm = {" + ", ".join("0.0100" for _ in ENVI_WAVES_UM) + "}",
        "bbl = {" + ", ".join(str(b) for b in bbl) + "}",
        "data ignore value = -9999", "reflectance scale factor = 10000",
    ]
    with open(os.path.join(folder, "envi_scene.hdr"), "w") as f:
        f.write("\n".join(header) + "\n")
    return os.path.join(folder, "envi_scene.hdr")


# ------------------------------------------------------------------------------------ EnMAP L2A

ENMAP_VNIR = np.round(np.linspace(418.2, 993.0, 91), 3)
ENMAP_SWIR = np.round(np.linspace(902.0, 2445.5, 133), 3)
ENMAP_WAVES = np.sort(np.concatenate([ENMAP_VNIR, ENMAP_SWIR]))
ENMAP_EMPTY = (1330.0, 1460.0)  # delivered as -32768 (the DLR processor's water bands)


def make_enmap(folder: str, scene: np.ndarray, name: str = ENMAP_NAME, cloud_box=(slice(5, 10), slice(5, 12))) -> str:
    from osgeo import gdal

    product = os.path.join(folder, name)
    os.makedirs(product, exist_ok=True)
    prefix = os.path.join(product, name)
    refl = resample(scene, ENMAP_WAVES)
    dn = np.round(refl * 10000).astype(np.int16)
    empty = (ENMAP_WAVES > ENMAP_EMPTY[0]) & (ENMAP_WAVES < ENMAP_EMPTY[1])
    dn[:, :, empty] = -32768
    dn[ROWS - 4:, :6] = -32768  # scene edge
    gt = (EASTING, 30.0, 0.0, NORTHING, 0.0, -30.0)
    ds = gdal.GetDriverByName("GTiff").Create(prefix + "-SPECTRAL_IMAGE.TIF", COLS, ROWS, len(ENMAP_WAVES),
                                              gdal.GDT_Int16, ["INTERLEAVE=BAND"])
    ds.SetGeoTransform(gt)
    ds.SetProjection(utm_wkt())
    for i in range(len(ENMAP_WAVES)):
        b = ds.GetRasterBand(i + 1)
        b.WriteArray(dn[:, :, i])
        b.SetNoDataValue(-32768)
    ds = None
    for layer in ("CLOUD", "CLOUDSHADOW", "HAZE", "SNOW", "CIRRUS"):
        mask = np.zeros((ROWS, COLS), dtype=np.uint8)
        if layer == "CLOUD":
            mask[cloud_box] = 1
        if layer == "HAZE":
            mask[30:33, 40:45] = 1
        m = gdal.GetDriverByName("GTiff").Create(f"{prefix}-QL_QUALITY_{layer}.TIF", COLS, ROWS, 1, gdal.GDT_Byte)
        m.SetGeoTransform(gt)
        m.SetProjection(utm_wkt())
        m.GetRasterBand(1).WriteArray(mask)
        m = None
    vnir = [i + 1 for i, w in enumerate(ENMAP_WAVES) if w in set(ENMAP_VNIR)]
    swir = [i + 1 for i in range(len(ENMAP_WAVES)) if i + 1 not in set(vnir)]
    fwhm = [6.5 if n in set(vnir) else 10.0 for n in range(1, len(ENMAP_WAVES) + 1)]
    bands = "\n".join(
        f'      <bandID number="{i + 1}"><wavelengthCenterOfBand>{w:.3f}</wavelengthCenterOfBand>'
        f"<FWHMOfBand>{fwhm[i]:.2f}</FWHMOfBand><GainOfBand>0.0001</GainOfBand><OffsetOfBand>0</OffsetOfBand></bandID>"
        for i, w in enumerate(ENMAP_WAVES))
    stats = "\n".join(
        f'      <bandID number="{i + 1}"><wavelength>{w:.3f}</wavelength>'
        f"<mean>{'-1000000' if empty[i] else f'{refl[:, :, i].mean() * 100:.4f}'}</mean>"
        f"<stdDeviation>{0 if empty[i] else refl[:, :, i].std() * 100:.4f}</stdDeviation></bandID>"
        for i, w in enumerate(ENMAP_WAVES))
    level = name.split("-")[1].strip("_")[:3]
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<level_X>
  <base><level>{level}</level>
    <temporalCoverage><startTime>2022-06-09T10:02:31Z</startTime><stopTime>2022-06-09T10:02:35Z</stopTime></temporalCoverage>
  </base>
  <specific>
    <vnirProductQuality><expectedChannelsList>{",".join(map(str, vnir))}</expectedChannelsList></vnirProductQuality>
    <swirProductQuality><expectedChannelsList>{",".join(map(str, swir))}</expectedChannelsList></swirProductQuality>
    <bandCharacterisation>
{bands}
    </bandCharacterisation>
  </specific>
  <product>
    <image><merge><name>{name}-SPECTRAL_IMAGE.TIF</name><dimension><rows>{ROWS}</rows><columns>{COLS}</columns></dimension>
      <channels>{len(ENMAP_WAVES)}</channels></merge></image>
    <ortho><projection>UTM_Zone33_North</projection><resolution>30</resolution></ortho>
    <bandStatistics>
{stats}
    </bandStatistics>
  </product>
</level_X>
"""
    with open(prefix + "-METADATA.XML", "w") as f:
        f.write(xml)
    return product


# ------------------------------------------------------------------------------------ PRISMA L2D

PRISMA_VNIR = np.concatenate([np.zeros(3), np.round(np.linspace(973.0, 402.0, 63), 3)])  # descending, 66 slots
PRISMA_SWIR = np.concatenate([np.round(np.linspace(2497.0, 943.0, 171), 3), np.zeros(2)])  # 173 slots
PRISMA_SCALE = {"Vnir": (0.0, 1.2), "Swir": (0.0, 0.9)}


def make_prisma(folder: str, scene: np.ndarray, name: str = PRISMA_NAME, level: str = "L2D") -> str:
    import h5py

    path = os.path.join(folder, name)
    with h5py.File(path, "w") as f:
        swath = f.create_group(f"HDFEOS/SWATHS/PRS_{level}_HCO")
        fields = swath.create_group("Data Fields")
        geo = swath.create_group("Geolocation Fields")
        edge = np.zeros((ROWS, COLS), dtype=bool)
        edge[:3, COLS - 5:] = True  # outside the scene: all DN 0
        for sensor, cw in (("Vnir", PRISMA_VNIR), ("Swir", PRISMA_SWIR)):
            lo, hi = PRISMA_SCALE[sensor]
            refl = resample(scene, np.where(cw > 0, cw, 1000.0))
            dn = np.clip(np.round((refl - lo) / (hi - lo) * 65535), 1, 65535).astype(np.uint16)
            dn[:, :, cw == 0] = 0
            dn[edge] = 0
            fields.create_dataset(f"{sensor.upper()}_Cube", data=dn.transpose(0, 2, 1))  # rows, bands, cols
            fields.create_dataset(f"{sensor.upper()}_PIXEL_L2_ERR_MATRIX",
                                  data=np.zeros((ROWS, len(cw), COLS), dtype=np.uint8))
            f.attrs[f"List_Cw_{sensor}"] = cw.astype(np.float32)
            f.attrs[f"List_Fwhm_{sensor}"] = np.where(cw > 0, 12.0, 0).astype(np.float32)
            f.attrs[f"List_Cw_{sensor}_Flags"] = (cw > 0).astype(np.uint8)
            f.attrs[f"L2Scale{sensor}Min"] = np.float32(lo)
            f.attrs[f"L2Scale{sensor}Max"] = np.float32(hi)
        geo.create_dataset("Latitude", data=np.full((ROWS, COLS), 37.0, dtype=np.float32))
        geo.create_dataset("Longitude", data=np.full((ROWS, COLS), 15.0, dtype=np.float32))
        ul_e, ul_n = EASTING + 15.0, NORTHING - 15.0  # centres of the corner pixels
        corners = {"UL": (ul_e, ul_n), "UR": (ul_e + 30 * (COLS - 1), ul_n), "LL": (ul_e, ul_n - 30 * (ROWS - 1)),
                   "LR": (ul_e + 30 * (COLS - 1), ul_n - 30 * (ROWS - 1))}
        for corner, (e, n) in corners.items():
            f.attrs[f"Product_{corner}corner_easting"] = np.float64(e)
            f.attrs[f"Product_{corner}corner_northing"] = np.float64(n)
        f.attrs["Epsg_Code"] = np.int32(UTM_EPSG)
        f.attrs["Projection_Id"] = np.bytes_("33")
        f.attrs["Projection_Name"] = np.bytes_("UTM")
        f.attrs["Processing_Level"] = np.bytes_(level[1:])
        f.create_group("HDFEOS INFORMATION").create_dataset("StructMetadata.0", data=np.bytes_("GROUP=SwathStructure"))
    return path


# ------------------------------------------------------------------------------------ EMIT L2A

EMIT_WAVES = np.round(np.linspace(381.006, 2492.924, 285), 3)
EMIT_LINES, EMIT_SAMPLES = 36, 44  # the swath
EMIT_ORTHO = (46, 54)  # the GLT grid (ortho_y, ortho_x)
EMIT_GT = (15.0, 0.000542, 0.0, 37.0, 0.0, -0.000542)
EMIT_ANGLE = np.deg2rad(20.0)


def emit_glt() -> tuple:
    """glt_x, glt_y (1-based sample, line; 0 = none) of a swath rotated by 20 degrees on the grid."""
    r, c = np.mgrid[0:EMIT_ORTHO[0], 0:EMIT_ORTHO[1]].astype(float)
    dr, dc = r - (EMIT_ORTHO[0] - 1) / 2, c - (EMIT_ORTHO[1] - 1) / 2
    line = np.round(np.cos(EMIT_ANGLE) * dr - np.sin(EMIT_ANGLE) * dc + (EMIT_LINES - 1) / 2).astype(int)
    sample = np.round(np.sin(EMIT_ANGLE) * dr + np.cos(EMIT_ANGLE) * dc + (EMIT_SAMPLES - 1) / 2).astype(int)
    inside = (line >= 0) & (line < EMIT_LINES) & (sample >= 0) & (sample < EMIT_SAMPLES)
    return np.where(inside, sample + 1, 0).astype(np.int32), np.where(inside, line + 1, 0).astype(np.int32)


def make_emit(folder: str, scene: np.ndarray, name: str = EMIT_NAME, variable: str = "reflectance") -> str:
    import h5py
    from osgeo import osr

    path = os.path.join(folder, name)
    refl = resample(scene[:EMIT_LINES, :EMIT_SAMPLES], EMIT_WAVES).astype(np.float32)
    good = ~(((EMIT_WAVES > 1325) & (EMIT_WAVES < 1435)) | ((EMIT_WAVES > 1770) & (EMIT_WAVES < 1962)))
    refl[:, :, ~good] = -0.01
    refl[0, :5] = -9999.0  # fill
    glt_x, glt_y = emit_glt()
    wgs84 = osr.SpatialReference()
    wgs84.ImportFromEPSG(4326)
    with h5py.File(path, "w") as f:
        f.create_dataset(variable, data=refl, fillvalue=np.float32(-9999))
        f[variable].attrs["_FillValue"] = np.float32(-9999)
        sbp = f.create_group("sensor_band_parameters")
        sbp.create_dataset("wavelengths", data=EMIT_WAVES.astype(np.float32))
        sbp.create_dataset("fwhm", data=np.full(285, 8.5, dtype=np.float32))
        sbp.create_dataset("good_wavelengths", data=good.astype(np.uint8))
        loc = f.create_group("location")
        loc.create_dataset("glt_x", data=glt_x, compression="gzip", compression_opts=9)
        loc.create_dataset("glt_y", data=glt_y, compression="gzip", compression_opts=9)
        for var, value in (("lat", 37.0), ("lon", 15.0), ("elev", 100.0)):
            loc.create_dataset(var, data=np.full((EMIT_LINES, EMIT_SAMPLES), value))
        f.attrs["geotransform"] = np.array(EMIT_GT, dtype=np.float64)
        f.attrs["spatial_ref"] = np.bytes_(wgs84.ExportToWkt())
        f.attrs["title"] = np.bytes_("EMIT L2A Estimated Surface Reflectance 60 m V001")
        f.attrs["sensor"] = np.bytes_("EMIT (Earth Surface Mineral Dust Source Investigation)")
        f.attrs["westernmost_longitude"] = EMIT_GT[0]
        f.attrs["northernmost_latitude"] = EMIT_GT[3]
    return path


def make_all(folder: str, scene_path: str = "") -> dict:
    scene = load_scene(scene_path)
    os.makedirs(folder, exist_ok=True)
    return {"envi": make_envi(folder, scene), "enmap": make_enmap(folder, scene),
            "prisma": make_prisma(folder, scene), "emit": make_emit(folder, scene)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="folder to write the products to")
    p.add_argument("--scene", default="", help="an .npz with 'cube' (rows, cols, bands) (default: ABU urban-1)")
    args = p.parse_args(argv)
    for kind, path in make_all(args.out, args.scene).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
