"""The Processing provider `hsidetect` ("Hyperspectral Detection")."""

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from . import settings
from .algorithms import ALGORITHMS

ICON = os.path.join(os.path.dirname(__file__), "icon.svg")


class HsiDetectProvider(QgsProcessingProvider):
    def id(self):
        return "hsidetect"

    def name(self):
        return "Hyperspectral Detection"

    def longName(self):
        return "Hyperspectral Detection (HyperNet, BS3LNet, CVA, RX)"

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):
        return ICON

    def load(self):
        settings.register(self.name(), self.icon())
        self.refreshAlgorithms()
        return True

    def unload(self):
        settings.unregister()

    def loadAlgorithms(self):
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self):
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self):
        return ["gpkg"]
