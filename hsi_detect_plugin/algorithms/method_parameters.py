"""A detector's own parameters, declared once per algorithm: the QGIS parameter and the engine option.

Each entry mirrors one engine parameter (hsi_detect_engine/parameters.py: same name, type,
default and choices; a test keeps the two in step). The QGIS name is the engine name in
upper case (patch_size -> PATCH_SIZE), the engine option is --patch-size.
"""

from dataclasses import dataclass
from typing import Optional

from qgis.core import (QgsProcessingParameterBoolean, QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterNumber)

from ..qgis_compat import NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED, with_flag


@dataclass(frozen=True)
class MethodParameter:
    name: str  # the engine's name, lower_snake
    type: type  # int, float, bool or str (str needs choices)
    default: object
    description: str  # the label in the dialog
    help: str
    advanced: bool = False
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: tuple = ()

    @property
    def qgis_name(self) -> str:
        return self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def definition(self) -> QgsProcessingParameterDefinition:
        if self.choices:
            p = QgsProcessingParameterEnum(self.qgis_name, self.description, options=list(self.choices),
                                           defaultValue=self.default, usesStaticStrings=True)
        elif self.type is bool:
            p = QgsProcessingParameterBoolean(self.qgis_name, self.description, defaultValue=self.default)
        else:
            kind = NUMBER_INTEGER if self.type is int else NUMBER_DOUBLE
            p = QgsProcessingParameterNumber(self.qgis_name, self.description, kind, defaultValue=self.default)
            if self.minimum is not None:
                p.setMinimum(self.minimum)
            if self.maximum is not None:
                p.setMaximum(self.maximum)
        p.setHelp(self.help)
        if self.advanced:
            with_flag(p, PARAMETER_ADVANCED)
        return p

    def arguments(self, algorithm, parameters: dict, context) -> list:
        """The engine option for the value given (or defaulted) in ``parameters``."""
        if self.choices:
            value = algorithm.parameterAsEnumString(parameters, self.qgis_name, context)
        elif self.type is bool:
            value = "yes" if algorithm.parameterAsBoolean(parameters, self.qgis_name, context) else "no"
        elif self.type is int:
            value = algorithm.parameterAsInt(parameters, self.qgis_name, context)
        else:
            value = repr(algorithm.parameterAsDouble(parameters, self.qgis_name, context))
        return [self.flag, str(value)]
