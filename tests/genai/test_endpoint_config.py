"""The llm endpoint from an environment's config: serve and batch of a deployed version call
the endpoint its ``llm`` entry names, with a key the config only points to, never holds.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from shipyard.errors import InvalidInput, PermissionDenied, UsageError
from shipyard.registry import Registry, llm_endpoint
from tests.cli.test_cli import run_cli
from tests.serving._hold import wait_until
from tests.serving.conftest import predict_path, serve_process

from ._loans import APPLICATIONS, EXPECTED, underwriter
from ._openai_stub import OpenAIStub
from .conftest import API_KEY, registry_env

pytestmark = pytest.mark.integration

KEY_VARIABLE = "SHIPYARD_LLM_KEY_UAT"
UAT = ["--project", "loans", "--env", "uat", "--poll-ms", "100"]
PREDICT = predict_path("loan_advice", "loans", "uat")
ONE_ROW = {t: {c: v[:1] for c, v in cols.items()} for t, cols in APPLICATIONS.items()}


def llm_config(stub: OpenAIStub, **key: str) -> dict[str, Any]:
    return {"llm": {"base_url": stub.base_url, **(key or {"api_key_env": KEY_VARIABLE})}}


def host_env(database_url: str, tmp_path: Path, **more: str) -> dict[str, str]:
    """A serving host naming no endpoint of its own (SHIPYARD_LLM_BASE_URL left empty)."""
    return {
        **registry_env(database_url, tmp_path),
        "SHIPYARD_LLM_BASE_URL": "",
        "SHIPYARD_LLM_API_KEY": "",
        **more,
    }


# -- what the registry takes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "error", "says"),
    [
        ({"api_key": "sk-pasted-secret"}, InvalidInput, "llm.api_key would store a key"),
        ({"api_key_env": "sk-pasted-secret"}, InvalidInput, "beginning SHIPYARD_LLM_"),
        ({"api_key_env": "AWS_SECRET_ACCESS_KEY"}, InvalidInput, "beginning SHIPYARD_LLM_"),
        ({"api_key_file": "../../.ssh/id_ed25519"}, PermissionDenied, "outside the secrets root"),
        ({"api_key_env": KEY_VARIABLE, "api_key_file": "k"}, InvalidInput, "not both"),
        ({"model": "gpt"}, InvalidInput, "llm.model is not a setting"),
        ({"concurrency": 0}, InvalidInput, "whole number >= 1"),
    ],
)
def test_the_registry_refuses_a_key_in_the_config_or_one_it_cannot_hold_to_the_rules(
    loans: Registry, entry: dict[str, Any], error: type[Exception], says: str
) -> None:
    config = {"llm": {"base_url": "http://127.0.0.1:9/v1", **entry}}
    with pytest.raises(error, match=says) as caught:
        loans.set_environment_config("loans", "uat", config)
    assert "sk-pasted-secret" not in str(caught.value)
    assert loans.get_environment_config("loans", "uat") == {}


@pytest.mark.parametrize(
    "base_url",
    ["http://user:sk-pasted-secret@llm.internal/v1", "ftp://llm/v1", "http://llm/v1?key=sk-x"],
)
def test_a_base_url_with_credentials_or_not_http_is_refused_without_echoing_it(
    loans: Registry, base_url: str
) -> None:
    with pytest.raises(InvalidInput, match="without credentials, query or fragment") as caught:
        loans.set_environment_config("loans", "uat", {"llm": {"base_url": base_url}})
    assert "sk-" not in str(caught.value)


def test_env_config_set_takes_dotted_keys_and_refuses_a_raw_key_without_printing_it(
    loans: Registry,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in registry_env(database_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    at = ("--project", "loans", "--env", "uat")
    code, _, err = run_cli(capsys, "env", "config", "set", "llm.api_key=sk-pasted-secret", *at)
    assert code == 2 and "llm.api_key would store a key" in err and "sk-pasted" not in err
    code, _, err = run_cli(
        capsys,
        "env",
        "config",
        "set",
        "llm.base_url=http://127.0.0.1:9/v1",
        f"llm.api_key_env={KEY_VARIABLE}",
        "reports=s3://reports/uat",
        *at,
    )
    assert code == 0, err
    code, out, _ = run_cli(capsys, "env", "config", "get", *at, "--json")
    assert json.loads(out) == {
        "llm": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_VARIABLE},
        "reports": "s3://reports/uat",
    }
    # A dotted key changes one key of the mapping and keeps the others.
    run_cli(capsys, "env", "config", "set", "llm.concurrency=2", *at)
    assert loans.get_environment_config("loans", "uat")["llm"] == {
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": KEY_VARIABLE,
        "concurrency": 2,
    }


# -- which endpoint a host calls ---------------------------------------------------------


def test_the_hosts_own_endpoint_wins_over_the_config_whole(tmp_path: Path) -> None:
    config = {"llm": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": KEY_VARIABLE}}
    key = "sk-from-the-named-variable"
    host = {"SHIPYARD_LLM_BASE_URL": "http://127.0.0.1:8/v1", KEY_VARIABLE: key}
    assert llm_endpoint(config, host) is None  # the runtime reads the host's variables
    endpoint = llm_endpoint(config, {KEY_VARIABLE: key, "SHIPYARD_LLM_API_KEY": "host-key"})
    assert endpoint is not None and endpoint.base_url == "http://127.0.0.1:9/v1"
    assert endpoint.key() == key  # the config's key, never the host's SHIPYARD_LLM_API_KEY
    assert key not in repr(endpoint)
    assert llm_endpoint({}, {}) is None
    with pytest.raises(UsageError, match=f"names {KEY_VARIABLE}, which is not set"):
        llm_endpoint(config, {})


def test_serve_calls_the_endpoint_the_environment_config_names_with_the_key_it_points_to(
    loans: Registry, database_url: str, tmp_path: Path, stub: OpenAIStub
) -> None:
    loans.set_environment_config("loans", "uat", llm_config(stub))
    env = host_env(database_url, tmp_path, **{KEY_VARIABLE: API_KEY})
    with serve_process(UAT, env) as (base, process):
        response = httpx.post(base + PREDICT, json=APPLICATIONS, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["decision"]["values"] == EXPECTED
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        output = process.stdout.read()
    assert {s.headers["Authorization"] for s in stub.chat_requests()} == {f"Bearer {API_KEY}"}
    assert API_KEY not in output


def test_a_key_file_is_read_at_each_call_so_a_rotated_key_needs_no_restart(
    loans: Registry, database_url: str, tmp_path: Path, stub: OpenAIStub
) -> None:
    secrets = tmp_path / "secrets"
    (secrets / "uat").mkdir(parents=True)
    key_file = secrets / "uat" / "llm.key"
    key_file.write_text("sk-an-old-key\n")
    loans.set_environment_config("loans", "uat", llm_config(stub, api_key_file="uat/llm.key"))
    env = host_env(database_url, tmp_path, SHIPYARD_SECRETS_ROOT=str(secrets))
    with serve_process(UAT, env) as (base, _):
        refused = httpx.post(base + PREDICT, json=ONE_ROW, timeout=60)
        assert refused.status_code == 502 and refused.json()["reason"] == "answered 401"
        key_file.write_text(API_KEY + "\n")  # the secret rotates under the running server
        answered = httpx.post(base + PREDICT, json=ONE_ROW, timeout=60)
        assert answered.status_code == 200, answered.text
    assert "sk-an-old-key" not in refused.text


def test_a_new_revision_moves_a_running_server_to_the_endpoint_its_config_names(
    loans: Registry, database_url: str, tmp_path: Path, stub: OpenAIStub
) -> None:
    loans.set_environment_config("loans", "uat", llm_config(stub))
    env = host_env(database_url, tmp_path, **{KEY_VARIABLE: API_KEY})
    with OpenAIStub(api_key=API_KEY, answer=underwriter) as other:
        with serve_process(UAT, env) as (base, _):
            assert httpx.post(base + PREDICT, json=ONE_ROW, timeout=60).status_code == 200
            revision = loans.set_environment_config("loans", "uat", llm_config(other)).number
            wait_until(
                lambda: httpx.get(base + "/health").json()["revision"] == revision,
                "serving follows the new revision",
            )
            assert httpx.post(base + PREDICT, json=ONE_ROW, timeout=60).status_code == 200
        assert (len(stub.chat_requests()), len(other.chat_requests())) == (1, 1)


def test_a_host_that_names_its_endpoint_keeps_it_whatever_the_config_says(
    loans: Registry, database_url: str, tmp_path: Path, stub: OpenAIStub
) -> None:
    with OpenAIStub(api_key="sk-pinned-by-the-operator", answer=underwriter) as pinned:
        loans.set_environment_config("loans", "uat", llm_config(stub))
        env = host_env(
            database_url,
            tmp_path,
            SHIPYARD_LLM_BASE_URL=pinned.base_url,
            SHIPYARD_LLM_API_KEY="sk-pinned-by-the-operator",
            **{KEY_VARIABLE: API_KEY},
        )
        with serve_process(UAT, env) as (base, process):
            assert httpx.post(base + PREDICT, json=ONE_ROW, timeout=60).status_code == 200
            process.send_signal(signal.SIGTERM)
            process.wait(30)
            output = process.stdout.read()
        assert (len(pinned.chat_requests()), len(stub.chat_requests())) == (1, 0)
    assert "SHIPYARD_LLM_BASE_URL is set on this host and wins" in output


def test_batch_of_a_deployed_version_calls_the_endpoint_the_config_names(
    loans: Registry,
    database_url: str,
    tmp_path: Path,
    stub: OpenAIStub,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    loans.set_environment_config("loans", "uat", llm_config(stub))
    for name, value in host_env(database_url, tmp_path, **{KEY_VARIABLE: API_KEY}).items():
        monkeypatch.setenv(name, value)
    columns = APPLICATIONS["applications"]
    source = tmp_path / "applications.jsonl"
    rows = [dict(zip(columns, v, strict=True)) for v in zip(*columns.values(), strict=True)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "decisions.parquet"
    code, out, err = run_cli(
        capsys,
        *("batch", "run", "--project", "loans", "--env", "uat", "--model", "loan_advice"),
        *("--input", str(source), "--output", str(output), "--json"),
    )
    assert code == 0, err
    assert pq.read_table(output).column("decision").to_pylist() == EXPECTED
    assert len(stub.chat_requests()) == 4 and API_KEY not in out + err
