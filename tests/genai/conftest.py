"""GenAI fixtures: the loopback OpenAI-compatible stub, the endpoint variables, the bundle.

``loans`` is a registry (SQLite and PostgreSQL) whose project 'loans' runs the bundle in uat.
A test that asks for ``stub`` or ``endpoint`` talks to a real HTTP server on 127.0.0.1
(tests/genai/_openai_stub.py), so its module is marked ``integration`` by hand: the tier
walk of tests/_tiers.py does not see ``http.server`` as outside the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from shipyard.registry import LocalStore, Registry

from ._loans import build, underwriter
from ._openai_stub import OpenAIStub

API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture()
def stub() -> Iterator[OpenAIStub]:
    """The stub answering the underwriting prompt by the policy; it requires ``API_KEY``."""
    with OpenAIStub(api_key=API_KEY, answer=underwriter) as server:
        yield server


@pytest.fixture()
def endpoint(stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch) -> OpenAIStub:
    """The stub, named by SHIPYARD_LLM_BASE_URL and SHIPYARD_LLM_API_KEY as a host would."""
    monkeypatch.setenv("SHIPYARD_LLM_BASE_URL", stub.base_url)
    monkeypatch.setenv("SHIPYARD_LLM_API_KEY", API_KEY)
    return stub


@pytest.fixture(scope="session")
def loan_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GenAI test pipeline exported (no endpoint is needed to export)."""
    return build().export(tmp_path_factory.mktemp("genai"), created_by="test")


@pytest.fixture()
def loans(engine: Engine, tmp_path: Path, loan_bundle: Path) -> Registry:
    """A registry (artifacts in ``tmp_path/artifacts``) whose project 'loans' runs the
    test pipeline as loan_advice v1 in uat."""
    registry = Registry(engine, LocalStore(tmp_path / "artifacts"), actor="alice")
    registry.create_project("loans")
    version = registry.register_model("loans", loan_bundle)
    registry.tag("loans", version.model, version.version_id)
    registry.add_component("loans", "uat", "loan_advice", "v1")
    return registry


def registry_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """What ``shipyard serve`` or ``batch run`` need to open the ``loans`` registry."""
    return {
        "SHIPYARD_DATABASE_URL": database_url,
        "SHIPYARD_ARTIFACT_STORE": str(tmp_path / "artifacts"),
        "SHIPYARD_HOME": str(tmp_path / "home"),
    }
