"""The base of every algorithm: declare parameters, build the engine's command line, run it.

All computation happens in the engine's child process (engine_runner). An algorithm
subclass names its engine command and method, its parameters and its help text.
"""

import os

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException,
                       QgsProcessingParameterBoolean, QgsProcessingParameterDefinition, QgsProcessingParameterEnum,
                       QgsProcessingParameterFile, QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString, QgsProcessingParameterVectorDestination)
from qgis.PyQt.QtGui import QIcon

from ..engine_runner import Engine
from ..input_files import raster_file
from ..output_styles import style_on_load
from ..qgis_compat import (NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED, PARAMETER_OPTIONAL, SOURCE_POLYGONS,
                           with_flag)
from .method_parameters import arguments, definition

ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.svg")
DEVICE_HINTS = ["auto", "cpu", "cuda", "cuda:0", "cuda:1"]

MODEL_FILTER = "hsi-detect model (*.safetensors)"
README_URL = "https://github.com/hsi-detect/hsi-detect/blob/main/README.md"
PRODUCT_FILTER = ("Hyperspectral products (*.he5 *.nc *.hdr *.xml *.XML *.tif *.TIF *.bsq *.bil *.bip *.img *.dat);;"
                  "All files (*.*)")
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

    def helpUrl(self):
        """The README's section on this algorithm (its heading is the algorithm's title)."""
        anchor = "".join(c for c in self.TITLE.lower() if c.isalnum() or c in " -").replace(" ", "-")
        return f"{README_URL}#{anchor}"

    def icon(self):
        return QIcon(ICON)

    def svgIconPath(self):
        return ICON

    def createInstance(self):
        return type(self)()

    def processAlgorithm(self, parameters, context, feedback):
        engine = Engine.find(self.engine_modules())
        arguments, outputs = self.engine_arguments(parameters, context, feedback)
        result = engine.run(self.COMMAND, arguments, feedback)
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
            with_flag(parameter, PARAMETER_ADVANCED)
        self.addParameter(parameter)

    def add_bands(self):
        self.add(QgsProcessingParameterString("BANDS", "Bands (e.g. 1-50,60,70-120; empty: all)", optional=True),
                 "Band numbers to use, as QGIS numbers them (1 is the first band): single numbers and ranges "
                 "separated by commas, such as 1-50,60,70-120. Leave empty for all bands; leaving out noisy or "
                 "water-absorption bands often helps.")

    def add_image(self, name: str, description: str, help_text: str):
        """An image as a loaded layer (``name``) or as a file path (``name``_FILE): exactly one is given.

        The file alternative takes what QGIS cannot load as one layer: a PRISMA L2D .he5, an EMIT
        L2A .nc, an EnMAP L2A METADATA.XML, an ENVI .hdr.
        """
        # Both are optional to QGIS, so the labels say that one of the two is needed.
        self.add(QgsProcessingParameterRasterLayer(name, f"{description} (a layer, or a file below)", optional=True),
                 help_text + " Give it as a layer here or as a file in the next parameter.")
        self.add(QgsProcessingParameterFile(f"{name}_FILE", f"{description} as a file (sensor products: .he5, .nc, "
                                            "METADATA.XML, .hdr)",
                                            fileFilter=PRODUCT_FILTER, optional=True),
                 f"Instead of {name}: the file of a sensor product as downloaded, read with its wavelengths and "
                 "band flags: PRISMA L2D (.he5), EMIT L2A reflectance (.nc, orthorectified with its GLT), EnMAP "
                 "L2A (METADATA.XML or SPECTRAL_IMAGE), ENVI (.hdr or data file), or any raster GDAL reads.")

    def image_file(self, parameters, name: str, label: str, context, feedback) -> str:
        given_layer = parameters.get(name) not in (None, "")
        path = self.parameterAsFile(parameters, f"{name}_FILE", context) if parameters.get(f"{name}_FILE") else ""
        if given_layer == bool(path):
            raise QgsProcessingException(
                f"{label}: give either a layer ({name}) or a file ({name}_FILE), {'not both' if path else 'one of them'}.")
        return path or self.input_file(parameters, name, label, context, feedback)

    def add_wavelength_choice(self):
        self.add(QgsProcessingParameterString("WAVELENGTHS", "Wavelength ranges in nm (default: all)",
                                              optional=True),
                 "Bands to use by wavelength, e.g. 400-1340,1460-1790,1960-2450 (nanometres), for images that "
                 "carry wavelengths (sensor products, ENVI, GeoTIFFs with wavelength metadata). Combines with "
                 "the band numbers above.")
        self.add(QgsProcessingParameterEnum("BAD_BANDS", "Bad bands", options=["drop", "keep"], defaultValue="drop",
                                            usesStaticStrings=True),
                 "drop: leave out the bands the product flags bad (ENVI bbl, EMIT good_wavelengths, EnMAP's empty "
                 "and overlapping bands) and, when wavelengths are known, the water-vapour absorption windows "
                 "1340-1460 and 1790-1960 nm; keep: use them. The log lists what was dropped.", advanced=True)
        self.add(QgsProcessingParameterBoolean("MASK_CLOUDS", "EnMAP: mask clouds, cloud shadows and haze",
                                               defaultValue=False),
                 "For an EnMAP L2A product: pixels its quality layers flag as cloud, cloud shadow or haze are "
                 "left out (nodata in the outputs).", advanced=True)

    def wavelength_arguments(self, parameters, context) -> list:
        args = ["--bad-bands", self.parameterAsEnumString(parameters, "BAD_BANDS", context) or "drop"]
        ranges = (self.parameterAsString(parameters, "WAVELENGTHS", context) or "").strip()
        if ranges:
            args += ["--wavelengths", ranges]
        if self.parameterAsBool(parameters, "MASK_CLOUDS", context):
            args.append("--mask-clouds")
        return args

    def add_threshold(self, what: str, engine, default: str):
        """THRESHOLD_METHOD with the engine's threshold methods (``engine``: its parameters.py) and
        ``default``, then the numbers they need."""
        self.add(QgsProcessingParameterEnum("THRESHOLD_METHOD", "Threshold for the binary map",
                                            options=list(engine.THRESHOLDS), defaultValue=default,
                                            usesStaticStrings=True),
                 f"How the score is cut into {what} and background (default: {default}): {engine.THRESHOLD_HELP}; "
                 "false-alarm uses FALSE_ALARM_RATE, value THRESHOLD_VALUE, fraction TOP_FRACTION.", advanced=True)
        rate = engine.FALSE_ALARM_RATE
        rate_parameter = definition(rate)
        rate_parameter.setDefaultValue(engine.default_false_alarm_rate(self.METHOD))
        self.add(rate_parameter, rate.help, advanced=default != "false-alarm")
        self.add(QgsProcessingParameterNumber("THRESHOLD_VALUE", "Threshold value (method 'value')",
                                              NUMBER_DOUBLE, optional=True),
                 "Score above which a pixel is marked, with the threshold method 'value'.", advanced=True)
        self.add(QgsProcessingParameterNumber("TOP_FRACTION", "Fraction of pixels to mark (method 'fraction')",
                                              NUMBER_DOUBLE, optional=True, minValue=0,
                                              maxValue=1),
                 "Share of the valid pixels (0 to 1) marked, with the threshold method 'fraction'.", advanced=True)

    def add_network_run(self, method_parameters, seed):
        """The detector's own parameters (engine Param entries), then DEVICE, SEED and TRAINED_MODEL."""
        for p in method_parameters:
            self.addParameter(definition(p))
        device = QgsProcessingParameterString("DEVICE", "Device", defaultValue="auto")
        device.setMetadata({"widget_wrapper": {"value_hints": DEVICE_HINTS}})
        self.add(device,
                 "Where the network runs: auto (a CUDA GPU when the engine's torch sees one, else the CPU), "
                 "cpu, cuda, or cuda:N for the N-th GPU.")
        self.add(QgsProcessingParameterNumber("SEED", seed.label, NUMBER_INTEGER,
                                              defaultValue=seed.default, minValue=seed.minimum, maxValue=seed.maximum),
                 seed.help, advanced=True)
        self.add(QgsProcessingParameterFile("TRAINED_MODEL", "Trained model (skips training)",
                                            fileFilter=MODEL_FILTER, optional=True),
                 "A model saved by an earlier run (SAVE_MODEL). It is applied to the image instead of training a "
                 "new one; the band count must match.")

    def add_memory_limit(self, engine):
        """MEMORY_LIMIT, declared by the engine (``engine``: its parameters.py)."""
        p = engine.MEMORY_LIMIT
        self.add(QgsProcessingParameterString(p.name.upper(), p.label, optional=True), p.help, advanced=p.advanced)

    def memory_limit_arguments(self, parameters, context) -> list:
        """--memory-limit with the typed size, passed on as it is: the engine checks it."""
        limit = (self.parameterAsString(parameters, "MEMORY_LIMIT", context) or "").strip()
        return ["--memory-limit", limit] if limit else []

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
        self.add(QgsProcessingParameterVectorDestination(name, description, SOURCE_POLYGONS,
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
        """The typed list, passed on as it is: the engine checks it against the image's band count.
        A list of values (a script's [1, 2, 3], or BANDS=1 BANDS=2 in qgis_process) is joined with commas."""
        value = parameters.get("BANDS")
        if isinstance(value, (list, tuple)):
            bands = ",".join(str(v).strip() for v in value)
        else:
            bands = self.parameterAsString(parameters, "BANDS", context).strip()
        return ["--bands", bands] if bands else []

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
            args += arguments(p, self, parameters, context)
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
                self.parameterDefinition(name).flags() & PARAMETER_OPTIONAL:
            return ""
        return self.parameterAsOutputLayer(parameters, name, context) or ""
