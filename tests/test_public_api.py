"""The public surface of ``shipyard`` changes only on purpose, and every name in it works."""

from __future__ import annotations

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
        "IncompatibleArtifact",
        "SchemaError",
        "ShipyardError",
        "SignatureError",
        "TamperedArtifact",
        "VersionMismatchWarning",
        "read_bundle",
    ]
    assert shipyard.Artifact is shipyard.runtime.Artifact
    assert shipyard.runtime.TamperedArtifact is shipyard.errors.TamperedArtifact


def test_one_exception_tree_holds_the_registry_errors() -> None:
    import shipyard.errors

    assert sorted(shipyard.errors.__all__) == [
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
    assert shipyard.errors.__all__ == sorted(shipyard.errors.__all__)
    for name in shipyard.errors.__all__:
        assert getattr(shipyard.errors, name) is not None, name
        assert name in dir(shipyard.errors)
    import shipyard.registry

    assert shipyard.errors.NotFound is shipyard.registry.NotFound
    assert issubclass(shipyard.errors.InvalidSetting, shipyard.errors.ShipyardError)
    assert shipyard.errors.InvalidSetting.exit_code == 2
