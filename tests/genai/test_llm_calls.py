"""llm nodes call the endpoint the host names, with the bundle's locked settings, and
survive what endpoints do: rate limits, errors, timeouts, malformed and off-schema answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ModelError
from shipyard.runtime import recorded_calls
from shipyard.runtime._llm import ChatClient, Endpoint, EndpointError

from ._loans import APPLICATIONS, EXPECTED, FALLBACK, build
from ._openai_stub import MODEL, OpenAIStub
from .conftest import API_KEY

pytestmark = pytest.mark.integration

SETTINGS = {"model": MODEL, "seed": 3, "temperature": 0.0, "timeout": 5.0, "retries": 2}
ONE_ROW = {table: {c: v[:1] for c, v in columns.items()} for table, columns in APPLICATIONS.items()}


def _client(stub: OpenAIStub, waits: list[float], **settings: Any) -> ChatClient:
    endpoint = Endpoint(stub.base_url, API_KEY)
    return ChatClient("answer", {**SETTINGS, **settings}, endpoint, sleep=waits.append)


def test_the_pipeline_answers_through_the_endpoint_the_environment_names(
    endpoint: OpenAIStub,
) -> None:
    out = build().run(APPLICATIONS)
    assert out["decision"]["values"] == EXPECTED
    assert all(json.loads(v)["valid"] for v in out["checked"]["values"])


def test_each_call_sends_the_locked_settings_the_key_and_the_rendered_chat(
    endpoint: OpenAIStub,
) -> None:
    build().run(ONE_ROW)
    (seen,) = endpoint.chat_requests()
    body = seen.body
    assert {k: body.get(k) for k in ("model", "seed", "temperature", "top_k", "max_tokens")} == {
        "model": "stub-chat-1",
        "seed": 7,
        "temperature": 0.0,
        "top_k": 1,
        "max_tokens": 64,
    }
    assert body["response_format"] == {"type": "json_object"}
    assert "top_p" not in body and "stop" not in body  # unset settings are the endpoint's
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "debt-to-income ratio 0.20" in body["messages"][1]["content"]
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"


def test_a_429_is_retried_after_what_retry_after_asks(stub: OpenAIStub) -> None:
    waits: list[float] = []
    stub.fail_next("429", retry_after="2")
    with recorded_calls() as calls:
        answers = _client(stub, waits)(["hello"])
    assert answers[0] and waits == [2.0]
    assert calls[0]["attempts"] == 2


def test_server_errors_are_retried_with_a_growing_backoff_then_answered(stub: OpenAIStub) -> None:
    waits: list[float] = []
    stub.fail_next("500", times=2)
    assert _client(stub, waits)(["hello"])[0]
    assert waits == [0.5, 1.0]
    assert len(stub.chat_requests()) == 3


def test_retries_are_bounded_and_the_error_names_the_node_and_the_endpoint(
    endpoint: OpenAIStub,
) -> None:
    endpoint.fail_next("500", times=3)
    pipeline = build()  # retries=2: three attempts in all
    with pytest.raises(ModelError) as caught:
        pipeline.run(ONE_ROW)
    message = str(caught.value)
    assert message.startswith("llm 'answer' failed: EndpointError: ")
    assert f"{endpoint.base_url}/chat/completions answered 500" in message
    assert "3 attempts" in message and API_KEY not in message


def test_a_retry_after_longer_than_a_minute_fails_at_once(stub: OpenAIStub) -> None:
    waits: list[float] = []
    stub.fail_next("429", retry_after="3600")
    with pytest.raises(EndpointError, match="asks to retry after 3600 s"):
        _client(stub, waits)(["hello"])
    assert waits == []


def test_an_endpoint_that_does_not_answer_in_time_fails_after_its_retries(stub: OpenAIStub) -> None:
    waits: list[float] = []
    stub.fail_next("hang", times=2)
    with pytest.raises(EndpointError, match=r"did not answer within 0.2 s; 2 attempts"):
        _client(stub, waits, timeout=0.2, retries=1)(["hello"])
    assert waits == [0.5]


def test_a_body_that_is_not_json_is_an_error_and_not_retried(stub: OpenAIStub) -> None:
    stub.fail_next("malformed")
    with pytest.raises(EndpointError, match="sent something that is not a chat completion"):
        _client(stub, [])(["hello"])
    assert len(stub.chat_requests()) == 1


def test_an_answer_that_fails_the_schema_takes_the_fallback_and_says_why(
    endpoint: OpenAIStub,
) -> None:
    endpoint.fail_next("text", text='{"decision": "maybe", "reason": "unsure"}')
    out = build().run(ONE_ROW)
    checked = json.loads(out["checked"]["values"][0])
    assert checked == {
        "valid": False,
        "value": FALLBACK,
        "error": '$.decision: "maybe" is not one of ["approve", "refer", "decline"]',
    }
    assert out["decision"]["values"] == ["refer"]


def test_with_on_error_null_a_failed_call_becomes_the_fallback_instead_of_an_error(
    endpoint: OpenAIStub,
) -> None:
    endpoint.fail_next("500", times=1)
    out = build(retries=0, on_error="null").run(ONE_ROW)
    assert json.loads(out["checked"]["values"][0]) == {
        "valid": False,
        "value": FALLBACK,
        "error": "no answer",
    }


def test_without_an_endpoint_the_error_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SHIPYARD_LLM_BASE_URL", raising=False)
    with pytest.raises(ModelError, match="no endpoint configured: set SHIPYARD_LLM_BASE_URL"):
        build().run(ONE_ROW)


def test_every_call_is_recorded_for_audit_without_the_key(endpoint: OpenAIStub) -> None:
    with recorded_calls() as calls:
        build().run(APPLICATIONS)
    assert sorted(c["row"] for c in calls) == [0, 1, 2, 3]
    call = next(c for c in calls if c["row"] == 0)
    assert call["model"] == MODEL and call["finish_reason"] == "stop"
    assert call["settings"]["seed"] == 7 and call["endpoint"] == endpoint.base_url
    assert len(call["prompt_sha256"]) == 64 and call["prompt"][0]["role"] == "system"
    assert call["usage"]["completion_tokens"] > 0 and call["latency_ms"] >= 0
    assert json.loads(call["answer"])["decision"] == "approve"
    assert API_KEY not in json.dumps(calls)


def test_a_node_keeps_at_most_the_configured_calls_in_flight(
    endpoint: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_LLM_CONCURRENCY", "2")
    endpoint.hold_for = 2  # each answer waits for a second call to arrive
    rows = {"applications": {c: v * 3 for c, v in APPLICATIONS["applications"].items()}}
    out = build().run(rows)
    assert out["decision"]["values"] == EXPECTED * 3
    assert endpoint.max_in_flight == 2


def test_the_key_can_come_from_a_file_the_host_names(
    stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "llm.key"
    key_file.write_text(API_KEY + "\n")
    monkeypatch.setenv("SHIPYARD_LLM_BASE_URL", stub.base_url)
    monkeypatch.delenv("SHIPYARD_LLM_API_KEY", raising=False)
    monkeypatch.setenv("SHIPYARD_LLM_API_KEY_FILE", str(key_file))
    assert build().run(ONE_ROW)["decision"]["values"] == EXPECTED[:1]
    assert stub.chat_requests()[0].headers["Authorization"] == f"Bearer {API_KEY}"
    key_file.unlink()
    with pytest.raises(EndpointError, match="llm.key cannot be read") as caught:
        build().run(ONE_ROW)
    assert caught.value.reason == "has an API key file that cannot be read"
    monkeypatch.setenv("SHIPYARD_LLM_API_KEY", API_KEY)
    with pytest.raises(ModelError, match="not both"):
        build().run(ONE_ROW)
