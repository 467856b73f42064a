"""QGIS layer styles (.qml) written beside each output, as plain XML (no QGIS needed).

QGIS loads a .qml that shares the raster's base name as the layer's default style, so a
score map opens with a colour ramp stretched over the 2nd to 98th percentile of its valid scores
(brighter values take the ramp's last colour), a binary map with
the detected class in red and the background transparent, and a layer of detected objects
outlined in red and labelled by rank.
"""

from __future__ import annotations

import os
from xml.sax.saxutils import escape

# Magma-like ramp, dark (low score) to light (high score).
_RAMP = [(0.0, "#000004"), (0.25, "#51127c"), (0.5, "#b73779"), (0.75, "#fc8961"), (1.0, "#fcfdbf")]

_HEAD = '<!DOCTYPE qgis PUBLIC \'http://mrcc.com/qgis.dtd\' \'SYSTEM\'>\n<qgis version="3.22" styleCategories="AllStyleCategories">\n'


def qml_path(raster_path: str) -> str:
    return os.path.splitext(raster_path)[0] + ".qml"


def score_qml(minimum: float, maximum: float, label: str = "score") -> str:
    if not maximum > minimum:
        maximum = minimum + 1.0
    items = []
    for frac, colour in _RAMP:
        value = minimum + frac * (maximum - minimum)
        items.append(f'            <item alpha="255" value="{value:.8g}" color="{colour}" label="{value:.4g}"/>')
    stops = ":".join(f"{f:g};{_rgba(c)}" for f, c in _RAMP[1:-1])
    return (_HEAD + f"""  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" classificationMin="{minimum:.8g}" classificationMax="{maximum:.8g}" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin><limits>CumulativeCut</limits><extent>WholeRaster</extent><statAccuracy>Exact</statAccuracy><cumulativeCutLower>0.02</cumulativeCutLower><cumulativeCutUpper>0.98</cumulativeCutUpper><stdDevFactor>2</stdDevFactor></minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="2" clip="0" minimumValue="{minimum:.8g}" maximumValue="{maximum:.8g}" labelPrecision="4">
          <colorramp type="gradient" name="[source]">
            <Option type="Map">
              <Option type="QString" name="color1" value="{_rgba(_RAMP[0][1])}"/>
              <Option type="QString" name="color2" value="{_rgba(_RAMP[-1][1])}"/>
              <Option type="QString" name="discrete" value="0"/>
              <Option type="QString" name="rampType" value="gradient"/>
              <Option type="QString" name="stops" value="{stops}"/>
            </Option>
          </colorramp>
{chr(10).join(items)}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
  <layerGeometryType>-1</layerGeometryType>
  <!-- {escape(label)} -->
</qgis>
""")


def binary_qml(positive_label: str = "detected") -> str:
    return (_HEAD + f"""  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin><limits>None</limits><extent>WholeRaster</extent><statAccuracy>Estimated</statAccuracy><cumulativeCutLower>0.02</cumulativeCutLower><cumulativeCutUpper>0.98</cumulativeCutUpper><stdDevFactor>2</stdDevFactor></minMaxOrigin>
      <colorPalette>
        <paletteEntry value="0" color="#ffffff" alpha="0" label="background"/>
        <paletteEntry value="1" color="#e31a1c" alpha="255" label="{escape(positive_label)}"/>
      </colorPalette>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
  <layerGeometryType>-1</layerGeometryType>
</qgis>
""")


def _rgba(hex_colour: str) -> str:
    h = hex_colour.lstrip("#")
    return ",".join(str(int(h[i:i + 2], 16)) for i in (0, 2, 4)) + ",255"


def write_qml(raster_path: str, text: str, path: str = None) -> str:
    """Write the style of ``raster_path`` to ``path`` (default: beside the raster, same base name)."""
    path = path or qml_path(raster_path)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def objects_qml(colour: str = "#e31a1c") -> str:
    """Polygons outlined in ``colour`` with no fill, labelled by their rank (1 = highest peak score)."""
    rgba = _rgba(colour)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology|Labeling" labelsEnabled="1">
  <renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">
    <symbols>
      <symbol type="fill" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <Option type="Map">
            <Option type="QString" name="color" value="255,255,255,0"/>
            <Option type="QString" name="style" value="no"/>
            <Option type="QString" name="outline_color" value="{rgba}"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_width" value="0.6"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="miter"/>
          </Option>
        </layer>
      </symbol>
    </symbols>
  </renderer-v2>
  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="rank" isExpression="0" fontSize="9" fontSizeUnit="Point" fontWeight="75" textColor="{rgba}" textOpacity="1">
        <text-buffer bufferDraw="1" bufferSize="0.8" bufferSizeUnits="MM" bufferColor="255,255,255,255" bufferOpacity="1" bufferNoFill="1" bufferJoinStyle="128"/>
      </text-style>
      <placement placement="1" offsetType="0" dist="0" fitInPolygonOnly="0" centroidWhole="0" centroidInside="0" priority="5"/>
      <rendering drawLabels="1" obstacle="0" displayAll="1" labelPerPart="0" scaleVisibility="0"/>
    </settings>
  </labeling>
  <layerGeometryType>2</layerGeometryType>
</qgis>
"""
