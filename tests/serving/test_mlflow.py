"""MLflow's documented scoring payloads, sent as-is to our predict route.

The bodies are the examples of MLflow's "Deploy MLflow models" documentation (the
scoring server's dataframe_split, dataframe_records, instances and inputs forms); the
toy pipelines declare the columns those examples use. The answers come back in
MLflow's style: ``{"predictions": [...]}``, one record per row.
"""

from __future__ import annotations

import httpx
import pytest

from .conftest import predict_path

FRAME = predict_path("frame_total")
TENSORS = predict_path("tensor_score")

SPLIT = {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}}
RECORDS = {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]}
INSTANCES = {
    "instances": [
        {"a": "s1", "b": 1, "c": [1, 2, 3]},
        {"a": "s2", "b": 2, "c": [4, 5, 6]},
        {"a": "s3", "b": 3, "c": [7, 8, 9]},
    ]
}
INPUTS = {
    "inputs": {"a": ["s1", "s2", "s3"], "b": [1, 2, 3], "c": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}
}
TENSOR_ANSWER = {
    "predictions": [
        {"score": 7.0, "shout": "S1"},
        {"score": 17.0, "shout": "S2"},
        {"score": 27.0, "shout": "S3"},
    ]
}


@pytest.mark.parametrize("payload", [SPLIT, RECORDS], ids=["dataframe_split", "dataframe_records"])
def test_dataframe_payloads(client: httpx.Client, payload: dict) -> None:
    response = client.post(FRAME, json=payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [{"total": 6.0}, {"total": 15.0}]}


@pytest.mark.parametrize("payload", [INSTANCES, INPUTS], ids=["instances", "inputs"])
def test_tensor_payloads(client: httpx.Client, payload: dict) -> None:
    response = client.post(TENSORS, json=payload)
    assert response.status_code == 200, response.text
    assert response.json() == TENSOR_ANSWER


def test_rows_without_names_follow_the_declared_column_order(client: httpx.Client) -> None:
    response = client.post(FRAME, json={"inputs": [[1, 2, 3], [4, 5, 6]]})
    assert response.json() == {"predictions": [{"total": 6.0}, {"total": 15.0}]}


def test_params_beside_the_payload_are_accepted(client: httpx.Client) -> None:
    response = client.post(FRAME, json={**SPLIT, "params": {"unused": 1}})
    assert response.status_code == 200


def test_schema_violations_in_an_mlflow_payload_name_column_and_row(client: httpx.Client) -> None:
    bad = {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, "x", 6]]}}
    body = client.post(FRAME, json=bad).json()
    assert (body["error"], body["table"], body["column"], body["row"]) == (
        "WrongType",
        "frame",
        "b",
        1,
    )
    ragged = {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5]]}}
    response = client.post(FRAME, json=ragged)
    assert response.status_code == 422
    assert response.json()["row"] == 1


def test_a_dataframe_split_without_data_is_400(client: httpx.Client) -> None:
    response = client.post(FRAME, json={"dataframe_split": {"columns": ["a"]}})
    assert response.status_code == 400


def test_invocations_scores_the_one_model_as_mlflow_clients_call_it(
    toy_runners: dict,
) -> None:
    from shipyard.serving import ServingApp, bundle_table

    from .conftest import guarded_server

    one = ServingApp(bundle_table([toy_runners["frame"]]), seed=1)
    with guarded_server(one) as base:
        response = httpx.post(base + "/invocations", json=SPLIT, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [{"total": 6.0}, {"total": 15.0}]}
        wrong_method = httpx.get(base + "/invocations", timeout=30)
        assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"


def test_invocations_with_several_models_names_them(client: httpx.Client) -> None:
    response = client.post("/invocations", json=SPLIT)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "/invocations needs exactly one model" in message and "frame_total" in message


def test_invocations_names_the_models_only_to_a_caller_with_a_key(toy_runners: dict) -> None:
    from shipyard.serving import KeyRing, ServingApp, bundle_table

    from .conftest import guarded_server

    locked = ServingApp(
        bundle_table([toy_runners["frame"], toy_runners["tensors"]]),
        keys=KeyRing.from_keys(["s3cret-key"]),
    )
    with guarded_server(locked) as base:
        anonymous = httpx.post(base + "/invocations", json=SPLIT, timeout=30)
        assert anonymous.status_code == 401
        assert "frame_total" not in anonymous.text and "tensor_score" not in anonymous.text
        keyed = httpx.post(
            base + "/invocations", json=SPLIT, headers={"X-API-Key": "s3cret-key"}, timeout=30
        )
        assert keyed.status_code == 400 and "frame_total" in keyed.json()["message"]


def test_invocations_takes_only_mlflow_payloads(toy_runners: dict) -> None:
    from shipyard.serving import ServingApp, bundle_table

    from .conftest import guarded_server

    one = ServingApp(bundle_table([toy_runners["frame"]]), seed=1)
    with guarded_server(one) as base:
        for body in ({"frame": {"a": [1], "b": [2], "c": [3]}}, {"a": [1], "b": [2], "c": [3]}):
            refused = httpx.post(base + "/invocations", json=body, timeout=30)
            assert refused.status_code == 400, refused.text
            message = refused.json()["message"]
            assert "dataframe_split, dataframe_records, instances, inputs" in message
        with_params = httpx.post(base + "/invocations", json={**RECORDS, "params": {}}, timeout=30)
        assert with_params.json() == {"predictions": [{"total": 6.0}, {"total": 15.0}]}
