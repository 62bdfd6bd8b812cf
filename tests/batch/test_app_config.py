"""Batch runs give a version's code its app config: deployed, in worker processes, on Spark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipyard.batch import BatchOptions, run_local, run_spark
from shipyard.cli import main
from shipyard.registry import Registry
from tests._app_config import threshold_bundle

from .test_spark import read_folder


@pytest.fixture()
def rows(tmp_path: Path) -> Path:
    """Four rows of ``items``: x = 0.3, 0.7, 0.95, 0.5."""
    path = tmp_path / "rows.csv"
    path.write_text("x\n0.3\n0.7\n0.95\n0.5\n")
    return path


def flags_of(output: Path) -> list[str]:
    """The ``flag`` column of a JSON Lines output, in row order."""
    records = [json.loads(line) for line in output.read_text().splitlines()]
    return [r["flag"] for r in sorted(records, key=lambda r: r["_row"])]


def test_batch_run_of_a_deployed_version_uses_its_app_config_in_that_environment(
    registry: Registry,
    database_url: str,
    key_pair: tuple[Path, Path],
    rows: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SHIPYARD_URL", raising=False)
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(tmp_path / "artifacts"))
    registry.create_project("demo")
    found = registry.register_model(
        "demo", threshold_bundle(tmp_path / "dist", key_pair[0]), app_config={"threshold": 0.9}
    )
    registry.tag("demo", "gate", found.version_id)
    registry.add_component("demo", "production", "gate")  # with the version's own app config
    lenient = tmp_path / "lenient.yaml"
    lenient.write_text("threshold: 0.6\n")
    output = tmp_path / "out.jsonl"
    run = ["batch", "run", "--project", "demo", "--env", "production", "--model", "gate"]
    run += ["-i", str(rows), "-o", str(output), "--json"]

    def score() -> list[str]:
        with pytest.raises(SystemExit) as done:
            main(run)
        assert done.value.code in (0, None), capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["scored"] == 4
        return flags_of(output)

    assert score() == ["low", "low", "high", "low"]
    change = ["component", "add", "gate", "--version", "v1", "--env", "production"]
    with pytest.raises(SystemExit) as done:
        main([*change, "--project", "demo", "--app-config", str(lenient)])
    assert done.value.code in (0, None)
    capsys.readouterr()
    assert score() == ["low", "high", "high", "low"]


@pytest.mark.integration  # workers=2 scores in a pool of worker processes
def test_worker_processes_score_with_the_app_config_too(
    key_pair: tuple[Path, Path], rows: Path, tmp_path: Path
) -> None:
    bundle = threshold_bundle(tmp_path / "dist", key_pair[0])
    options = BatchOptions(app_config={"threshold": 0.6}, chunk_rows=1, workers=2)
    run_local(bundle, str(rows), str(tmp_path / "out.jsonl"), options)
    assert flags_of(tmp_path / "out.jsonl") == ["low", "high", "high", "low"]
    run_local(bundle, str(rows), str(tmp_path / "default.jsonl"), BatchOptions(workers=2))
    assert flags_of(tmp_path / "default.jsonl") == ["low", "high", "high", "high"]


@pytest.mark.slow
def test_the_spark_engine_sends_the_app_config_to_its_workers(
    spark: Any, key_pair: tuple[Path, Path], rows: Path, tmp_path: Path
) -> None:
    bundle = threshold_bundle(tmp_path / "dist", key_pair[0])
    output = tmp_path / "out.parquet"
    run_spark(
        bundle, str(rows), str(output), BatchOptions(app_config={"threshold": 0.6}), spark=spark
    )
    scored = read_folder(output, "parquet").sort_by("_row")
    assert scored.column("flag").to_pylist() == ["low", "high", "high", "low"]
