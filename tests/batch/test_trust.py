"""Batch runs load only what their trust allows, on either engine (deployed: the registry's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipyard.batch import BatchOptions, fetch_deployed, run_local, run_spark
from shipyard.cli import main
from shipyard.errors import ModelError
from shipyard.registry import Registry
from tests.pipeline._pickle_model import WeightedSum
from tests.serving.test_trust import pickle_bundle


def test_a_deployed_pickle_runs_only_where_an_admin_allowed_it(
    registry: Registry, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle = pickle_bundle(tmp_path / "dist", key_pair[0])
    registry.create_project("demo")
    version = registry.register_model("demo", bundle)
    registry.tag("demo", "pickled", version.version_id)
    registry.add_component("demo", "production", "pickled")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1.0,2.0\n3.0,4.0\n")
    with pytest.raises(ModelError, match=r"weighted are plain pickles"):
        fetch_deployed(registry, "demo", "production", "pickled", tmp_path / "f1")
    registry.set_setting("allow_pickle", "true", "demo", "production")
    path, options = fetch_deployed(
        registry, "demo", "production", "pickled", tmp_path / "f2", BatchOptions(chunk_rows=1)
    )
    # The trust travels with the options: the key that signed it, and the allowance.
    assert options.allow_unsafe is True and isinstance(options.public_key, bytes)
    assert options.chunk_rows == 1
    result = run_local(path, str(rows), str(tmp_path / "out.csv"), options)
    assert (result.rows, result.rejected) == (2, 0)


def test_without_the_allowance_the_loader_refuses_a_pickle_itself(
    key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle = pickle_bundle(tmp_path / "dist", key_pair[0])
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1.0,2.0\n")
    with pytest.raises(ModelError, match="allow_pickle"):
        run_local(bundle, str(rows), str(tmp_path / "out.csv"), BatchOptions(allow_unsafe=False))


@pytest.mark.slow
def test_the_spark_engine_refuses_a_pickle_unless_the_run_allows_it(
    spark: Any, key_pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "unpickled"

    def setstate(self: WeightedSum, state: dict[str, object]) -> None:
        marker.write_text("unpickled on the driver")  # what a hostile pickle could do
        self.__dict__.update(state)

    bundle = pickle_bundle(tmp_path / "dist", key_pair[0])  # the export loads it back itself
    monkeypatch.setattr(WeightedSum, "__setstate__", setstate, raising=False)
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1.0,2.0\n3.0,4.0\n")
    output = tmp_path / "out.parquet"
    with pytest.raises(ModelError, match="allow_pickle"):
        run_spark(bundle, str(rows), str(output), BatchOptions(allow_unsafe=False), spark=spark)
    assert not marker.exists() and not output.exists()  # refused before anything was unpickled
    result = run_spark(bundle, str(rows), str(output), BatchOptions(allow_unsafe=True), spark=spark)
    assert (result.rows, result.scored, result.rejected) == (2, 2, 0)
    assert marker.exists()


@pytest.mark.slow
def test_batch_run_on_spark_scores_a_deployed_pickle_only_where_an_admin_allowed_it(
    registry: Registry,
    database_url: str,
    spark: Any,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SHIPYARD_URL", raising=False)
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(tmp_path / "artifacts"))
    registry.create_project("demo")
    version = registry.register_model("demo", pickle_bundle(tmp_path / "dist", key_pair[0]))
    registry.tag("demo", "pickled", version.version_id)
    registry.add_component("demo", "production", "pickled")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1.0,2.0\n3.0,4.0\n")
    output = tmp_path / "out.parquet"
    run = ["batch", "run", "--project", "demo", "--env", "production", "--model", "pickled"]
    run += ["--engine", "spark", "-i", str(rows), "-o", str(output), "--json"]
    with pytest.raises(SystemExit) as refused:
        main(run)
    assert refused.value.code != 0
    assert "allow_pickle" in capsys.readouterr().err
    assert not output.exists()
    registry.set_setting("allow_pickle", "true", "demo", "production")
    with pytest.raises(SystemExit) as done:
        main(run)
    assert done.value.code in (0, None)
    assert json.loads(capsys.readouterr().out)["scored"] == 2
