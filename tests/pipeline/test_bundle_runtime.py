"""The runtime a bundle carries in ``_runtime/`` is complete: everything it imports is in it.

A new runtime module that the executor imports but the export does not copy would pass
every in-process test (``shipyard.runtime`` is importable there) and break only on a
production host without Shipyard; this catches it at once.
"""

from __future__ import annotations

import ast
import sys
from pathlib import PurePosixPath

import pytest

import shipyard
from shipyard.pipeline import compile_files

# What a bundle's runtime may import when a module is loaded; each flavor's own library
# (sklearn, onnxruntime, pyarrow, pyspark …) is imported inside the function that needs it.
ALLOWED_AT_IMPORT = set(sys.stdlib_module_names) | {"numpy"}


@pytest.fixture(scope="module")
def runtime_files(demo_pipeline: shipyard.Pipeline) -> dict[str, bytes]:
    files = compile_files(demo_pipeline, created_by="test")
    carried = {p: data for p, data in files.items() if p.startswith("_runtime/")}
    assert "_runtime/__init__.py" in carried and "_runtime/_executor.py" in carried
    return carried


def _imports(source: bytes) -> list[tuple[ast.ImportFrom | ast.Import, bool]]:
    """Every import in ``source``, each with whether it runs when the module is loaded."""
    tree = ast.parse(source)
    kinds = (ast.Import, ast.ImportFrom)
    at_load = {id(node) for node in tree.body if isinstance(node, kinds)}
    return [(node, id(node) in at_load) for node in ast.walk(tree) if isinstance(node, kinds)]


def test_every_relative_import_of_the_bundle_runtime_is_a_file_it_carries(
    runtime_files: dict[str, bytes],
) -> None:
    carried = {PurePosixPath(p).stem for p in runtime_files}
    missing = []
    for path, source in sorted(runtime_files.items()):
        for node, _ in _imports(source):
            if not isinstance(node, ast.ImportFrom) or node.level == 0:
                continue
            assert node.level == 1, f"{path} imports from outside _runtime/"
            if node.module is not None:
                wanted = [node.module.split(".")[0]]
            else:  # from . import _manifest
                wanted = [alias.name for alias in node.names]
            missing += [f"{path}: {name}" for name in wanted if name not in carried]
    assert missing == []


def test_the_bundle_runtime_needs_only_the_standard_library_and_numpy_to_import(
    runtime_files: dict[str, bytes],
) -> None:
    foreign = []
    for path, source in sorted(runtime_files.items()):
        for node, at_load in _imports(source):
            if not at_load:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif node.level == 0 and node.module is not None:
                names = [node.module]
            else:
                continue
            foreign += [
                f"{path}: {name}" for name in names if name.split(".")[0] not in ALLOWED_AT_IMPORT
            ]
    assert foreign == []
