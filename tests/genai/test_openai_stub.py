"""The loopback stub speaks the real protocol: the official ``openai`` client reads it.

If the stub drifted from what OpenAI-compatible servers send, the runtime's tests against
it would prove nothing; these tests hold it to the client everyone uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import openai
import pytest

from ._openai_stub import MODEL, OpenAIStub

pytestmark = pytest.mark.integration

KEY = "sk-stub"
MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What does the policy say about payslips?"},
]


@pytest.fixture()
def client() -> Iterator[openai.OpenAI]:
    with OpenAIStub(api_key=KEY) as stub:
        yield openai.OpenAI(base_url=stub.base_url, api_key=KEY, max_retries=0, timeout=10)


def _answer(client: openai.OpenAI, **settings: object) -> str:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, **settings)  # type: ignore[call-overload]
    return str(completion.choices[0].message.content)


def test_a_chat_completion_reads_as_one_with_its_model_usage_and_finish_reason(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=1)  # type: ignore[arg-type]
    assert completion.model == MODEL
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    words = str(completion.choices[0].message.content).split()
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(words) > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + len(words)


def test_the_same_messages_and_seed_give_the_same_answer_and_other_seeds_other_answers(
    client: openai.OpenAI,
) -> None:
    first = _answer(client, seed=11, temperature=1.5)
    assert _answer(client, seed=11, temperature=1.5) == first
    others = {_answer(client, seed=seed, temperature=1.5) for seed in range(12, 18)}
    assert others - {first}


def test_temperature_zero_and_top_k_one_take_the_best_word_whatever_the_seed(
    client: openai.OpenAI,
) -> None:
    greedy = {_answer(client, seed=seed, temperature=0) for seed in (1, 2, 3)}
    assert len(greedy) == 1
    top_one = _answer(client, seed=5, temperature=1.5, extra_body={"top_k": 1})
    assert top_one == greedy.pop()


def test_max_tokens_cuts_the_answer_and_says_so(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        seed=3,
        max_tokens=3,
    )
    assert len(str(completion.choices[0].message.content).split()) == 3
    assert completion.choices[0].finish_reason == "length"


def test_a_streamed_answer_is_the_plain_answer_in_pieces_with_its_usage_at_the_end(
    client: openai.OpenAI,
) -> None:
    plain = _answer(client, seed=9, temperature=0.7)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,  # type: ignore[arg-type]
        seed=9,
        temperature=0.7,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == plain
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == len(plain.split())


def test_embeddings_are_unit_vectors_that_depend_only_on_the_text(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="stub-embed-1", input=["payslips", "tax returns"])
    first, second = (item.embedding for item in result.data)
    assert len(first) == len(second) == 8
    assert math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-5)
    again = client.embeddings.create(model="stub-embed-1", input="payslips").data[0].embedding
    assert again == pytest.approx(first, abs=1e-6)
    assert first != pytest.approx(second, abs=1e-3)


def test_the_models_route_lists_the_chat_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_a_wrong_key_is_refused_as_the_client_expects() -> None:
    with OpenAIStub(api_key=KEY) as stub:
        wrong = openai.OpenAI(base_url=stub.base_url, api_key="sk-other", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
