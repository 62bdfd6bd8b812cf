"""A GenAI bundle served by ``shipyard serve`` on loopback, in front of the loopback endpoint:
what a client sees when the language model fails, and what the server keeps of each call.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.registry import Registry
from shipyard.runtime._llm import prompt_hash
from shipyard.serving import (
    Capture,
    Metrics,
    ModelRoute,
    ModelRunner,
    ParquetFolder,
    RouteTable,
    ServingApp,
)
from tests.serving._hold import wait_until
from tests.serving.conftest import live_server, predict_path, serve_process

from ._loans import APPLICATIONS, EXPECTED, build
from ._openai_stub import OpenAIStub
from .conftest import API_KEY, registry_env

pytestmark = pytest.mark.integration

ONE_ROW = {t: {c: v[:1] for c, v in cols.items()} for t, cols in APPLICATIONS.items()}
INFER = "/v2/models/loan_advice/infer"


@pytest.fixture(scope="module")
def quick_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The loan pipeline giving up sooner: a 1 s timeout and one retry (two attempts)."""
    folder = tmp_path_factory.mktemp("quick")
    return build("1.0.1", timeout=1.0, retries=1).export(folder, created_by="test")


@pytest.fixture()
def served(quick_bundle: Path, stub: OpenAIStub, tmp_path: Path) -> Iterator[str]:
    """``shipyard serve --bundle`` of ``quick_bundle``, its endpoint the stub; its base URL."""
    env = {
        "SHIPYARD_LLM_BASE_URL": stub.base_url,
        "SHIPYARD_LLM_API_KEY": API_KEY,
        "SHIPYARD_HOME": str(tmp_path / "home"),
    }
    with serve_process(["--bundle", str(quick_bundle)], env) as (base, _):
        yield base


def _infer_body(data: dict[str, Any]) -> dict[str, Any]:
    columns = data["applications"]
    inputs = []
    for name, values in columns.items():
        kind = "FP64" if isinstance(values[0], float) else "BYTES"
        inputs.append({"name": name, "shape": [len(values)], "datatype": kind, "data": values})
    return {"inputs": inputs}


@pytest.mark.parametrize(
    ("fault", "times", "reason"),
    [
        ("500", 2, "answered 500 (2 attempts)"),
        ("hang", 2, "did not answer within 1 s (2 attempts)"),
        ("malformed", 1, "sent something that is not a chat completion"),
    ],
)
def test_a_failing_endpoint_is_a_bad_gateway_naming_the_node_and_no_secret(
    served: str, stub: OpenAIStub, fault: str, times: int, reason: str
) -> None:
    stub.fail_next(fault, times=times)
    response = httpx.post(served + predict_path("loan_advice"), json=ONE_ROW, timeout=60)
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "EndpointError"
    assert body["node"] == "answer" and body["reason"] == reason
    assert body["message"] == f"llm 'answer' failed: its language model endpoint {reason}"
    # The endpoint's address and key are the server's business, not the client's.
    assert stub.base_url not in response.text and API_KEY not in response.text
    assert response.headers["x-request-id"] == body["request_id"]
    # The endpoint is back: the same server answers the next request.
    again = httpx.post(served + predict_path("loan_advice"), json=ONE_ROW, timeout=60)
    assert again.status_code == 200 and again.json()["decision"]["values"] == EXPECTED[:1]


def test_the_inference_protocol_route_answers_a_bad_gateway_in_its_own_style(
    served: str, stub: OpenAIStub
) -> None:
    stub.fail_next("429", retry_after="3600")  # longer than a minute: given up at once
    response = httpx.post(served + INFER, json=_infer_body(ONE_ROW), timeout=60)
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["kind"] == "EndpointError" and body["node"] == "answer"
    assert body["error"].startswith("llm 'answer' failed: its language model endpoint answered 429")
    assert len(stub.chat_requests()) == 1


# -- what serving keeps of each call ----------------------------------------------------


UAT = ["--project", "loans", "--env", "uat", "--poll-ms", "100"]


def call_records(home: Path) -> list[dict[str, Any]]:
    folder = home / "capture" / "loans" / "uat" / "loan_advice" / "v1"
    return [
        json.loads(line)
        for path in sorted(folder.glob("*.llm_calls.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_serving_keeps_every_llm_call_and_the_prompt_only_when_the_config_allows_it(
    loans: Registry, database_url: str, tmp_path: Path, stub: OpenAIStub
) -> None:
    env = {
        **registry_env(database_url, tmp_path),
        "SHIPYARD_LLM_BASE_URL": stub.base_url,
        "SHIPYARD_LLM_API_KEY": API_KEY,
    }
    predict = predict_path("loan_advice", "loans", "uat")
    with serve_process(UAT, env) as (base, process):
        first = httpx.post(base + predict, json=APPLICATIONS, timeout=60)
        assert first.status_code == 200, first.text
        revision = loans.set_environment_config(
            "loans", "uat", {"capture": {"llm_prompts": True}}
        ).number
        wait_until(
            lambda: httpx.get(base + "/health").json()["revision"] == revision,
            "serving follows the new revision",
        )
        second = httpx.post(base + predict, json=ONE_ROW, timeout=60)
        assert second.status_code == 200, second.text
        stub.fail_next("500", times=3)
        failed = httpx.post(base + predict, json=ONE_ROW, timeout=60)
        assert failed.status_code == 502, failed.text
        process.send_signal(signal.SIGTERM)  # draining writes what capture holds
        assert process.wait(30) == -signal.SIGTERM
        output = process.stdout.read()
    records = call_records(tmp_path / "home")
    by_request: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_request.setdefault(record["request_id"], []).append(record)
    ids = [r.headers["x-request-id"] for r in (first, second, failed)]
    assert sorted(by_request) == sorted(ids)
    # Every call of the first request, sampled or not (capture.rate is 0): no prompt text.
    kept = sorted(by_request[ids[0]], key=lambda r: r["row"])
    assert [r["row"] for r in kept] == [0, 1, 2, 3]
    assert [json.loads(r["answer"])["decision"] for r in kept] == EXPECTED
    for record in kept:
        assert record["version"] == "v1" and record["role"] == "live"
        assert record["node"] == "answer" and record["model"] == "stub-chat-1"
        assert record["settings"]["seed"] == 7 and record["settings"]["top_k"] == 1
        assert record["usage"]["total_tokens"] > 0 and record["latency_ms"] >= 0
        assert record["prompt"] is None and len(record["prompt_sha256"]) == 64
    # The hash names the messages the endpoint was sent.
    sent = {prompt_hash(s.body["messages"]) for s in stub.chat_requests()}
    assert {r["prompt_sha256"] for r in kept} <= sent
    # Once the config allows it, the rendered prompt is kept with its hash.
    (shown,) = by_request[ids[1]]
    assert prompt_hash(shown["prompt"]) == shown["prompt_sha256"]
    assert [m["role"] for m in shown["prompt"]] == ["system", "user"]
    # A failed call is kept with its error, and no answer.
    (broken,) = by_request[ids[2]]
    assert broken["answer"] is None and "answered 500" in broken["error"]
    everything = json.dumps(records) + output
    assert API_KEY not in everything
    # Inputs and outputs are still sampled by capture.rate: 0 here, so none were written.
    assert not list((tmp_path / "home" / "capture").rglob("*.parquet"))


def test_llm_call_records_can_be_turned_off(
    loans: Registry, database_url: str, tmp_path: Path, stub: OpenAIStub
) -> None:
    loans.set_environment_config("loans", "uat", {"capture": {"llm_calls": False}})
    env = {
        **registry_env(database_url, tmp_path),
        "SHIPYARD_LLM_BASE_URL": stub.base_url,
        "SHIPYARD_LLM_API_KEY": API_KEY,
    }
    with serve_process(UAT, env) as (base, process):
        response = httpx.post(
            base + predict_path("loan_advice", "loans", "uat"), json=ONE_ROW, timeout=60
        )
        assert response.status_code == 200, response.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == -signal.SIGTERM
    assert len(stub.chat_requests()) == 1 and call_records(tmp_path / "home") == []


def test_requests_that_wait_on_the_endpoint_do_not_hold_up_each_other(
    loan_bundle: Path, stub: OpenAIStub, tmp_path: Path
) -> None:
    env = {
        "SHIPYARD_LLM_BASE_URL": stub.base_url,
        "SHIPYARD_LLM_API_KEY": API_KEY,
        "SHIPYARD_HOME": str(tmp_path / "home"),
    }
    stub.hold_for = 2  # each answer waits (bounded) until a second call is in flight
    with serve_process(["--bundle", str(loan_bundle)], env) as (base, _):
        predict = base + predict_path("loan_advice")
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda _: httpx.post(predict, json=ONE_ROW, timeout=60), range(2))
            )
    assert [a.status_code for a in answers] == [200, 200]
    # Both calls were at the endpoint at once, each answered the first time: neither
    # request held the event loop while it waited.
    assert stub.max_in_flight == 2 and len(stub.chat_requests()) == 2


def test_a_shadow_versions_llm_calls_are_kept_too(
    loan_bundle: Path, endpoint: OpenAIStub, tmp_path: Path
) -> None:
    live = ModelRunner.from_bundle(loan_bundle, version="v1")
    shadow = ModelRunner(live.executor, live.model, "v2")
    metrics = Metrics()
    capture = Capture(ParquetFolder(tmp_path / "capture"), metrics)  # rate 0: nothing sampled
    route = ModelRoute("loan_advice", (live,), (1.0,), shadow)
    table = RouteTable("local", "local", {"loan_advice": route})
    app = ServingApp(table, metrics=metrics, capture=capture)
    with live_server(app) as base:
        response = httpx.post(base + predict_path("loan_advice"), json=ONE_ROW, timeout=60)
        assert response.status_code == 200, response.text
        wait_until(
            lambda: metrics.shadow.labels("loan_advice", "v2", "ok")._value.get() == 1,
            "the shadow answered its copy",
        )
    # The server stopped: capture wrote what it held.
    request_id = response.headers["x-request-id"]
    for version, role in (("v1", "live"), ("v2", "shadow")):
        (path,) = (tmp_path / "capture" / "loan_advice" / version).glob("*.llm_calls.jsonl")
        (record,) = [json.loads(line) for line in path.read_text().splitlines()]
        assert (record["request_id"], record["role"], record["version"]) == (
            request_id,
            role,
            version,
        )
    assert len(endpoint.chat_requests()) == 2
