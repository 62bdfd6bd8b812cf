"""The served OpenAPI document is a contract: schemathesis holds every operation to it.

A bounded, seeded schemathesis run (its engine, as ``st run`` drives it) over real HTTP:
the toy models (a float table; strings, ints and lists) served as ``shipyard serve``
serves them, every operation of their /openapi.json driven with its examples, the
coverage phase's boundary and invalid values, and a few fuzzed cases. Whatever is sent,
the server answers no 5xx, and each answer has a status, content type, headers and body
its operation documents; every form of a predict body the document names (its ``oneOf``)
is sent and answered 200. The demo model is left out: its scikit-learn pipeline overflows
on floats near 1e308, which its schema allows (a model failing is a 500 by design); so is
the fragile model, which fails on purpose.

Run ``st run http://HOST:PORT/openapi.json`` against any server for the full attack.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis.core import NOT_SET
from schemathesis.engine import Status, events, from_schema

from shipyard.serving import ModelRunner, ServingApp, bundle_table

from .conftest import guarded_server, predict_path

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
EXAMPLES = 15  # fuzzed cases per operation, beyond the coverage phase's (about 150 each)


@pytest.fixture(scope="module")
def contract_server(toy_runners: dict[str, ModelRunner]) -> Iterator[str]:
    app = ServingApp(bundle_table([toy_runners["frame"], toy_runners["tensors"]]), seed=1)
    with guarded_server(app) as base:
        yield base


def _config(base: str) -> Any:
    enabled = "\n".join(f"{name}.enabled = true" for name in CHECKS)
    return schemathesis.Config.from_str(
        f"""
seed = 1
base-url = "{base}"
workers = 1
request-timeout = 30
[generation]
max-examples = {EXAMPLES}
deterministic = true
database = "none"
[checks]
enabled = false
{enabled}
"""
    )


def test_every_operation_keeps_to_its_documented_contract(contract_server: str) -> None:
    document = httpx.get(f"{contract_server}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document, config=_config(contract_server))
    statuses: Counter[int] = Counter()
    tested: set[str] = set()
    broken: list[str] = []
    answered: dict[str, list[tuple[Any, int]]] = {}  # predict bodies sent, with their status
    for event in from_schema(schema).execute():
        if isinstance(event, events.NonFatalError | events.FatalError):
            broken.append(f"schemathesis could not run: {event}")
        if not isinstance(event, events.ScenarioFinished) or event.status == Status.SKIP:
            continue
        recorder = event.recorder
        tested.add(recorder.label)
        for case_id, interaction in recorder.interactions.items():
            if interaction.response is not None:
                statuses[interaction.response.status_code] += 1
                body = recorder.cases[case_id].value.body
                if recorder.label.endswith("/predict") and body is not NOT_SET:
                    sent = answered.setdefault(recorder.label, [])
                    sent.append((body, interaction.response.status_code))
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status == Status.FAILURE:
                    case = recorder.cases[case_id].value
                    broken.append(f"{recorder.label}: {check.name}\n    {case.as_curl_command()}")
    operations = {f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item}
    assert operations <= tested, f"untested: {sorted(operations - tested)}"
    assert sum(statuses.values()) > 50 * len(operations), statuses  # the run really ran
    assert not broken, "\n".join(dict.fromkeys(broken))
    assert not [status for status in statuses if status >= 500], statuses
    predicts = {f"POST {path}" for path in document["paths"] if path.endswith("/predict")}
    assert set(answered) == predicts
    for label, sent in answered.items():
        path = label.split(" ", 1)[1]
        forms = _forms(document, path)
        accepted = {t for body, status in sent if status == 200 for t in _matching(forms, body)}
        assert accepted == set(forms), f"{label}: no 200 for {sorted(set(forms) - accepted)}"


def _forms(document: dict[str, Any], path: str) -> dict[str, Draft202012Validator]:
    """A validator of each form (``oneOf`` branch) of the predict body at ``path``, by title."""
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    components = document["components"]
    return {
        form["title"]: Draft202012Validator({**form, "components": components})
        for form in body["schema"]["oneOf"]
    }


def _matching(forms: dict[str, Draft202012Validator], body: Any) -> list[str]:
    return [title for title, validator in forms.items() if validator.is_valid(body)]


@pytest.mark.parametrize("model", ["frame_total", "tensor_score"])
def test_each_example_of_the_predict_body_is_one_form_and_answered_alike(
    contract_server: str, model: str
) -> None:
    document = httpx.get(f"{contract_server}/openapi.json", timeout=30).json()
    validate(document)
    path = predict_path(model)
    examples = document["paths"][path]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    forms = _forms(document, path)
    assert {"records", "dict_records", "columns", "dataframe_records"} <= set(examples)
    typed = httpx.post(contract_server + path, json=examples["dict"]["value"], timeout=30)
    assert typed.status_code == 200, typed.text
    outputs = typed.json()
    records = [
        dict(zip(outputs, row, strict=True))
        for row in zip(*(o["values"] for o in outputs.values()), strict=True)
    ]
    matched: set[str] = set()
    for name, example in examples.items():
        (form,) = _matching(forms, example["value"])  # exactly one form: the oneOf holds
        matched.add(form)
        answer = httpx.post(contract_server + path, json=example["value"], timeout=30)
        assert answer.status_code == 200, (name, answer.text)
        mlflow = form.startswith("MLflow")
        assert answer.json() == ({"predictions": records} if mlflow else outputs), name
    assert matched == set(forms)  # an example of every form
