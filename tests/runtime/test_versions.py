"""A bundle says plainly, once, when the host's libraries differ from those it was built with."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.artifact import sign_files, write_bundle
from shipyard.errors import VersionMismatchWarning
from shipyard.pipeline import compile_files

NUMPY = metadata.version("numpy")
MAJOR, MINOR = NUMPY.split(".")[:2]

Versions = dict[str, Any]


@pytest.fixture(scope="module")
def bundle_files(demo_pipeline: shipyard.Pipeline) -> dict[str, bytes]:
    """The demo bundle's files before hashing (compiled once, copied per bundle)."""
    return compile_files(demo_pipeline, created_by="test")


@pytest.fixture()
def bundle_with(
    bundle_files: dict[str, bytes], demo_pipeline: shipyard.Pipeline, tmp_path: Path
) -> Callable[[Callable[[Versions], None]], Path]:
    """A signed bundle whose python_dict/versions.json was edited before hashing."""

    def build(edit: Callable[[Versions], None]) -> Path:
        files = dict(bundle_files)
        versions = json.loads(files["python_dict/versions.json"])
        edit(versions)
        files["python_dict/versions.json"] = json.dumps(versions).encode()
        target = tmp_path / f"bundle-{len(list(tmp_path.iterdir()))}.tar.gz"
        return write_bundle(
            demo_pipeline.bundle_name, sign_files(files, None), target, 1_700_000_000
        )

    return build


def _set_numpy(version: str) -> Callable[[Versions], None]:
    return lambda versions: versions["packages"].__setitem__("numpy", version)


def test_the_build_host_versions_are_recorded(bundle_files: dict[str, bytes]) -> None:
    versions = json.loads(bundle_files["python_dict/versions.json"])
    assert versions["python"] == platform.python_version()
    assert versions["packages"]["numpy"] == NUMPY
    assert versions["packages"]["scikit-learn"] == metadata.version("scikit-learn")


def test_another_numpy_major_minor_warns_once_naming_both_versions(
    bundle_with: Callable[[Callable[[Versions], None]], Path], demo_rows: dict[str, Any]
) -> None:
    # A version no other test uses: the "once" bookkeeping is per process.
    bundle = bundle_with(_set_numpy("0.1.0"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        artifact = shipyard.Artifact(bundle)
        artifact.run(demo_rows)
        artifact.run(demo_rows)
        shipyard.Artifact(bundle).run(demo_rows)  # the same bundle opened again
    mismatches = [w for w in caught if issubclass(w.category, VersionMismatchWarning)]
    assert len(mismatches) == 1
    message = str(mismatches[0].message)
    assert f"numpy: bundle 0.1.0, here {NUMPY}" in message
    assert "tumour_triage 1.0.0" in message
    assert "scikit-learn" not in message  # only what differs is named


def test_another_python_minor_warns(
    bundle_with: Callable[[Callable[[Versions], None]], Path], demo_rows: dict[str, Any]
) -> None:
    bundle = bundle_with(lambda versions: versions.__setitem__("python", "2.6.9"))
    with pytest.warns(
        VersionMismatchWarning, match=rf"python: bundle 2\.6\.9, here {platform.python_version()}"
    ):
        shipyard.Artifact(bundle).run(demo_rows)


def test_a_missing_library_warns(
    bundle_with: Callable[[Callable[[Versions], None]], Path], demo_rows: dict[str, Any]
) -> None:
    bundle = bundle_with(lambda v: v["packages"].__setitem__("no-such-shipyard-lib", "1.0"))
    with pytest.warns(
        VersionMismatchWarning, match="no-such-shipyard-lib: bundle 1.0, here not installed"
    ):
        shipyard.Artifact(bundle).run(demo_rows)


@pytest.mark.parametrize(
    "edit",
    [
        _set_numpy(f"{MAJOR}.{MINOR}.999"),
        _set_numpy(f"{MAJOR}.{MINOR}"),
        lambda versions: versions.__setitem__(
            "python", f"{sys.version_info[0]}.{sys.version_info[1]}.0"
        ),
    ],
    ids=["numpy-patch", "numpy-no-patch", "python-patch"],
)
def test_a_patch_level_difference_does_not_warn(
    bundle_with: Callable[[Callable[[Versions], None]], Path],
    demo_rows: dict[str, Any],
    edit: Callable[[Versions], None],
) -> None:
    bundle = bundle_with(edit)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VersionMismatchWarning)
        result = shipyard.Artifact(bundle).run(demo_rows)
    assert len(result["p_malignant"]["values"]) == 5


def test_an_extracted_bundle_warns_once_at_import(
    bundle_with: Callable[[Callable[[Versions], None]], Path], tmp_path: Path
) -> None:
    bundle = bundle_with(_set_numpy("0.2.0"))
    shipyard.Artifact(bundle).extract(None, tmp_path)
    package = "tumour_triage_1_0_0"
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        f"import {package}.python_dict\n"
        "import importlib\n"
        f"importlib.import_module('{package}.python_dict')\n"  # cached: no second warning
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SHIPYARD_PUBLIC_KEY")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("VersionMismatchWarning") == 1
    assert f"numpy: bundle 0.2.0, here {NUMPY}" in result.stderr
