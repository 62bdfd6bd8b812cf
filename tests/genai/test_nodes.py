"""GenAI nodes are checked when they are made and when the pipeline is built."""

from __future__ import annotations

from pathlib import Path

import pytest

import shipyard as sy
from shipyard.errors import GraphError

from ._loans import FALLBACK, POLICY, SCHEMA, build

TABLE = sy.Table("t", [sy.Column("question", "string"), sy.Column("amount", "float64")])


def _pipeline(*nodes: sy.pipeline.Node) -> sy.Pipeline:
    return sy.Pipeline("p", "1.0.0", inputs=[TABLE], nodes=list(nodes))


def test_a_template_variable_that_is_not_declared_is_a_graph_error_naming_it() -> None:
    with pytest.raises(GraphError, match="reads 'amount', which is not a declared variable"):
        sy.prompt("ask", "{{ question }} for {{ amount }}", variables={"question": "t.question"})


def test_a_declared_variable_the_template_never_reads_is_a_graph_error() -> None:
    with pytest.raises(GraphError, match="variable 'amount' is declared but the template never"):
        sy.prompt("ask", "{{ question }}", variables=["t.question", "t.amount"])


def test_a_variable_naming_an_unknown_column_fails_when_the_pipeline_is_built() -> None:
    node = sy.prompt("ask", "{{ q }}", variables={"q": "t.missing"})
    with pytest.raises(
        GraphError, match="prompt 'ask' input 'q' refers to unknown column 't.missing'"
    ):
        _pipeline(node)


def test_without_declared_variables_each_is_read_from_the_column_of_its_name() -> None:
    node = sy.prompt("ask", {"system": "Be brief.", "user": "{{ question }} ({{ amount }})"})
    pipeline = _pipeline(node)
    assert pipeline.references("ask") == ["t.amount", "t.question"]
    out = pipeline.run({"t": {"question": ["why?"], "amount": [2.5]}})
    assert out["ask"]["values"] == [
        '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "why? (2.5)"}]'
    ]


def test_a_template_that_does_not_compile_is_a_graph_error_naming_the_message() -> None:
    with pytest.raises(GraphError, match="prompt 'ask': the user template does not compile"):
        sy.prompt("ask", {"user": "{% if question %}open"})


def test_templates_render_in_a_sandbox_that_refuses_unsafe_attributes() -> None:
    node = sy.prompt("ask", "{{ question.__class__.__mro__ }}")
    pipeline = _pipeline(node)
    with pytest.raises(sy.errors.ModelError, match="prompt 'ask' failed: .*unsafe"):
        pipeline.run({"t": {"question": ["x"], "amount": [1.0]}})


def test_llm_settings_out_of_range_are_graph_errors_naming_the_setting() -> None:
    for option, value, message in [
        ("temperature", 3.0, "temperature must lie in"),
        ("top_k", 0, "top_k must lie in"),
        ("seed", 1.5, "seed must be a whole number"),
        ("max_tokens", True, "max_tokens must be a whole number"),
        ("on_error", "ignore", "on_error must be raise or null"),
        ("response_format", {"type": "yaml"}, "response_format must be"),
        ("stop", [""], "stop is up to 4 non-empty strings"),
    ]:
        with pytest.raises(GraphError, match=f"llm 'answer': {message}"):
            sy.llm("answer", prompt="ask", model="m", **{option: value})


def test_an_llm_reading_a_number_is_a_type_clash() -> None:
    with pytest.raises(GraphError, match="llm 'answer' input 'prompt' is float64, not string"):
        _pipeline(sy.llm("answer", prompt="t.amount", model="m"))


def test_a_retrieve_node_must_name_a_knowledge_node() -> None:
    with pytest.raises(GraphError, match="reads 'policy', which is not a knowledge node"):
        _pipeline(sy.retrieve("passages", knowledge="policy", query="t.question"))


def test_knowledge_is_documents_not_a_column_nor_an_output() -> None:
    policy = sy.knowledge("policy", files=[POLICY])
    with pytest.raises(GraphError, match="refers to knowledge 'policy', which is documents"):
        _pipeline(policy, sy.llm("answer", prompt="policy", model="m"))
    pipeline = _pipeline(policy, sy.retrieve("passages", knowledge="policy", query="t.question"))
    assert pipeline.outputs == ["passages"]
    assert pipeline.run_order() == ["policy", "passages"]
    with pytest.raises(GraphError, match="output 'policy' is a knowledge node"):
        pipeline.set_outputs("policy")


def test_knowledge_files_must_exist_and_be_text(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="knowledge 'policy': cannot read"):
        sy.knowledge("policy", files=[tmp_path / "absent.md"])
    binary = tmp_path / "scan.pdf"
    binary.write_bytes(b"%PDF\xff\xfe")
    with pytest.raises(GraphError, match="is not UTF-8 text"):
        sy.knowledge("policy", files=[binary])


def test_a_schema_keyword_the_checker_does_not_know_is_refused() -> None:
    with pytest.raises(GraphError, match=r"schema \$ uses 'oneOf'"):
        sy.parse_answer("checked", answer="a", schema={"oneOf": []}, fallback=None)


def test_a_fallback_that_does_not_fit_the_schema_is_refused() -> None:
    with pytest.raises(GraphError, match=r"the fallback does not fit the schema \(\$.decision"):
        sy.parse_answer(
            "checked", answer="a", schema=SCHEMA, fallback={**FALLBACK, "decision": "x"}
        )


def test_the_bundle_locks_each_genai_part_in_its_own_files_and_never_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPYARD_LLM_BASE_URL", "http://llm.uat.example:9999/v1")
    monkeypatch.setenv("SHIPYARD_LLM_API_KEY", "sk-never-in-a-bundle")
    files = sy.pipeline.compile_files(build(), created_by="test")
    assert files["objects/underwriting/system.jinja"].startswith(b"You are an underwriter.")
    assert b'"seed": 7' in files["objects/answer/llm.json"]
    assert files["objects/policy/files/policy.md"] == POLICY.read_bytes()
    assert {"objects/policy/index.json", "objects/policy/starts.npy"} <= set(files)
    leaked = [p for p, data in files.items() if b"llm.uat.example" in data or b"sk-never" in data]
    assert leaked == []
    assert b"jinja2==" in files["requirements.txt"]
