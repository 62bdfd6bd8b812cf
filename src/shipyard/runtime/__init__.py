"""The Shipyard runtime: inspect, verify, run and extract bundles.

Importing it needs only the standard library, so a production team can install
Shipyard just to check bundles. Running a bundle needs numpy and the libraries of
its model flavors.
"""

from ._artifact import Artifact, read_bundle
from ._errors import (
    ArtifactError,
    IncompatibleArtifact,
    SchemaError,
    ShipyardError,
    SignatureError,
    TamperedArtifact,
    VersionMismatchWarning,
)

__all__ = [
    "Artifact",
    "ArtifactError",
    "IncompatibleArtifact",
    "SchemaError",
    "ShipyardError",
    "SignatureError",
    "TamperedArtifact",
    "VersionMismatchWarning",
    "read_bundle",
]
