"""Virtual environments that stand for production hosts, built once per test session.

``stdlib_python`` has nothing but the standard library (no pip even); ``sklearn_python``
has only what the demo bundle's requirements name (numpy, scikit-learn, skops and their
dependencies), at the versions of the environment running the tests, and no Shipyard.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

# What the demo bundle needs, pinned to what built it, so no VersionMismatchWarning is due.
SKLEARN_HOST_PACKAGES = ("numpy", "scikit-learn", "skops", "scipy", "joblib", "threadpoolctl")


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
def sklearn_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with numpy, scikit-learn and skops (as in the test environment), no Shipyard."""
    python = _venv(tmp_path_factory.mktemp("venv-sklearn"), with_pip=True)
    pins = [f"{name}=={metadata.version(name)}" for name in SKLEARN_HOST_PACKAGES]
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *pins],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"pip could not install {' '.join(pins)}:\n{result.stderr[-3000:]}")
    return python
