"""The base of every algorithm: declare parameters, build the engine's command line, run it.

All computation happens in the engine's child process (engine_runner). An algorithm
subclass names its engine command and method, its parameters and its help text.
"""

import os

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingParameterBand,
                       QgsProcessingParameterDefinition, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterString,
                       QgsProcessingParameterVectorDestination)
from qgis.PyQt.QtGui import QIcon

from ..engine_runner import Engine
from ..input_files import raster_file
from ..output_styles import style_on_load

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.svg")
DEVICE_HINTS = ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]

THRESHOLD_METHODS = ("false-alarm", "otsu", "kmeans", "min-error", "value", "fraction")
MODEL_FILTER = "hsi-detect model (*.safetensors)"
NETWORK_MODULES = ("torch", "safetensors")


class EngineAlgorithm(QgsProcessingAlgorithm):
    ALGORITHM_ID = ""
    TITLE = ""
    GROUP_ID = ""
    GROUP = ""
    COMMAND = ""  # engine subcommand: anomaly, change or evaluate
    HELP = ""  # plain text, paragraphs separated by blank lines

    def name(self):
        return self.ALGORITHM_ID

    def displayName(self):
        return self.TITLE

    def group(self):
        return self.GROUP

    def groupId(self):
        return self.GROUP_ID

    def shortHelpString(self):
        return self.HELP

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):
        return ICON

    def createInstance(self):
        return type(self)()

    def processAlgorithm(self, parameters, context, feedback):
        engine = Engine.find(self.engine_modules())
        arguments, outputs = self.engine_arguments(parameters, context, feedback)
        result = engine.run(self.COMMAND, arguments, feedback, list(outputs.values()))
        return self.results(result, outputs, context)

    def engine_modules(self) -> tuple:
        """Modules this algorithm needs in the engine's Python besides numpy and GDAL."""
        return ()

    def engine_arguments(self, parameters, context, feedback) -> tuple:
        """(engine arguments, {output name: file path or ''})."""
        raise NotImplementedError

    def results(self, result: dict, outputs: dict, context) -> dict:
        for path in outputs.values():
            if path.lower().endswith((".tif", ".tiff", ".gpkg")):
                style_on_load(path, context)
        return {name: path or None for name, path in outputs.items()}

    # ------------------------------------------------------------------ declaring parameters

    def add(self, parameter: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False):
        parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def add_bands(self, parent: str):
        self.add(QgsProcessingParameterBand("BANDS", "Bands (default: all)", None, parent, optional=True,
                                            allowMultiple=True),
                 "Band numbers to use, as QGIS numbers them (1 is the first band). Leave empty for all bands; "
                 "leaving out noisy or water-absorption bands often helps.")

    def add_threshold(self, what: str, default: str):
        self.add(QgsProcessingParameterEnum("THRESHOLD_METHOD", "Threshold for the binary map",
                                            options=list(THRESHOLD_METHODS), defaultValue=default,
                                            usesStaticStrings=True),
                 f"How the score is cut into {what} and background (default: {default}): false-alarm (a model of "
                 "the background fitted to the bulk of the scores, cut at FALSE_ALARM_RATE; made for a small "
                 "anomalous tail), otsu, kmeans (two clusters), min-error (Kittler-Illingworth minimum error), "
                 "value (THRESHOLD_VALUE) or fraction (the TOP_FRACTION highest-scoring pixels).",
                 advanced=True)
        self.add(QgsProcessingParameterNumber("FALSE_ALARM_RATE", "Expected false-alarm rate (method 'false-alarm')",
                                              QgsProcessingParameterNumber.Double, defaultValue=0.003,
                                              minValue=0.000001, maxValue=0.5),
                 "Expected share of background pixels marked, with the threshold method 'false-alarm': lower marks "
                 "fewer pixels (0.003: about 3 in 1000 background pixels).", advanced=default != "false-alarm")
        self.add(QgsProcessingParameterNumber("THRESHOLD_VALUE", "Threshold value (method 'value')",
                                              QgsProcessingParameterNumber.Double, optional=True),
                 "Score above which a pixel is marked, with the threshold method 'value'.", advanced=True)
        self.add(QgsProcessingParameterNumber("TOP_FRACTION", "Fraction of pixels to mark (method 'fraction')",
                                              QgsProcessingParameterNumber.Double, optional=True, minValue=0,
                                              maxValue=1),
                 "Share of the valid pixels (0 to 1) marked, with the threshold method 'fraction'.", advanced=True)

    def add_network_run(self, method_parameters):
        """The detector's own parameters, then DEVICE, SEED and TRAINED_MODEL."""
        for p in method_parameters:
            self.addParameter(p.definition())
        device = QgsProcessingParameterString("DEVICE", "Device", defaultValue="auto")
        device.setMetadata({"widget_wrapper": {"value_hints": DEVICE_HINTS}})
        self.add(device,
                 "Where the network runs: auto (a CUDA GPU when the engine's torch sees one, else the CPU), "
                 "cpu, cuda, or cuda:N for the N-th GPU.")
        self.add(QgsProcessingParameterNumber("SEED", "Random seed", QgsProcessingParameterNumber.Integer,
                                              defaultValue=1),
                 "Seed of the random numbers (weights, sampling): the same seed on the same device gives the "
                 "same result.", advanced=True)
        self.add(QgsProcessingParameterFile("TRAINED_MODEL", "Trained model (skips training)",
                                            fileFilter=MODEL_FILTER, optional=True),
                 "A model saved by an earlier run (SAVE_MODEL). It is applied to the image instead of training a "
                 "new one; the band count must match.")

    def add_save_model(self):
        self.add(QgsProcessingParameterFileDestination("SAVE_MODEL", "Save the trained model", MODEL_FILTER,
                                                       optional=True, createByDefault=False),
                 "Write the trained network to this file, to apply it later (TRAINED_MODEL) without training.")

    def add_raster_output(self, name: str, description: str, help_text: str, optional: bool = False):
        """Every map is created unless the user skips it (``optional`` ones can be skipped): a
        temporary file by default, in the dialog as from processing.run and qgis_process."""
        self.add(QgsProcessingParameterRasterDestination(name, description, QgsProcessing.TEMPORARY_OUTPUT,
                                                         optional=optional, createByDefault=True), help_text)

    def add_objects_output(self, name: str, description: str, help_text: str):
        self.add(QgsProcessingParameterVectorDestination(name, description, QgsProcessing.TypeVectorPolygon,
                                                         QgsProcessing.TEMPORARY_OUTPUT, optional=True,
                                                         createByDefault=True), help_text)

    # ------------------------------------------------------------------ reading parameters

    def input_file(self, parameters, name: str, label: str, context, feedback) -> str:
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, name))
        return raster_file(layer, label, context, feedback)

    def optional_input_file(self, parameters, name: str, label: str, context, feedback) -> str:
        if parameters.get(name) in (None, ""):
            return ""
        return self.input_file(parameters, name, label, context, feedback)

    def bands_arguments(self, parameters, context) -> list:
        bands = self.parameterAsInts(parameters, "BANDS", context)
        return ["--bands", ",".join(str(b) for b in bands)] if bands else []

    def threshold_arguments(self, parameters, context) -> list:
        args = ["--threshold", self.parameterAsEnumString(parameters, "THRESHOLD_METHOD", context)]
        for name, flag in (("THRESHOLD_VALUE", "--threshold-value"), ("TOP_FRACTION", "--top-fraction"),
                           ("FALSE_ALARM_RATE", "--false-alarm-rate")):
            if parameters.get(name) not in (None, ""):
                args += [flag, repr(self.parameterAsDouble(parameters, name, context))]
        return args

    def network_arguments(self, parameters, context, method_parameters) -> list:
        args = []
        for p in method_parameters:
            args += p.arguments(self, parameters, context)
        args += ["--device", self.parameterAsString(parameters, "DEVICE", context).strip() or "auto",
                 "--seed", str(self.parameterAsInt(parameters, "SEED", context))]
        model = self.parameterAsFile(parameters, "TRAINED_MODEL", context)
        if model:
            args += ["--model", model]
        return args

    def output_path(self, parameters, name: str, context) -> str:
        """The file to write, '' for an output that is skipped: SAVE_MODEL unless given, and an
        optional map given as None or '' (the dialog's 'Skip output'); a map not given at all
        takes its default, a temporary file."""
        if name == "SAVE_MODEL":
            return self.parameterAsFileOutput(parameters, name, context) or ""
        if name in parameters and parameters[name] in (None, "") and \
                self.parameterDefinition(name).flags() & QgsProcessingParameterDefinition.FlagOptional:
            return ""
        return self.parameterAsOutputLayer(parameters, name, context) or ""
