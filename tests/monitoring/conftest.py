"""Monitoring fixtures: the loan pipeline's bundles (v1, and a challenger v2) in a registry.

The registry is SQLite in the test's folder: monitoring reads and writes it through the
same operations as every other caller, which the registry's own tests run on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.registry import LocalStore, Registry, create_engine, migrate
from shipyard.serving import ModelRunner

from . import _data
from ._webhook import receiver  # noqa: F401  (a fixture: a loopback webhook)


@pytest.fixture(scope="session")
def loan_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v1 (the model) and v2 (the cautious challenger), exported with reference data."""
    folder = tmp_path_factory.mktemp("loan-bundles")
    reference = _data.reference()
    return {
        "v1": _data.pipeline("1.0.0").export(folder, reference=reference),
        "v2": _data.pipeline("1.1.0", _data.cautious_score).export(folder, reference=reference),
    }


@pytest.fixture()
def monitored(tmp_path: Path, loan_bundles: dict[str, Path]) -> Registry:
    """Project 'demo' with loan_risk v1 and v2 registered and tagged (nothing deployed)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(engine)
    registry = Registry(engine, LocalStore(tmp_path / "store"), actor="monitor")
    registry.create_project("demo")
    for tag in ("v1", "v2"):
        version = registry.register_model("demo", loan_bundles[tag])
        registry.tag("demo", version.model, version.version_id)
    return registry


@pytest.fixture(scope="session")
def loan_runners(loan_bundles: dict[str, Path]) -> dict[str, ModelRunner]:
    """Each bundle loaded for serving, answering as its tag."""
    runners = {}
    for tag, path in loan_bundles.items():
        loaded = ModelRunner.from_bundle(path)
        runners[tag] = ModelRunner(loaded.executor, "loan_risk", tag)
    return runners


@pytest.fixture()
def capture_dir(tmp_path: Path) -> Path:
    """Where the test's captured requests go (as serving's capture folder of an environment)."""
    return tmp_path / "capture"
