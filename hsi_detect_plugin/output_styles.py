"""Styling the outputs that Processing loads into the map, from the .qml the engine writes beside each file.

Processing loads result rasters without their default style, so each one gets a
post-processor that applies its .qml. Processing keeps only a pointer to a post-processor
and calls it after the algorithm's own instance is gone, so they are kept here, one per
style file, for the life of the session.
"""

import os

from qgis.core import QgsProcessingLayerPostProcessorInterface

_kept = {}


class ApplyQml(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, qml: str):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):
        if layer is None or not os.path.isfile(self.qml):
            return
        message, ok = layer.loadNamedStyle(self.qml)
        if not ok:
            feedback.reportError(f"Could not apply the style {self.qml}: {message}")
        layer.triggerRepaint()


def style_on_load(path: str, context):
    """If Processing will load the raster ``path`` when the run ends, have it styled from its .qml."""
    if not path or not context.willLoadLayerOnCompletion(path):
        return
    qml = os.path.splitext(path)[0] + ".qml"
    if qml not in _kept:
        _kept[qml] = ApplyQml(qml)
    context.layerToLoadOnCompletionDetails(path).setPostProcessor(_kept[qml])
