"""Virtual environments that stand for production hosts, built once per test session.

``stdlib_python`` has nothing but the standard library (no pip even); ``sklearn_python``
has only what the demo bundle's requirements.txt names (installed with ``pip install -r``,
as a production host would) and their dependencies, and no Shipyard.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _venv(directory: Path, with_pip: bool) -> Path:
    command = [sys.executable, "-m", "venv", str(directory)]
    if not with_pip:
        command.append("--without-pip")
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return directory / "bin" / "python"


@pytest.fixture(scope="session")
def stdlib_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with only the standard library: no numpy, no cryptography, no Shipyard."""
    return _venv(tmp_path_factory.mktemp("venv-stdlib"), with_pip=False)


@pytest.fixture(scope="session")
def sklearn_python(tmp_path_factory: pytest.TempPathFactory, signed_bundle: Path) -> Path:
    """A Python with exactly what the demo bundle's requirements.txt pins, and no Shipyard."""
    from shipyard.runtime import Artifact

    python = _venv(tmp_path_factory.mktemp("venv-production"), with_pip=True)
    requirements = tmp_path_factory.mktemp("requirements") / "requirements.txt"
    requirements.write_bytes(Artifact(signed_bundle).files["requirements.txt"])
    pins = ["-r", str(requirements)]
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *pins],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"pip could not install {' '.join(pins)}:\n{result.stderr[-3000:]}")
    return python


@pytest.fixture(scope="session")
def onnx_host_python(tmp_path_factory: pytest.TempPathFactory, onnx_bundle: Path) -> Path:
    """A Python with exactly what the ONNX demo bundle's requirements.txt pins (no scikit-learn)."""
    from shipyard.runtime import Artifact

    python = _venv(tmp_path_factory.mktemp("venv-onnx-host"), with_pip=True)
    requirements = tmp_path_factory.mktemp("onnx-requirements") / "requirements.txt"
    requirements.write_bytes(Artifact(onnx_bundle).files["requirements.txt"])
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(
            f"pip could not install the ONNX bundle's requirements:\n{result.stderr[-3000:]}"
        )
    return python
