"""Shipyard's one exception tree; catch what you mean.

    ShipyardError
    ├── ArtifactError, SchemaError, PipelineError, ModelError, UsageError
    │       drawn in ``shipyard.runtime._errors``: they live in the runtime so that a
    │       bundle, which carries a copy of it, raises errors of the same names and shape
    └── RegistryError
            NotFound, Conflict, InvalidInput (InvalidSetting, InvalidComponentConfig),
            PermissionDenied, AuditBroken, StoreError: drawn in ``shipyard.registry._errors``

Every class carries ``exit_code`` (what the CLI returns); the registry's also carry
``http_status``. The registry's classes are imported on first use (PEP 562): the
registry needs SQLAlchemy, and importing ``shipyard`` must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .registry._errors import (
        AuditBroken,
        Conflict,
        InvalidComponentConfig,
        InvalidInput,
        InvalidSetting,
        NotFound,
        PermissionDenied,
        RegistryError,
        StoreError,
    )

_REGISTRY_NAMES = frozenset(
    {
        "AuditBroken",
        "Conflict",
        "InvalidComponentConfig",
        "InvalidInput",
        "InvalidSetting",
        "NotFound",
        "PermissionDenied",
        "RegistryError",
        "StoreError",
    }
)

__all__ = [
    "ArtifactError",
    "AuditBroken",
    "CaptureError",
    "Conflict",
    "GraphError",
    "IncompatibleArtifact",
    "InvalidComponentConfig",
    "InvalidInput",
    "InvalidSetting",
    "MissingColumn",
    "ModelError",
    "NotFound",
    "NullValue",
    "OutOfRange",
    "PermissionDenied",
    "PipelineError",
    "RegistryError",
    "SchemaError",
    "ShipyardError",
    "SignatureError",
    "StoreError",
    "TamperedArtifact",
    "UnknownTable",
    "UsageError",
    "VersionMismatchWarning",
    "WrongType",
]


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        from .registry import _errors

        value = getattr(_errors, name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'shipyard.errors' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _REGISTRY_NAMES)
