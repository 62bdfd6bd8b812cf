"""Shipyard's one exception tree; catch what you mean.

    ShipyardError                  every error Shipyard raises; carries ``exit_code``
    ├── ArtifactError              a bundle cannot be trusted or loaded
    │   ├── TamperedArtifact       a file differs from MANIFEST.json (or is missing / extra)
    │   ├── SignatureError         MANIFEST.sig is absent, malformed or from another key
    │   └── IncompatibleArtifact   the bundle's format version is newer than this runtime
    ├── SchemaError                input data does not match the bundle's input tables
    │   ├── UnknownTable, MissingColumn, WrongType, NullValue, OutOfRange
    ├── PipelineError              a pipeline definition is refused
    │   ├── GraphError             unknown reference, cycle, duplicate, type clash
    │   └── CaptureError           a feature reads a global, helper or closure
    ├── ModelError                 a model cannot be saved, loaded or run
    │   └── EndpointError          an llm node's endpoint failed (unreachable, timed out,
    │                              an error status after the retries, an unusable answer)
    ├── AppError                   an app's code cannot be imported or served
    ├── UsageError                 a command or call was given bad arguments (exit code 2)
    ├── HttpError                  a server answers a request with ``status`` instead of a result
    │   └── ClientGone             the client left before its request was complete (status 499)
    ├── BatchStopped               a batch run was told to stop (a cancelled job); it kept nothing
    └── RegistryError              the registry refused or could not do something
        ├── NotFound               a project, environment, model, version, revision … is unknown
        ├── Conflict               the current state forbids the change (exists already, cycle,
        │                          dependants, promote into a challenger, nothing to promote)
        │   ├── SignatureRequired  the signature policy refuses an untrusted bundle
        │   └── ApprovalRequired   the change was recorded as a change request awaiting approval
        ├── InvalidInput           a name, value or file is malformed (exit code 2)
        │   ├── InvalidSetting     a setting key or value is refused; the message says why
        │   └── InvalidComponentConfig   a component config file does not apply; lists every problem
        ├── PermissionDenied       a token or API key is unknown, revoked, or its role is too low
        ├── AuditBroken            ``audit verify`` found an event that breaks the hash chain
        └── StoreError             a blob is missing from the artifact store or fails its sha256
            ├── StoreFull          the store has no room for a blob (disk full, quota, size limit)
            └── StoreReadOnly      the store refuses writes (read-only file system, no permission)

The classes above ``HttpError`` live in ``shipyard.runtime._errors`` because every
bundle carries a copy of the runtime and must raise errors of the same names and shape;
this module re-exports them. Every class carries ``exit_code`` (what the CLI returns);
``shipyard.web`` (``http_status``, ``error_response``) holds the one table of HTTP
statuses and maps each class to a status and JSON body for every server Shipyard runs.
"""

from __future__ import annotations

from typing import Any

from .runtime import (
    ArtifactError,
    CaptureError,
    EndpointError,
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
    "AppError",
    "ApprovalRequired",
    "ArtifactError",
    "AuditBroken",
    "BatchStopped",
    "CaptureError",
    "ClientGone",
    "Conflict",
    "EndpointError",
    "GraphError",
    "HttpError",
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
    "SignatureRequired",
    "StoreError",
    "StoreFull",
    "StoreReadOnly",
    "TamperedArtifact",
    "UnknownTable",
    "UsageError",
    "VersionMismatchWarning",
    "WrongType",
]


class AppError(ShipyardError):
    """An app component's code cannot be imported or is not an ASGI app; the message names it."""


class BatchStopped(ShipyardError):
    """A batch run stopped because its caller said so (a cancelled job); nothing was written."""


class RegistryError(ShipyardError):
    """The registry refused or could not do something; the message says what and why."""


class NotFound(RegistryError):
    """A named object does not exist; the message lists what does, when that helps."""


class Conflict(RegistryError):
    """The registry's current state forbids the change (duplicate, cycle, dependants, …)."""


class SignatureRequired(Conflict):
    """The environment's signature policy refuses a version that no trusted key signed."""


class ApprovalRequired(Conflict):
    """The change needs approval first: it was recorded as pending change request
    ``change_request`` on ``environment`` (approve it as another person with the deployer role)."""

    def __init__(self, message: str, change_request: int, environment: str) -> None:
        super().__init__(message)
        self.change_request = change_request
        self.environment = environment


class InvalidInput(RegistryError):
    """A name, value or document given by the caller is malformed."""

    exit_code = 2


class InvalidSetting(InvalidInput):
    """A setting key or value is refused; ``key`` names the setting."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"setting '{key}': {reason}")
        self.key = key
        self.reason = reason


class InvalidComponentConfig(InvalidInput):
    """A component config does not apply; ``problems`` lists every reason, nothing was changed."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("component config refused, nothing changed: " + "; ".join(problems))
        self.problems = list(problems)


class PermissionDenied(RegistryError):
    """An API token is missing, unknown or revoked, or its role does not allow the operation."""


class AuditBroken(RegistryError):
    """The audit log's hash chain is broken; ``event_id`` is the first event that fails."""

    def __init__(self, event_id: int, reason: str) -> None:
        super().__init__(f"audit log broken at event {event_id}: {reason}")
        self.event_id = event_id
        self.reason = reason


class StoreError(RegistryError):
    """A blob is missing from the artifact store, fails its sha256, or the store is unreachable."""


class StoreFull(StoreError):
    """The artifact store has no room for a blob (disk full, quota, file size limit)."""


class StoreReadOnly(StoreError):
    """The artifact store refuses writes (a read-only file system, no permission)."""


class HttpError(ShipyardError):
    """Answer the request with ``status`` and a JSON error body instead of a result.

    ``kind`` names the error in the body (``MalformedJSON``, ``TooLarge``, ``Unauthorized``
    …); ``details`` are extra JSON fields of the body (``table``, ``column``, ``row``).
    Raised by the servers' HTTP layer; ``shipyard.web`` turns every other error into one.
    """

    def __init__(self, status: int, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.details = details


class ClientGone(HttpError):
    """The client disconnected before its request was complete: there is no one to answer."""

    def __init__(self) -> None:
        # 499 is nginx's "client closed request": what the metrics record for it.
        super().__init__(
            499, "ClientGone", "the client disconnected before its request was complete"
        )
