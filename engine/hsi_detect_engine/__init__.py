"""hsi_detect_engine: self-supervised hyperspectral change and anomaly detection.

The engine is plain Python (numpy, GDAL, torch). It never imports QGIS: the QGIS plugin
runs it in a child process through the ``hsi-detect`` command.
"""

__version__ = "0.1.0"
