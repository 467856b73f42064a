"""A detector's own parameters in QGIS, built from the engine's declaration of them.

The engine declares every method parameter once, with its type, default, bounds, choices,
label and help (hsi_detect_engine/parameters.py). That file imports only the standard
library, so it is loaded here by its path, under a private module name: QGIS's Python
never imports the engine package (nor torch). The QGIS name is the engine name in upper
case (patch_size -> PATCH_SIZE); the value goes to the engine as its option --patch-size,
where the engine checks it again with the same sentence as for any other caller.
"""

import importlib.util
import os
import sys

from qgis.core import (QgsProcessingParameterBoolean, QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterNumber)

from .. import settings
from ..qgis_compat import NUMBER_DOUBLE, NUMBER_INTEGER, PARAMETER_ADVANCED, with_flag

_MODULE = "_hsi_detect_plugin_engine_parameters"
_loaded = {}
SMALL = 0.01  # a decimal parameter whose default is below this shows more decimals than QGIS's 6
SMALL_DECIMALS = 10


def declaration():
    """The engine's parameters.py as a module, or None when the engine's source is missing."""
    folder = settings.engine_source_dir()
    if not folder:
        return None
    path = os.path.join(folder, "hsi_detect_engine", "parameters.py")
    if path not in _loaded:
        spec = importlib.util.spec_from_file_location(_MODULE, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_MODULE] = module  # dataclasses look their module up while the class is made
        try:
            spec.loader.exec_module(module)
        finally:
            del sys.modules[_MODULE]
        _loaded[path] = module
    return _loaded[path]


def method_parameters(method: str) -> tuple:
    """The engine's parameters of a method ('bs3lnet', 'hypernet'); none when the engine is missing."""
    module = declaration()
    return tuple(module.METHODS[method]) if module else ()


def definition(param) -> QgsProcessingParameterDefinition:
    """The QGIS parameter of one engine Param."""
    name = param.name.upper()
    if param.choices:
        p = QgsProcessingParameterEnum(name, param.label, options=list(param.choices), defaultValue=param.default,
                                       usesStaticStrings=True)
    elif param.type is bool:
        p = QgsProcessingParameterBoolean(name, param.label, defaultValue=param.default)
    else:
        kind = NUMBER_INTEGER if param.type is int else NUMBER_DOUBLE
        p = QgsProcessingParameterNumber(name, param.label, kind, defaultValue=param.default)
        if param.minimum is not None:
            p.setMinimum(param.minimum)
        if param.maximum is not None:
            p.setMaximum(param.maximum)
        if param.type is float and 0 < param.default < SMALL:
            p.setMetadata({"widget_wrapper": {"decimals": SMALL_DECIMALS}})
    paper = param.paper
    if isinstance(paper, bool):
        paper = "yes" if paper else "no"
    p.setHelp(param.help + (f" The paper: {paper}." if paper is not None else ""))
    if param.advanced:
        with_flag(p, PARAMETER_ADVANCED)
    return p


def arguments(param, algorithm, parameters: dict, context) -> list:
    """The engine option for the value given (or defaulted) in ``parameters``."""
    name = param.name.upper()
    if param.choices:
        value = algorithm.parameterAsEnumString(parameters, name, context)
    elif param.type is bool:
        value = "yes" if algorithm.parameterAsBoolean(parameters, name, context) else "no"
    elif param.type is int:
        value = algorithm.parameterAsInt(parameters, name, context)
    else:
        value = repr(algorithm.parameterAsDouble(parameters, name, context))
    return [param.flag, str(value)]
