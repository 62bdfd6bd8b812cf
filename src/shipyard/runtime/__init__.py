"""The Shipyard runtime: inspect, verify, run and extract bundles.

Importing it needs only the standard library, so a production team can install
Shipyard just to check bundles. Running a bundle needs numpy and the libraries of
its model flavors: the names below that need numpy (the executor, the dataset
format, the model loaders, the Arrow conversions) are imported on first use (PEP 562).

What other Shipyard packages use is here; the private modules behind it are the
files every bundle carries in ``_runtime/`` (all but ``_artifact``, ``_card`` and ``_host``:
``_host`` loads bundles with the host's code; ``load_verified`` is the production loader).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._answers import check_answer, unsupported, violation
from ._artifact import Artifact, read_bundle
from ._card import check_model_card, merge_model_cards
from ._errors import (
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
from ._host import check_bundle, load_verified, read_folder
from ._manifest import MANIFEST, SIGNATURE, build_manifest, key_id, load_public_key, signature_key

if TYPE_CHECKING:
    from ._arrow import arrow_array, arrow_type
    from ._dataset import NUMERIC, TYPES, ColumnSpec, encode, parse_dataset, table_specs, to_array
    from ._executor import FORMAT_VERSION, Executor, Plan, reason
    from ._llm import Endpoint, recorded_calls
    from ._models import feature_matrix, load_model, load_onnx
    from ._prompt import prompt_environment
    from ._retrieval import build_index, chunk_text, npy_bytes

# The names that need numpy, each with the module that defines it.
_NUMPY_NAMES = {
    "ColumnSpec": "_dataset",
    "Endpoint": "_llm",
    "Executor": "_executor",
    "FORMAT_VERSION": "_executor",
    "NUMERIC": "_dataset",
    "Plan": "_executor",
    "TYPES": "_dataset",
    "arrow_array": "_arrow",
    "arrow_type": "_arrow",
    "build_index": "_retrieval",
    "chunk_text": "_retrieval",
    "encode": "_dataset",
    "feature_matrix": "_models",
    "load_model": "_models",
    "load_onnx": "_models",
    "npy_bytes": "_retrieval",
    "parse_dataset": "_dataset",
    "prompt_environment": "_prompt",
    "reason": "_executor",
    "recorded_calls": "_llm",
    "table_specs": "_dataset",
    "to_array": "_dataset",
}

__all__ = [
    "Artifact",
    "ArtifactError",
    "CaptureError",
    "ColumnSpec",
    "Endpoint",
    "EndpointError",
    "Executor",
    "FORMAT_VERSION",
    "GraphError",
    "IncompatibleArtifact",
    "MANIFEST",
    "MissingColumn",
    "ModelError",
    "NUMERIC",
    "NullValue",
    "OutOfRange",
    "PipelineError",
    "Plan",
    "SIGNATURE",
    "SchemaError",
    "ShipyardError",
    "SignatureError",
    "TYPES",
    "TamperedArtifact",
    "UnknownTable",
    "UsageError",
    "VersionMismatchWarning",
    "WrongType",
    "arrow_array",
    "arrow_type",
    "build_index",
    "build_manifest",
    "check_answer",
    "check_bundle",
    "chunk_text",
    "check_model_card",
    "encode",
    "feature_matrix",
    "key_id",
    "load_model",
    "load_onnx",
    "load_public_key",
    "load_verified",
    "npy_bytes",
    "merge_model_cards",
    "parse_dataset",
    "prompt_environment",
    "read_bundle",
    "read_folder",
    "reason",
    "recorded_calls",
    "signature_key",
    "table_specs",
    "to_array",
    "unsupported",
    "violation",
]


def __getattr__(name: str) -> Any:
    module = _NUMPY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.runtime' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_NUMPY_NAMES))
