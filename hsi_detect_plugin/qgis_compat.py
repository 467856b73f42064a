"""The QGIS enums and flags the plugin uses, in one place, for QGIS 3.22 up to QGIS 4.

QGIS 3.36 to 3.38 moved the Processing and raster enums into the ``Qgis`` namespace
(``Qgis.ProcessingParameterFlag.Advanced`` instead of
``QgsProcessingParameterDefinition.FlagAdvanced``, ...); QGIS 3.40 marks the old names as
deprecated and QGIS 4 (Qt 6) removes them. Each name below comes from ``Qgis`` where that
QGIS has it and from the old class attribute otherwise (QGIS 3.22 to 3.34), so the plugin never
touches a deprecated name on a QGIS that has the new one. The rest of the plugin imports these
names from here and nowhere else names a QGIS enum.

Flags combine with ``|`` the same way with both kinds: ``parameter.flags() | PARAMETER_ADVANCED``
(see ``with_flag``).
"""

from qgis.core import (Qgis, QgsProcessing, QgsProcessingAlgorithm, QgsProcessingParameterDefinition,
                       QgsProcessingParameterFile, QgsProcessingParameterNumber, QgsRasterFileWriter)


def _pick(new_enum: str, new_member: str, old_class, old_member: str):
    """``Qgis.<new_enum>.<new_member>`` where that exists, else ``<old_class>.<old_member>``."""
    scoped = getattr(Qgis, new_enum, None)
    if scoped is not None and hasattr(scoped, new_member):
        return getattr(scoped, new_member)
    return getattr(old_class, old_member)


# Parameter flags (Qgis.ProcessingParameterFlag, QGIS 3.36)
PARAMETER_ADVANCED = _pick("ProcessingParameterFlag", "Advanced", QgsProcessingParameterDefinition, "FlagAdvanced")
PARAMETER_OPTIONAL = _pick("ProcessingParameterFlag", "Optional", QgsProcessingParameterDefinition, "FlagOptional")
PARAMETER_HIDDEN = _pick("ProcessingParameterFlag", "Hidden", QgsProcessingParameterDefinition, "FlagHidden")

# Number parameter types (Qgis.ProcessingNumberParameterType, QGIS 3.36)
NUMBER_INTEGER = _pick("ProcessingNumberParameterType", "Integer", QgsProcessingParameterNumber, "Integer")
NUMBER_DOUBLE = _pick("ProcessingNumberParameterType", "Double", QgsProcessingParameterNumber, "Double")

# File parameter behaviour (Qgis.ProcessingFileParameterBehavior, QGIS 3.36)
FILE_PARAMETER_FILE = _pick("ProcessingFileParameterBehavior", "File", QgsProcessingParameterFile, "File")
FILE_PARAMETER_FOLDER = _pick("ProcessingFileParameterBehavior", "Folder", QgsProcessingParameterFile, "Folder")

# Layer source types (Qgis.ProcessingSourceType, QGIS 3.36)
SOURCE_RASTER = _pick("ProcessingSourceType", "Raster", QgsProcessing, "TypeRaster")

# Algorithm flags (Qgis.ProcessingAlgorithmFlag, QGIS 3.36)
ALGORITHM_NO_THREADING = _pick("ProcessingAlgorithmFlag", "NoThreading", QgsProcessingAlgorithm, "FlagNoThreading")

# What QgsRasterFileWriter.writeRaster returns on success (Qgis.RasterFileWriterResult, QGIS 3.38)
RASTER_WRITE_SUCCESS = _pick("RasterFileWriterResult", "Success", QgsRasterFileWriter, "NoError")


def with_flag(definition, flag):
    """Add ``flag`` to a parameter definition's flags (either enum kind) and return the definition."""
    definition.setFlags(definition.flags() | flag)
    return definition
