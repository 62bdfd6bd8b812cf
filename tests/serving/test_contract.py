"""The served OpenAPI document is a contract: schemathesis holds every operation to it.

A bounded, seeded schemathesis run (its engine, as ``st run`` drives it) over real HTTP:
the toy models (a float table; strings, ints and lists) served as ``shipyard serve``
serves them, both together and one alone (where MLflow's ``/invocations`` scores it),
every operation of their /openapi.json driven with its examples, the coverage phase's
boundary and invalid values, and a few fuzzed cases. Whatever is sent, the server
answers no 5xx, and each answer has a status, content type, headers and body its
operation documents; every form of a predict or ``/invocations`` body the document
names (its ``oneOf``) is sent and answered 200. The demo model is left out: its
scikit-learn pipeline overflows on floats near 1e308, which its schema allows (a model
failing is a 500 by design); so is the fragile model, which fails on purpose.

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


@pytest.fixture(scope="module")
def one_model_server(toy_runners: dict[str, ModelRunner]) -> Iterator[str]:
    """The tensors model alone: /invocations scores it."""
    app = ServingApp(bundle_table([toy_runners["tensors"]]), seed=1)
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


@pytest.mark.parametrize("served", ["contract_server", "one_model_server"])
def test_every_operation_keeps_to_its_documented_contract(
    served: str, request: pytest.FixtureRequest
) -> None:
    base = request.getfixturevalue(served)
    document = httpx.get(f"{base}/openapi.json", timeout=30).json()
    validate(document)
    schema = schemathesis.openapi.from_dict(document, config=_config(base))
    statuses: Counter[int] = Counter()
    tested: set[str] = set()
    broken: list[str] = []
    scoring = {  # the routes that score: every predict, and /invocations when it can
        f"POST {path}"
        for path, item in document["paths"].items()
        if "200" in item.get("post", {}).get("responses", {})
        and path.endswith(("/predict", "/invocations"))
    }
    answered: dict[str, list[tuple[Any, int]]] = {}  # their bodies sent, with the status
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
                if recorder.label in scoring and body is not NOT_SET:
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
    assert set(answered) == scoring
    for label, sent in answered.items():
        path = label.split(" ", 1)[1]
        forms = _forms(document, path)
        accepted = {t for body, status in sent if status == 200 for t in _matching(forms, body)}
        assert accepted == set(forms), f"{label}: no 200 for {sorted(set(forms) - accepted)}"


def _forms(document: dict[str, Any], path: str) -> dict[str, Draft202012Validator]:
    """A validator of each form (``oneOf`` branch) of the body POSTed to ``path``, by title."""
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


MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MLFLOW_FORMS = {f"MLflow {key}" for key in MLFLOW_KEYS}


def test_invocations_is_documented_with_mlflow_payloads_for_the_one_model(
    one_model_server: str,
) -> None:
    document = httpx.get(f"{one_model_server}/openapi.json", timeout=30).json()
    item = document["paths"]["/invocations"]
    assert set(item) == {"post", "get"}
    assert set(item["get"]["responses"]) == {"405"}
    assert item["get"]["responses"]["405"]["headers"]["Allow"]["schema"] == {"const": "POST"}
    forms = _forms(document, "/invocations")
    assert set(forms) == MLFLOW_FORMS  # MLflow's payloads, nothing else
    examples = item["post"]["requestBody"]["content"]["application/json"]["examples"]
    predict = predict_path("tensor_score")
    typed = httpx.post(
        one_model_server + predict,
        json=document["paths"][predict]["post"]["requestBody"]["content"]["application/json"][
            "examples"
        ]["dict"]["value"],
        timeout=30,
    ).json()
    records = [
        dict(zip(typed, row, strict=True))
        for row in zip(*(o["values"] for o in typed.values()), strict=True)
    ]
    matched = set()
    for name, example in examples.items():
        (form,) = _matching(forms, example["value"])
        matched.add(form)
        answer = httpx.post(one_model_server + "/invocations", json=example["value"], timeout=30)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json() == {"predictions": records}, name
    assert matched == MLFLOW_FORMS
    # The dict format is the predict route's, not MLflow's: documented as a 400, and one.
    dict_body = httpx.post(one_model_server + "/invocations", json=typed, timeout=30)
    assert not any(v.is_valid(typed) for v in forms.values())
    assert dict_body.status_code == 400
    assert "exactly one of dataframe_split" in dict_body.json()["message"]
    refused = httpx.get(one_model_server + "/invocations", timeout=30)
    assert (refused.status_code, refused.headers["allow"]) == (405, "POST")


def test_invocations_with_several_models_is_documented_as_the_400_naming_them(
    contract_server: str,
) -> None:
    document = httpx.get(f"{contract_server}/openapi.json", timeout=30).json()
    responses = document["paths"]["/invocations"]["post"]["responses"]
    assert set(responses) == {"400"}  # no keys here: no 401 either
    assert "frame_total, tensor_score" in responses["400"]["description"]
    answer = httpx.post(contract_server + "/invocations", json={"inputs": [[1]]}, timeout=30)
    assert answer.status_code == 400
    assert "frame_total, tensor_score" in answer.json()["message"]
