"""The QGIS plugin: registers the Processing provider; adds nothing else to the GUI."""

from qgis.core import QgsApplication

from .provider import HsiDetectProvider


class HsiDetectPlugin:
    def __init__(self, iface):
        self.iface = iface  # None under qgis_process
        self.provider = None

    def initProcessing(self):
        if self.provider is None:
            self.provider = HsiDetectProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self):
        self.initProcessing()

    def unload(self):
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
