"""The public surface of ``shipyard`` changes only on purpose, and every name in it works."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shipyard
import shipyard.runtime


def test_the_names_a_data_scientist_types() -> None:
    assert sorted(shipyard.__all__) == [
        "Artifact",
        "Column",
        "OnnxModel",
        "Pipeline",
        "Table",
        "__version__",
        "errors",
        "feature",
        "model",
        "rule",
    ]


def test_every_public_name_resolves_including_the_lazily_imported_ones() -> None:
    # The pipeline names are imported on first use so that shipyard.runtime needs no numpy.
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None, name
        assert name in dir(shipyard)
    from shipyard import Pipeline, feature

    assert Pipeline is shipyard.pipeline.Pipeline
    assert feature is shipyard.pipeline.feature


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Pipe'"):
        _ = shipyard.Pipe  # type: ignore[attr-defined]


def test_the_runtime_surface() -> None:
    assert sorted(shipyard.runtime.__all__) == [
        "Artifact",
        "ArtifactError",
        "CaptureError",
        "ColumnSpec",
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
        "build_manifest",
        "encode",
        "feature_matrix",
        "key_id",
        "load_model",
        "load_onnx",
        "load_public_key",
        "parse_dataset",
        "read_bundle",
        "reason",
        "signature_key",
        "table_specs",
        "to_array",
    ]
    assert shipyard.Artifact is shipyard.runtime.Artifact
    assert shipyard.runtime.TamperedArtifact is shipyard.errors.TamperedArtifact
    # Every error class of the runtime is the one shipyard.errors offers, not a copy.
    for name in shipyard.runtime.__all__:
        value = getattr(shipyard.runtime, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert getattr(shipyard.errors, name) is value, name


def test_importing_the_runtime_needs_no_numpy_until_a_bundle_runs() -> None:
    # A host that only inspects and verifies bundles has the standard library alone.
    probe = (
        "import sys, shipyard.runtime as r; before = 'numpy' in sys.modules; "
        "r.Executor; print(before, 'numpy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


def test_one_exception_tree_holds_the_registry_errors() -> None:
    import shipyard.errors

    assert sorted(shipyard.errors.__all__) == [
        "ArtifactError",
        "AuditBroken",
        "BatchStopped",
        "CaptureError",
        "ClientGone",
        "Conflict",
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
        "StoreError",
        "TamperedArtifact",
        "UnknownTable",
        "UsageError",
        "VersionMismatchWarning",
        "WrongType",
    ]
    assert shipyard.errors.__all__ == sorted(shipyard.errors.__all__)
    for name in shipyard.errors.__all__:
        assert getattr(shipyard.errors, name) is not None, name
        assert name in dir(shipyard.errors)
    import shipyard.registry

    assert shipyard.errors.NotFound is shipyard.registry.NotFound
    assert issubclass(shipyard.errors.InvalidSetting, shipyard.errors.ShipyardError)
    assert shipyard.errors.InvalidSetting.exit_code == 2


def test_the_web_surface() -> None:
    import shipyard.web

    assert sorted(shipyard.web.__all__) == [
        "ErrorStyle",
        "Headers",
        "JSON_TYPE",
        "Message",
        "REQUEST_ID_HEADER",
        "Receive",
        "STATUSES",
        "Scope",
        "Send",
        "decode_json",
        "error_body",
        "error_headers",
        "error_response",
        "header",
        "http_error",
        "http_status",
        "presented_credential",
        "read_body",
        "send_response",
        "too_large",
    ]
    for name in shipyard.web.__all__:
        assert getattr(shipyard.web, name) is not None, name


def test_the_pipeline_surface() -> None:
    import shipyard.pipeline

    assert shipyard.pipeline.__all__ == [
        "Column",
        "FunctionNode",
        "ModelNode",
        "Node",
        "OnnxModel",
        "Pipeline",
        "Table",
        "compile_files",
        "feature",
        "model",
        "rule",
    ]


def test_the_bundle_writer_surface_works_on_files_not_pipelines() -> None:
    import shipyard.artifact

    assert shipyard.artifact.__all__ == [
        "generate_key_pair",
        "load_private_key",
        "sign_files",
        "write_bundle",
    ]
