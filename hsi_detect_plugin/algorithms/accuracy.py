"""hsidetect:accuracy — AUC, OA, Kappa, F1, precision and recall of a map against a ground truth."""

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer)

from ..qgis_compat import NUMBER_DOUBLE
from .base import EngineAlgorithm
from .method_parameters import declaration

FIGURES = (("AUC", "auc", "Area under the ROC curve"), ("OA", "oa", "Overall accuracy"), ("KAPPA", "kappa", "Kappa"),
           ("F1", "f1", "F1 score"), ("PRECISION", "precision", "Precision"), ("RECALL", "recall", "Recall"),
           ("OBJECTS_HIT", "objects_hit_share", "Share of ground-truth objects hit"),
           ("FALSE_OBJECTS", "false_objects", "Detected objects touching no ground-truth object"))


class AccuracyAlgorithm(EngineAlgorithm):
    ALGORITHM_ID = "accuracy"
    TITLE = "Detection Accuracy Assessment"
    GROUP_ID = "accuracy"
    GROUP = "Accuracy assessment"
    COMMAND = "evaluate"
    HELP = """Compares a detection map with a ground-truth map and reports how well they agree: the area under the ROC curve (AUC) and, for the binary decision, overall accuracy (OA), Cohen's Kappa, F1, precision and recall. Works for any score raster (for instance the output of BS3LNet, HyperNet, RX or CVA) and for binary maps.

Inputs: the map (one band: a score raster, or a binary map of 0 and 1) and a ground truth on the same grid where 1 marks changed or anomalous pixels and other values background. Pixels whose ground-truth value equals UNLABELLED_VALUE (or the ground truth's nodata value) are left out of every figure.

Outputs:
AUC: probability that a random changed/anomalous pixel scores higher than a random background pixel (0.5 is chance, 1 is perfect).
OA, KAPPA, F1, PRECISION, RECALL: figures of the binary decision; for a score raster it is taken at the score's Otsu threshold.
OBJECTS_HIT, FALSE_OBJECTS: the same decision by objects (8-connected regions): the share of ground-truth objects with at least one detected pixel, and the number of detected objects that touch no ground-truth object.
Accuracy report (OUTPUT_REPORT): an HTML page with these figures, the ROC curve and the confusion matrix.
The figures are numeric outputs, usable by later steps of a model.

Time: a few seconds on a CPU for a 400 x 400 pixel map, the HTML report included; it grows with the number of pixels. No GPU needed.

Reference: T. Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters, 27(8):861-874, 2006; J. Cohen, "A coefficient of agreement for nominal scales", Educational and Psychological Measurement, 20(1):37-46, 1960."""

    def initAlgorithm(self, config=None):
        self.add(QgsProcessingParameterRasterLayer("INPUT", "Score or binary map"),
                 "A detection result: a score raster (higher means more likely changed or anomalous) or a binary "
                 "map (1 detected, 0 background), with one band.")
        self.add(QgsProcessingParameterRasterLayer("GROUND_TRUTH", "Ground truth"),
                 "Reference map on the same grid: 1 = changed or anomalous, other values = background.")
        self.add(QgsProcessingParameterNumber("UNLABELLED_VALUE", "Ground-truth value meaning 'not labelled'",
                                              NUMBER_DOUBLE, optional=True),
                 "Pixels with this ground-truth value are left out of every figure (for instance 0 where 1 is "
                 "changed and 2 unchanged). Default: the ground truth's nodata value, if it has one.")
        self.add(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Accuracy report", "HTML files (*.html)"),
                 "HTML page with the figures, the ROC curve and the confusion matrix.")
        engine = declaration()  # None when the engine's source is missing: a run then says how to reinstall
        if engine:
            self.add_memory_limit(engine)
        for name, _, description in FIGURES:
            self.addOutput(QgsProcessingOutputNumber(name, description))

    def engine_modules(self):
        return ("matplotlib", "sklearn")

    def engine_arguments(self, parameters, context, feedback):
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context)
        args = [self.input_file(parameters, "INPUT", "Map", context, feedback),
                self.input_file(parameters, "GROUND_TRUTH", "Ground truth", context, feedback),
                "--report", report]
        if parameters.get("UNLABELLED_VALUE") not in (None, ""):
            args += ["--unlabelled", repr(self.parameterAsDouble(parameters, "UNLABELLED_VALUE", context))]
        args += self.memory_limit_arguments(parameters, context)
        return args, {"OUTPUT_REPORT": report}

    def results(self, result, outputs, context):
        figures = {name: float(result[key]) for name, key, _ in FIGURES}
        return {**figures, "OUTPUT_REPORT": outputs["OUTPUT_REPORT"]}
