"""hsi_detect_plugin: hyperspectral change and anomaly detection (HyperNet, BS3LNet) for QGIS Processing.

The algorithms run the hsi-detect engine in a separate Python process; this package never
imports torch or the engine.
"""


def classFactory(iface):
    from .plugin import HsiDetectPlugin

    return HsiDetectPlugin(iface)
