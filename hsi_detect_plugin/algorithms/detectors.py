"""The two kinds of detector: anomaly (one image) and change (two dates).

A concrete algorithm names its engine method; a network's own parameters come from the
engine's declaration (method_parameters); inputs, outputs and the engine command line are
shared here.
"""

from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer

from ..qgis_compat import NUMBER_INTEGER
from .base import NETWORK_MODULES, EngineAlgorithm
from .method_parameters import declaration, method_parameters


class Detector(EngineAlgorithm):
    METHOD = ""  # the engine's --method
    METHOD_LABEL = ""  # the method's name in the result layers' names: "Anomaly score (RX)"
    NETWORK = False  # a trained network: adds its parameters, DEVICE, SEED, TRAINED_MODEL, SAVE_MODEL

    def method_parameters(self) -> tuple:
        """The engine's declaration of the network's own parameters (Param entries)."""
        return method_parameters(self.METHOD) if self.NETWORK else ()

    def engine_modules(self):
        """A network needs torch and its engine module to import in the engine's Python."""
        return NETWORK_MODULES + (f"hsi_detect_engine.{self.METHOD}",) if self.NETWORK else ()

    def add_min_object_size(self):
        self.add(QgsProcessingParameterNumber("MIN_OBJECT_SIZE", "Smallest object (pixels)", NUMBER_INTEGER,
                                              defaultValue=1, minValue=1),
                 "Regions of the binary map with fewer pixels are left out of the objects layer.", advanced=True)

    def objects_arguments(self, parameters, path: str, context) -> list:
        if not path:
            return []
        return ["--objects", path,
                "--min-object-size", str(self.parameterAsInt(parameters, "MIN_OBJECT_SIZE", context))]

    def shared_arguments(self, parameters, context, outputs: dict) -> list:
        """What both kinds of detector pass on besides their inputs and main maps: the binary map,
        the objects layer, the common options and, for a network, the model to save (added to
        ``outputs``)."""
        args = ["--binary", outputs["OUTPUT_BINARY"]] if outputs["OUTPUT_BINARY"] else []
        args += self.objects_arguments(parameters, outputs["OUTPUT_OBJECTS"], context)
        args += self.common_arguments(parameters, context)
        if self.NETWORK:
            outputs["SAVE_MODEL"] = self.output_path(parameters, "SAVE_MODEL", context)
            if outputs["SAVE_MODEL"]:
                args += ["--save-model", outputs["SAVE_MODEL"]]
        return args

    def common_arguments(self, parameters, context) -> list:
        args = ["--method", self.METHOD] + self.bands_arguments(parameters, context)
        args += self.wavelength_arguments(parameters, context)
        args += self.threshold_arguments(parameters, context)
        args += self.memory_limit_arguments(parameters, context)
        if self.NETWORK:
            args += self.network_arguments(parameters, context, self.method_parameters())
        return args


# The anomaly detectors' binary map and objects, described once for both algorithms' help.
ANOMALY_OUTPUTS_HELP = ("Binary anomaly map (OUTPUT_BINARY): 1 anomaly, 0 background, the score cut at the threshold "
                        "(by default the hysteresis rule: a model of the background fitted to the bulk of the scores "
                        "gives the cut where it expects a third of FALSE_ALARM_RATE (0.003; BS3LNet 0.001) of the "
                        "background pixels; "
                        "the pixels above it seed regions grown through the neighbouring pixels above a looser cut, at "
                        "three times the rate, and a region covering more than 2 % of the scene is dropped as "
                        "background. Raise FALSE_ALARM_RATE for more detections, lower it for fewer and surer ones. On "
                        "19 benchmark scenes its F1 was above that of one cut of the model (the method false-alarm) "
                        "and well above Otsu's, bench/results/studies/anomaly_thresholds.md).\n"
                        "Detected objects (OUTPUT_OBJECTS): the binary map's connected regions as polygons in a "
                        "GeoPackage, ranked by peak score (1 = most anomalous), with pixel count, area, peak and mean "
                        "score and the map coordinates of the peak and the centroid; it opens outlined and labelled by "
                        "rank.")


class AnomalyDetector(Detector):
    COMMAND = "anomaly"
    GROUP_ID = "anomaly"
    GROUP = "Anomaly detection"

    def initAlgorithm(self, config=None):
        self.add_image("INPUT", "Hyperspectral image",
                       "The image to search for anomalies: any raster with three or more bands.")
        self.add_bands()
        self.add_wavelength_choice()
        engine = declaration()  # None when the engine's source is missing: a run then says how to reinstall
        if self.NETWORK and engine:
            self.add_network_run(self.method_parameters(), engine.SEED)
        if engine:
            self.add_threshold("anomalies", engine, engine.ANOMALY_THRESHOLD)
            self.add_memory_limit(engine)
        self.add_min_object_size()
        m = self.METHOD_LABEL
        self.add_raster_output("OUTPUT", f"Anomaly score ({m})",
                               "Anomaly score per pixel, 0 (background) to 1 (most anomalous); nodata where "
                               "the input had none valid.")
        self.add_raster_output("OUTPUT_BINARY", f"Binary anomaly map ({m})",
                               "1 anomaly, 0 background, 255 nodata: the score cut at the threshold.",
                               optional=True)
        self.add_objects_output("OUTPUT_OBJECTS", f"Detected objects ({m})",
                                "The binary map's 8-connected regions as polygons (GeoPackage), each with its rank by "
                                "peak score (1 = most anomalous), pixel count, area in map units, peak and mean "
                                "score and the map coordinates of its peak and centroid: a list of targets to visit.")
        if self.NETWORK:
            self.add_save_model()

    def engine_arguments(self, parameters, context, feedback):
        outputs = {name: self.output_path(parameters, name, context)
                   for name in ("OUTPUT", "OUTPUT_BINARY", "OUTPUT_OBJECTS")}
        args = [self.image_file(parameters, "INPUT", "Hyperspectral image", context, feedback),
                "--output", outputs["OUTPUT"]]
        return args + self.shared_arguments(parameters, context, outputs), outputs


class ChangeDetector(Detector):
    COMMAND = "change"
    GROUP_ID = "change"
    GROUP = "Change detection"

    def initAlgorithm(self, config=None):
        self.add_image("INPUT_T1", "Image, first date", "The earlier image: any raster with three or more bands.")
        self.add_image("INPUT_T2", "Image, second date",
                       "The later image, with the same bands as the first. When its grid differs it is resampled "
                       "onto the first date's grid (see GRID).")
        self.add_bands()
        self.add_wavelength_choice()
        engine = declaration()  # None when the engine's source is missing: a run then says how to reinstall
        if self.NETWORK:
            self.add(QgsProcessingParameterRasterLayer("TRAINING_MASK", "Unchanged pixels to train on",
                                                       optional=True),
                     "Optional raster on the first date's grid whose non-zero pixels are known to be unchanged; "
                     "the network trains on them. Default: chosen automatically by a change-vector pre-detection.")
            if engine:
                self.add_network_run(self.method_parameters(), engine.SEED)
        self.add(QgsProcessingParameterEnum("GRID", "When the dates' grids differ", options=["resample", "refuse"],
                                            defaultValue="resample", usesStaticStrings=True),
                 "resample: warp the second date onto the first date's grid (bilinear); refuse: stop with a "
                 "message.", advanced=True)
        if engine:
            self.add_threshold("changed", engine, engine.CHANGE_THRESHOLD)
            self.add_memory_limit(engine)
        self.add_min_object_size()
        m = self.METHOD_LABEL
        self.add_raster_output("OUTPUT", f"Change magnitude ({m})",
                               "How much each pixel changed between the dates (larger means more change); nodata "
                               "where either date had none valid.")
        self.add_raster_output("OUTPUT_ANOMALOUS", f"Anomalous change score ({m})",
                               "RX (Mahalanobis) score of the per-band change: high where the change is unlike "
                               "the change elsewhere in the scene.", optional=True)
        self.add_raster_output("OUTPUT_BINARY", f"Binary change map ({m})",
                               "1 changed, 0 unchanged, 255 nodata: the change magnitude cut at the threshold.",
                               optional=True)
        self.add_objects_output("OUTPUT_OBJECTS", f"Changed regions ({m})",
                                "The binary change map's 8-connected regions as polygons (GeoPackage), each with its "
                                "rank by peak change, pixel count, area in map units, peak and mean change "
                                "magnitude and the map coordinates of its peak and centroid.")
        if self.NETWORK:
            self.add_save_model()

    def engine_arguments(self, parameters, context, feedback):
        outputs = {name: self.output_path(parameters, name, context)
                   for name in ("OUTPUT", "OUTPUT_ANOMALOUS", "OUTPUT_BINARY", "OUTPUT_OBJECTS")}
        args = [self.image_file(parameters, "INPUT_T1", "First date", context, feedback),
                self.image_file(parameters, "INPUT_T2", "Second date", context, feedback),
                "--output", outputs["OUTPUT"],
                "--grid", self.parameterAsEnumString(parameters, "GRID", context)]
        if outputs["OUTPUT_ANOMALOUS"]:
            args += ["--anomalous-change", outputs["OUTPUT_ANOMALOUS"]]
        if self.NETWORK:
            mask = self.optional_input_file(parameters, "TRAINING_MASK", "Training mask", context, feedback)
            if mask:
                args += ["--training-mask", mask]
        return args + self.shared_arguments(parameters, context, outputs), outputs
