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
def registry(engine: Engine, tmp_path: Path) -> Registry:
    """A registry acting as 'alice' with a local artifact store."""
    return Registry(engine, LocalStore(tmp_path / "artifacts"), actor="alice")


@pytest.fixture()
def demo(registry: Registry, bundles: list[Path]) -> Registry:
    """Project 'demo' (integration -> uat -> production) with model tumour_triage v1, v2, v3."""
    registry.create_project("demo")
    for bundle in bundles:
        version = registry.register_model("demo", bundle)
        registry.tag("demo", version.model, version.version_id)
    return registry


MODEL = "tumour_triage"
