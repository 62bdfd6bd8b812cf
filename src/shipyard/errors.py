"""Shipyard's exception tree (see ``shipyard.runtime._errors`` for the drawing).

The classes live in the runtime so that a bundle, which carries a copy of the
runtime, raises errors of the same names and shape.
"""

from .runtime._errors import (
    ArtifactError,
    CaptureError,
    GraphError,
    IncompatibleArtifact,
    MissingColumn,
    ModelError,
    NullValue,
    OutOfRange,
    PipelineError,
    SchemaError,
    ShipyardError,
    SignatureError,
    TamperedArtifact,
    UnknownTable,
    UsageError,
    VersionMismatchWarning,
    WrongType,
)

__all__ = [
    "ArtifactError",
    "CaptureError",
    "GraphError",
    "IncompatibleArtifact",
    "MissingColumn",
    "ModelError",
    "NullValue",
    "OutOfRange",
    "PipelineError",
    "SchemaError",
    "ShipyardError",
    "SignatureError",
    "TamperedArtifact",
    "UnknownTable",
    "UsageError",
    "VersionMismatchWarning",
    "WrongType",
]
