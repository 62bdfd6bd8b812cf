"""Turn a Pipeline into the files of its bundle (everything but the manifest and signature).

``Pipeline.run`` loads these same files with the runtime's executor, so what a data
scientist runs in a notebook is byte for byte what the bundle runs in production.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata as _metadata
from importlib import resources
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import UsageError
from ..runtime import FORMAT_VERSION, Executor, parse_dataset, table_specs
from ._flavors import fitted_on_frame, save_model
from ._genai import GenAINode
from ._nodes import FunctionNode, ModelNode, needs_frame
from ._onnx import BACKENDS, choose_backends
from ._profile import example_input, profile_tables, reference_tables

if TYPE_CHECKING:  # Pipeline.export and Pipeline.executor import this module
    from ._pipeline import Pipeline

# The runtime modules a bundle carries (standard library + numpy; flavors lazily). A new
# runtime module that these import must be added here: tests/pipeline/test_bundle_runtime.py
# fails otherwise.
RUNTIME_MODULES = (
    "_errors.py",
    "_ed25519.py",
    "_manifest.py",
    "_dataset.py",
    "_source.py",
    "_models.py",
    "_arrow.py",
    "_answers.py",
    "_retrieval.py",
    "_prompt.py",
    "_llm.py",
    "_genai.py",
    "_executor.py",
    "_loading.py",
    "_spark.py",
)

_RUNTIME_INIT = '''\
"""The Shipyard runtime, copied into this bundle at export: no Shipyard install needed."""

from ._errors import *  # noqa: F403
from ._executor import Executor
from ._loading import (
    cached_executor,
    check_versions,
    load,
    load_directory,
    load_files,
    read_directory,
)
'''

_PYTHON_DICT = '''\
"""Low-latency entry point of {name} {version}: ``main(data, outputs=None, app_config=None)``.

Importing this module reads every file of the bundle, checks it against MANIFEST.json
(and MANIFEST.sig when SHIPYARD_PUBLIC_KEY is set) and loads the models; it raises
TamperedArtifact or SignatureError, naming the file, before anything is deserialised.
"""

import sys
from pathlib import Path

from .._runtime import ShipyardError, load_directory

try:
    _executor = load_directory(Path(__file__).resolve().parent.parent, "python_dict")
except ShipyardError as _refused:
    # Python sets argv[0] to "-m" while it imports the package of `python -m PKG.python_dict`:
    # that command then says why in one line, as it does for bad input.
    if sys.argv[:1] == ["-m"]:
        print(f"error: {{type(_refused).__name__}}: {{_refused}}", file=sys.stderr)
        sys.exit(_refused.exit_code)
    raise
metadata = _executor.metadata
input_info = _executor.input_info


def main(data, outputs=None, app_config=None):
    """Score ``data`` (the dict dataset format); return ``{{output: {{"type", "values"}}}}``.

    ``outputs`` may name any node: only what those need is computed. ``app_config`` (a
    mapping) fills the arguments that features and rules read from app config; without
    it they keep their defaults. Bad input raises a SchemaError subclass that names the
    table, column and row.
    """
    executor = _executor.with_app_config(app_config) if app_config else _executor
    return executor.run_dict(data, outputs)
'''

_PYTHON_DICT_MAIN = '''\
"""Print the result as JSON: ``python -m {package}.python_dict [--outputs a,b] < input.json``."""

import argparse
import json
import sys

from .._runtime import ShipyardError
from . import main

parser = argparse.ArgumentParser(prog="python -m {package}.python_dict")
parser.add_argument(
    "--outputs", help="comma-separated node names (default: the pipeline outputs)"
)
options = parser.parse_args()
try:
    data = json.load(sys.stdin)
except ValueError as exc:
    sys.exit(f"error: the input is not JSON: {{exc}}")
outputs = options.outputs.split(",") if options.outputs else None
try:
    result = main(data, outputs)
except (ValueError, ShipyardError) as exc:
    print(f"error: {{exc}}", file=sys.stderr)
    sys.exit(getattr(exc, "exit_code", 1))
json.dump(result, sys.stdout)
sys.stdout.write("\\n")
'''

_PYSPARK = '''\
"""Batch entry point of {name} {version}: ``main(tables, outputs=None, passthrough=())``.

Scores a Spark DataFrame in Arrow batches with the same executor as ``python_dict`` and
returns a DataFrame of the passthrough columns and the outputs.
"""

from pathlib import Path

from .._runtime import load_directory
from .._runtime._spark import score_dataframes

_executor = load_directory(Path(__file__).resolve().parent.parent, "pyspark_dataframe")


def main(tables, outputs=None, passthrough=(), rejects=None, app_config=None, llm_calls=None):
    """Score ``{{"{table}": spark_dataframe}}``: a DataFrame of passthrough columns + outputs.

    With ``rejects="COLUMN"`` rows that fail validation are kept, with null outputs and
    their reason as JSON in that column, instead of failing the job. ``app_config`` as
    for ``python_dict.main``. With ``llm_calls="COLUMN"`` each row also carries the
    records of the llm calls made for it (JSON texts, passthrough values first).
    """
    package = __package__.rsplit(".", 1)[0]
    return score_dataframes(
        _executor,
        package,
        tables,
        outputs,
        passthrough,
        rejects,
        app_config=app_config,
        llm_calls=llm_calls,
    )
'''

_PACKAGE_INIT = '''\
"""{name} {version}, a Shipyard bundle.

    from {package}.python_dict import main          # main(data: dict) -> dict
    from {package}.pyspark_dataframe import main    # main({{table: DataFrame}}) -> DataFrame
"""
'''


def _runtime_source(module: str) -> bytes:
    return resources.files("shipyard.runtime").joinpath(module).read_bytes()


def _package_version(name: str) -> str | None:
    try:
        return _metadata.version(name)
    except _metadata.PackageNotFoundError:
        return None


def _versions(packages: list[str]) -> dict[str, Any]:
    found = {p: v for p in sorted(set(packages)) if (v := _package_version(p)) is not None}
    return {"python": platform.python_version(), "packages": found}


def _json(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=False, default=str) + "\n").encode()


def _node_files(
    pipeline: Pipeline,
) -> tuple[list[dict[str, Any]], dict[str, bytes], dict[str, list[str]]]:
    """Node specs in run order, their object files, and the packages each node needs."""
    files: dict[str, bytes] = {}
    nodes: list[dict[str, Any]] = []
    packages: dict[str, list[str]] = {}
    for name in pipeline.run_order():
        node = pipeline.nodes[name]
        refs = pipeline.references(name)
        spec: dict[str, Any] = {
            "name": name,
            "kind": node.kind,
            "description": node.description,
            "inputs": refs,
            "dtype": node.dtype,
        }
        if isinstance(node, FunctionNode):
            path = f"objects/{name}/source.py"
            spec.update(
                args=list(node.inputs), params=node.params, file=path, function=node.function_name
            )
            if node.app_config:  # absent otherwise: older bundles' metadata stays as it was
                spec["app_config"] = dict(node.app_config)
            files[path] = node.source.encode()
        elif isinstance(node, ModelNode):
            model_spec = dict(node.spec)
            frame = needs_frame(node.model) or fitted_on_frame(node.model)
            fitted = getattr(node.model, "feature_names_in_", None)
            feature_names = (
                [str(f) for f in fitted] if fitted is not None else [r.split(".")[-1] for r in refs]
            )
            model_spec.update(
                name=name,
                input_format="pandas" if frame else "numpy",
                feature_names=feature_names,
            )
            saved = save_model(name, node.model, model_spec)
            path = f"objects/{name}/{saved.filename}"
            spec.update(saved.spec, file=path)
            spec.update(name=name, kind="model", inputs=refs, dtype=node.dtype)
            spec["backend"] = "onnx" if spec["flavor"] == "onnx" else "native"
            files[path] = saved.data
            packages[name] = saved.packages + (["pandas"] if frame else [])
        elif isinstance(node, GenAINode):
            extra, node_files, needs = node.bundle_files(refs, pipeline.nodes)
            spec.update(extra)
            files.update(node_files)
            if needs:
                packages[name] = needs
        nodes.append(spec)
    return nodes, files, packages


def _bundle_metadata(
    pipeline: Pipeline, nodes: list[dict[str, Any]], created_by: str | None
) -> dict[str, Any]:
    lineage_nodes = [
        {"id": f"{t.name}.{c.name}", "kind": "input", "dtype": c.type}
        for t in pipeline.inputs
        for c in t.columns
    ] + [{"id": n["name"], "kind": n["kind"], "dtype": n["dtype"]} for n in nodes]
    edges = [[ref, n["name"]] for n in nodes for ref in n["inputs"]]
    edges += [[n["knowledge"], n["name"]] for n in nodes if n["kind"] == "retrieve"]
    used = {ref for ref, _ in edges}
    lineage_nodes = [n for n in lineage_nodes if n["kind"] != "input" or n["id"] in used]
    models = [n for n in nodes if n["kind"] == "model"]
    return {
        "format_version": FORMAT_VERSION,
        "name": pipeline.name,
        "version": pipeline.version,
        "package": pipeline.bundle_name,
        "description": pipeline.description,
        "target": pipeline.target,
        "created_at": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "created_by": created_by or os.environ.get("SHIPYARD_USER") or _user(),
        "shipyard_version": __version__,
        "groups": pipeline.groups,
        "permissible_purpose": pipeline.permissible_purpose,
        "tags": pipeline.tags,
        "model_card": pipeline.model_card,
        "outputs": pipeline.outputs,
        "nodes": nodes,
        "lineage": {"nodes": lineage_nodes, "edges": edges},
        "flavors": {n["name"]: n["flavor"] for n in models},
        "backend": {n["name"]: n["backend"] for n in models},
        "unsafe_pickle": [n["name"] for n in nodes if n.get("pickle")],
        "entry_points": {
            "python_dict": "python_dict.main",
            "pyspark_dataframe": "pyspark_dataframe.main",
        },
    }


def compile_files(
    pipeline: Pipeline,
    reference: Any = None,
    created_by: str | None = None,
    backend: str = "auto",
) -> dict[str, bytes]:
    """Every file of ``pipeline``'s bundle except MANIFEST.json and MANIFEST.sig.

    Paths are relative to the bundle's top folder. ``backend`` chooses how models are
    stored: ``native``; ``onnx`` (every convertible model, else ModelError); ``auto``
    (ONNX where it converts and matches the native predictions on ``reference``).
    Raises ModelError when a model cannot be saved, SchemaError when ``reference`` does
    not match the inputs, UsageError on an unknown backend or ``onnx`` without reference.
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
    pipeline.check()
    nodes, files, packages = _node_files(pipeline)
    input_info = {"tables": [t.to_json() for t in pipeline.inputs]}
    specs = table_specs(input_info)
    reference_columns: dict[str, dict[str, Any]] | None = None
    rows = 0
    if reference is not None:
        reference_columns, rows = parse_dataset(reference_tables(reference, pipeline), specs, {})
    if backend != "native":
        choose_backends(
            nodes, files, packages, pipeline, input_info, reference_columns, rows, backend
        )

    files["metadata.json"] = _json(_bundle_metadata(pipeline, nodes, created_by))
    files["input_info.json"] = _json(input_info)
    package = pipeline.bundle_name
    fill = {
        "name": pipeline.name,
        "version": pipeline.version,
        "package": package,
        "table": pipeline.inputs[0].name,
    }
    files["__init__.py"] = _PACKAGE_INIT.format(**fill).encode()
    files["_runtime/__init__.py"] = _RUNTIME_INIT.encode()
    for module in RUNTIME_MODULES:
        files[f"_runtime/{module}"] = _runtime_source(module)
    files["python_dict/__init__.py"] = _PYTHON_DICT.format(**fill).encode()
    files["python_dict/__main__.py"] = _PYTHON_DICT_MAIN.format(**fill).encode()
    files["pyspark_dataframe/__init__.py"] = _PYSPARK.format(**fill).encode()
    needed = ["numpy", *(p for name in sorted(packages) for p in packages[name])]
    dict_versions = _versions(needed)
    spark_versions = _versions(needed + ["pyspark", "pyarrow"])
    files["python_dict/versions.json"] = _json(dict_versions)
    files["pyspark_dataframe/versions.json"] = _json(spark_versions)
    files["requirements.txt"] = _requirements(dict_versions, spark_versions)

    # Scoring the reference rows would call an llm node's endpoint at export: a GenAI
    # bundle's reference is the profile of its inputs, without examples.
    calls_endpoint = any(n["kind"] == "llm" for n in nodes)
    if reference_columns is not None and calls_endpoint:
        files["reference/profile.json"] = _json(profile_tables(reference_columns, rows))
    if reference_columns is not None and not calls_endpoint:
        executor = Executor(files)
        # What the pipeline returns for the reference rows is the baseline of prediction drift.
        outputs = executor.run_arrays(reference_columns)
        files["reference/profile.json"] = _json(profile_tables(reference_columns, rows, outputs))
        example = example_input(reference_columns, input_info, rows=min(rows, 5))
        files["reference/example_input.json"] = _json(example)
        files["reference/example_output.json"] = _json(executor.run_dict(example))
    return files


def archive_mtime(files: Mapping[str, bytes]) -> int:
    """The bundle's ``created_at`` as a Unix time: every archive entry carries it.

    So two exports of the same files with the same ``created_at`` are the same bytes.
    """
    created = json.loads(files["metadata.json"])["created_at"]
    return int(_dt.datetime.fromisoformat(created).timestamp())


def _requirements(dict_versions: dict[str, Any], spark_versions: dict[str, Any]) -> bytes:
    """requirements.txt: what python_dict needs, pinned; what only Spark adds, commented out."""
    needed = dict_versions["packages"]
    spark_only = {p: v for p, v in spark_versions["packages"].items() if p not in needed}
    lines = [
        "# Pinned by Shipyard from the build host: what python_dict.main needs.",
        *(f"{p}=={v}" for p, v in sorted(needed.items())),
        "# pyspark_dataframe.main needs these too (a Spark cluster usually provides them):",
        *(f"# {p}=={v}" for p, v in sorted(spark_only.items())),
    ]
    return ("\n".join(lines) + "\n").encode()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
