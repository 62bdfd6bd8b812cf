"""Features and rules read app config through declared arguments, in a notebook and in a bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import shipyard as sy
from shipyard.errors import GraphError, UsageError
from shipyard.runtime import Artifact
from tests._app_config import threshold_bundle, threshold_pipeline

ROWS = {"items": {"x": [0.3, 0.6, 0.95]}}


def flags(result: dict[str, Any]) -> list[str]:
    return list(result["flag"]["values"])


def test_a_rule_reads_its_threshold_from_app_config_else_its_default() -> None:
    pipeline = threshold_pipeline()
    assert flags(pipeline.run(ROWS)) == ["low", "high", "high"]  # the default, 0.5
    assert flags(pipeline.run(ROWS, app_config={"threshold": 0.9})) == ["low", "low", "high"]
    assert flags(pipeline.run(ROWS, app_config={"other": 1})) == ["low", "high", "high"]
    assert flags(pipeline.run(ROWS)) == ["low", "high", "high"]  # nothing stays behind


def test_an_argument_may_read_another_key_and_a_params_value_is_its_default() -> None:
    @sy.rule(params={"cut": 0.5}, app_config={"cut": "refer_above"})
    def decision(x: Any, cut: float) -> Any:
        return np.where(x > cut, "refer", "routine")

    items = sy.Table("items", [sy.Column("x", "float64")])
    pipeline = sy.Pipeline("p", "1.0.0", inputs=[items], nodes=[decision], outputs=["decision"])
    assert pipeline.run(ROWS)["decision"]["values"] == ["routine", "refer", "refer"]
    found = pipeline.run(ROWS, app_config={"refer_above": 0.2, "cut": 0.99})
    assert found["decision"]["values"] == ["refer", "refer", "refer"]


def test_a_bundle_records_what_it_reads_and_runs_with_the_app_config_given(
    key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    artifact = Artifact(threshold_bundle(tmp_path, key_pair[0]))
    (node,) = artifact.metadata["nodes"]
    assert node["app_config"] == {"threshold": "threshold"} and node["args"] == ["x"]
    assert flags(artifact.run(ROWS)) == ["low", "high", "high"]
    assert flags(artifact.run(ROWS, app_config={"threshold": 0.9})) == ["low", "low", "high"]
    executor = artifact.executor()
    configured = executor.with_app_config({"threshold": 0.1})
    assert flags(configured.run_dict(ROWS)) == ["high", "high", "high"]
    assert flags(executor.run_dict(ROWS)) == ["low", "high", "high"]  # the original is untouched
    with pytest.raises(UsageError, match="app config must be a mapping"):
        executor.with_app_config([0.1])  # type: ignore[arg-type]


def test_nodes_without_app_config_keep_the_metadata_they_had() -> None:
    items = sy.Table("items", [sy.Column("x", "float64")])

    @sy.feature
    def double(x: Any) -> Any:
        return x * 2.0

    pipeline = sy.Pipeline("p", "1.0.0", inputs=[items], nodes=[double], outputs=["double"])
    (node,) = pipeline.executor().metadata["nodes"]
    assert "app_config" not in node


def test_a_node_cannot_change_the_app_config_another_call_sees() -> None:
    @sy.rule(app_config=["labels"])
    def named(x: Any, labels: list[str] | None = None) -> Any:
        chosen = labels if labels is not None else ["a", "b"]
        shown = list(chosen)
        chosen.clear()  # a careless node: empties the list it was given
        return np.where(x > 0.5, shown[1], shown[0])

    items = sy.Table("items", [sy.Column("x", "float64")])
    pipeline = sy.Pipeline("p", "1.0.0", inputs=[items], nodes=[named], outputs=["named"])
    executor = pipeline.executor().with_app_config({"labels": ["no", "yes"]})
    for _ in range(2):
        assert executor.run_dict(ROWS)["named"]["values"] == ["no", "yes", "yes"]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"app_config": ["nope"]}, "app_config names 'nope', which is not an argument"),
        ({"app_config": ["x"]}, "'x' reads app config 'x' and needs a default"),
        ({"app_config": "threshold"}, "must be a list of arguments or a mapping"),
        ({"app_config": {"threshold": ""}}, "the app config key of 'threshold' must be a name"),
        (
            {"app_config": ["threshold"], "inputs": {"threshold": "x"}},
            "'threshold' is read from app config, not an input",
        ),
    ],
)
def test_a_wrong_app_config_declaration_is_refused_at_definition(
    declared: dict[str, Any], message: str
) -> None:
    def rule(x: Any, threshold: float = 0.5) -> Any:
        return x > threshold

    with pytest.raises(GraphError, match=message):
        sy.rule(rule, **declared)


def test_the_python_dict_entry_point_takes_app_config_without_shipyard(
    key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    Artifact(threshold_bundle(tmp_path / "dist", key_pair[0])).extract(None, tmp_path / "host")
    code = (
        "import json, sys\n"
        "from gate_1_0_0.python_dict import main\n"
        f"rows = {ROWS!r}\n"
        "print(json.dumps([main(rows)['flag']['values'],\n"
        "                  main(rows, app_config={'threshold': 0.9})['flag']['values']]))\n"
    )
    blocked = tmp_path / "blocked" / "shipyard"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('no Shipyard on this host')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SHIPYARD_PUBLIC_KEY")}
    env["PYTHONPATH"] = str(blocked.parent)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path / "host",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["low", "high", "high"], ["low", "low", "high"]]
