"""Registry fixtures: a registry on each backend's fresh database, and project 'demo'.

The databases (SQLite and PostgreSQL) and the bundles come from ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from shipyard.registry import LocalStore, Registry

from ..conftest import BACKENDS, Postgres

__all__ = ["BACKENDS", "MODEL", "Postgres"]  # test_db imports the database helpers from here


@pytest.fixture()
def backend(engine: Engine) -> str:
    """``sqlite`` or ``postgresql``."""
    return engine.dialect.name


@pytest.fixture()
def bare_registry(engine: Engine, tmp_path: Path) -> Registry:
    """A registry acting as 'alice' with a local artifact store, trusting no signing key."""
    return Registry(engine, LocalStore(tmp_path / "artifacts"), actor="alice")


@pytest.fixture()
def registry(bare_registry: Registry, key_pair: tuple[Path, Path]) -> Registry:
    """``bare_registry`` trusting the key that signed the test bundles (as 'test-key'),
    as a team's registry trusts its release key: production takes only signed bundles."""
    bare_registry.trust_key("test-key", key_pair[1].read_text())
    return bare_registry


@pytest.fixture()
def demo(registry: Registry, bundles: list[Path]) -> Registry:
    """Project 'demo' (integration -> uat -> production) with model tumour_triage v1, v2, v3."""
    registry.create_project("demo")
    for bundle in bundles:
        version = registry.register_model("demo", bundle)
        registry.tag("demo", version.model, version.version_id)
    return registry


MODEL = "tumour_triage"
