"""The one exception tree of Shipyard.

Standard library only: this module is copied into every bundle, where no
``shipyard`` package exists.

    ShipyardError
    ├── ArtifactError             a bundle cannot be trusted or read
    │   ├── TamperedArtifact      a file differs from MANIFEST.json (changed, added, missing)
    │   ├── SignatureError        MANIFEST.sig is missing, malformed or made by another key
    │   └── IncompatibleArtifact  the bundle's format version is unknown to this runtime
    ├── SchemaError (ValueError)  input data does not match input_info.json
    │   ├── UnknownTable
    │   ├── MissingColumn
    │   ├── WrongType
    │   ├── NullValue
    │   └── OutOfRange            outside [min, max] or not an allowed category
    ├── PipelineError             a pipeline definition is wrong
    │   ├── GraphError            unknown reference, cycle, duplicate name, type clash
    │   └── CaptureError          a function cannot be written into a bundle
    ├── ModelError                a model cannot be saved, loaded or called
    │   └── EndpointError         an llm node's endpoint failed: unreachable, timed out,
    │                             an error status after the retries, not a chat completion
    └── UsageError                a command was called wrongly (exit code 2)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ArtifactError",
    "CaptureError",
    "EndpointError",
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


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ArtifactError(ShipyardError):
    """A bundle cannot be read or trusted."""


class TamperedArtifact(ArtifactError):
    """A bundle's files do not match its MANIFEST.json; ``path`` names the first offending file."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class SignatureError(ArtifactError):
    """MANIFEST.sig is missing, malformed, or was not made by the configured key."""


class IncompatibleArtifact(ArtifactError):
    """The bundle was written in a format this runtime does not read."""


class SchemaError(ShipyardError, ValueError):
    """Input data does not match the bundle's declared inputs.

    ``table``, ``column`` and ``row`` (0-based) say where, when known.
    """

    def __init__(
        self,
        message: str,
        table: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        where = []
        if table is not None:
            where.append(f"table '{table}'")
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.table = table
        self.column = column
        self.row = row


class UnknownTable(SchemaError):
    """The input holds a table the pipeline does not declare."""


class MissingColumn(SchemaError):
    """A declared column the requested outputs need is absent from the input."""


class WrongType(SchemaError):
    """A value is not of its column's declared type."""


class NullValue(SchemaError):
    """A null (missing) value in a column declared not nullable."""


class OutOfRange(SchemaError):
    """A value outside its column's declared range, or not one of its allowed categories."""


class PipelineError(ShipyardError):
    """A pipeline definition is invalid."""


class GraphError(PipelineError):
    """The node graph is wrong: unknown reference, cycle, duplicate name or type clash."""


class CaptureError(PipelineError):
    """A function cannot be written into a bundle.

    It reads a global or a closure variable that would be lost once exported.
    """


class ModelError(ShipyardError):
    """A model cannot be saved, loaded or called."""


class EndpointError(ModelError):
    """An llm node's endpoint failed: it could not be reached, did not answer in time,
    answered an error status (after the retries), or sent something unusable.

    ``str()`` names the endpoint's URL (without credentials), for the host's log.
    ``node`` is the llm node, when known; ``reason`` says what went wrong without the
    URL or the endpoint's own words (``answered 503 (3 attempts)``), fit for a client.
    """

    def __init__(self, message: str, node: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # keeps node and reason across processes
        return (type(self), (str(self), self.node, self.reason))

    @property
    def public_message(self) -> str:
        """What a client of a server is told: the node and the reason, not the endpoint."""
        node = f"llm '{self.node}'" if self.node else "an llm node"
        return f"{node} failed: its language model endpoint {self.reason or 'failed'}"


class UsageError(ShipyardError):
    """A command or function was called with arguments that cannot work."""

    exit_code = 2


class VersionMismatchWarning(UserWarning):
    """The host's library versions differ from those the bundle was built with."""
