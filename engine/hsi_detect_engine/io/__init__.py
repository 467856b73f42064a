"""Input and output: image types, paths, band lists, GDAL and research-file readers,
date pairs, the grid walker, the GeoTIFF writer, QGIS styles and model files."""
