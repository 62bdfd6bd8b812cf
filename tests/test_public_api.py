"""The public surface of ``shipyard`` changes only on purpose, and every name in it works."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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
        "knowledge",
        "llm",
        "model",
        "parse_answer",
        "prompt",
        "retrieve",
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
        "check_model_card",
        "chunk_text",
        "encode",
        "feature_matrix",
        "key_id",
        "load_model",
        "load_onnx",
        "load_public_key",
        "load_verified",
        "merge_model_cards",
        "npy_bytes",
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
        "QueryRedactor",
        "REQUEST_ID_HEADER",
        "Receive",
        "STATUSES",
        "Scope",
        "Send",
        "decode_json",
        "docs_page",
        "error_body",
        "error_headers",
        "error_response",
        "header",
        "http_error",
        "http_status",
        "presented_credential",
        "read_body",
        "redact_access_log",
        "send_response",
        "swagger_asset",
        "too_large",
    ]
    for name in shipyard.web.__all__:
        assert getattr(shipyard.web, name) is not None, name


def test_the_pipeline_surface() -> None:
    import shipyard.pipeline

    assert shipyard.pipeline.__all__ == [
        "Column",
        "FunctionNode",
        "GenAINode",
        "KnowledgeNode",
        "LlmNode",
        "ModelNode",
        "Node",
        "OnnxModel",
        "ParseNode",
        "Pipeline",
        "PromptNode",
        "RetrieveNode",
        "Table",
        "compile_files",
        "feature",
        "knowledge",
        "llm",
        "model",
        "parse_answer",
        "prompt",
        "retrieve",
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


# -- every package: one __all__, and it is exactly what the package offers ---------------

SRC = Path(shipyard.__file__).resolve().parent
# Alembic's folders are scripts that Alembic loads by path, not an importable API.
NOT_AN_API = {"shipyard.registry.migrations", "shipyard.registry.migrations.versions"}


def _public_modules() -> list[str]:
    """Every package under src/shipyard, and every public module at its top."""
    names = ["shipyard"]
    for init in sorted(SRC.rglob("__init__.py")):
        parts = init.parent.relative_to(SRC).parts
        if parts and not any(p.startswith("_") for p in parts):
            names.append(".".join(("shipyard", *parts)))
    names += [f"shipyard.{p.stem}" for p in sorted(SRC.glob("*.py")) if not p.stem.startswith("_")]
    return [n for n in names if n not in NOT_AN_API]


def _source(module: ModuleType) -> Path:
    assert module.__file__ is not None
    return Path(module.__file__)


def _bound_in_source(module: ModuleType) -> set[str]:
    """The public names the module's own file binds at its top (or under TYPE_CHECKING).

    Imports from outside Shipyard (``typing.Any``, ``__future__.annotations``) are the
    module's tools, not its offer, and are left out.
    """
    tree = ast.parse(_source(module).read_text())
    statements: list[ast.stmt] = []
    for node in tree.body:
        statements += node.body if isinstance(node, ast.If) else [node]
    names: set[str] = set()
    for node in statements:
        if isinstance(node, ast.ImportFrom):
            if node.level > 0 or (node.module or "").split(".")[0] == "shipyard":
                names |= {alias.asname or alias.name for alias in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return {n for n in names if not n.startswith("_") or n == "__version__"}


@pytest.mark.parametrize("name", _public_modules())
def test_every_package_exports_exactly_its_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__dict__.get("__all__")
    assert isinstance(exported, list), f"{name} has no __all__ list"
    assert all(isinstance(n, str) for n in exported)
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for public in exported:
        assert getattr(module, public, None) is not None, f"{name}.{public} does not resolve"
        assert public in dir(module), f"{name}.{public} is missing from dir()"
    # Nothing offered by accident: each public name the package binds, and each object of
    # Shipyard's own it holds (a star import, a lazily loaded name), is in __all__.
    offered = {
        n for n in _bound_in_source(module) if not isinstance(getattr(module, n, None), ModuleType)
    }
    offered |= {
        n
        for n, value in vars(module).items()
        if not n.startswith("_")
        and not isinstance(value, ModuleType)
        and str(getattr(value, "__module__", "")).split(".")[0] == "shipyard"
    }
    assert sorted(offered - set(exported)) == [], f"{name} offers names outside __all__"


def test_the_packages_checked_include_every_layer() -> None:
    expected = {"shipyard", "shipyard.errors", "shipyard.runtime", "shipyard.pipeline"}
    expected |= {"shipyard.artifact", "shipyard.registry", "shipyard.serving", "shipyard.cli"}
    assert expected <= set(_public_modules())
