"""The Spark engine and the spark-submit example write what the local engine writes.

Real PySpark in local mode: one session for the whole test session; spark-submit starts
its own JVM, on a Python where ``import shipyard`` fails (as on a cluster without it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from shipyard.batch import BatchOptions, run_local, run_spark
from shipyard.runtime import Artifact

from .conftest import write_table
from .test_local import _damage_csv, rejects_of

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spark_submit" / "job.py"
DAMAGE = {7: ("mean_radius", "n/a"), 640: ("mean_area", "-3"), 1700: ("worst_symmetry", "")}


def read_folder(folder: Path, fmt: str) -> pa.Table:
    """The part files Spark wrote into ``folder`` as one table."""
    kind = {"parquet": "parquet", "csv": "csv", "jsonl": "json"}[fmt]
    return ds.dataset(folder, format=kind).to_table()


def read_rejects(folder: Path) -> list[dict[str, Any]]:
    """Spark's reject records (a folder of JSON Lines part files)."""
    return [json.loads(line) for part in sorted(folder.glob("part-*")) for line in part.open()]


@pytest.fixture()
def damaged(tumours: pa.Table, tmp_path: Path) -> Path:
    """The 2,000 tumour rows as CSV, three of them broken (wrong type, out of range, null)."""
    data = write_table(tumours, tmp_path / "in.csv")
    _damage_csv(data, tumours.column_names, DAMAGE)
    return data


def test_the_spark_engine_writes_the_scores_and_rejects_of_the_local_engine(
    spark: Any, signed_bundle: Path, damaged: Path, tmp_path: Path
) -> None:
    options = BatchOptions(id_column="id")
    local = run_local(
        Artifact(signed_bundle), str(damaged), str(tmp_path / "local.parquet"), options
    )
    result = run_spark(
        signed_bundle, str(damaged), str(tmp_path / "spark.parquet"), options, spark=spark
    )
    assert (result.rows, result.scored, result.rejected) == (2000, 1997, 3)
    assert (result.scored, result.rejected) == (local.scored, local.rejected)
    want = ds.dataset(tmp_path / "local.parquet").to_table().sort_by("id")
    got = read_folder(tmp_path / "spark.parquet", "parquet").sort_by("id")
    assert got.column_names == want.column_names == ["id", "p_malignant", "decision"]
    assert got.column("id").equals(want.column("id"))
    assert got.column("decision").equals(want.column("decision"))
    np.testing.assert_allclose(
        got.column("p_malignant").to_numpy(), want.column("p_malignant").to_numpy()
    )
    spark_rejects = read_rejects(tmp_path / "spark.parquet.rejects.jsonl")
    local_rejects = rejects_of(tmp_path / "local.parquet")
    assert local_rejects == sorted(spark_rejects, key=lambda r: r["id"])  # row numbers too
    assert not list(tmp_path.glob(".*.partial"))


def test_without_an_id_column_spark_numbers_rows_as_they_are_in_the_file(
    spark: Any, signed_bundle: Path, damaged: Path, tmp_path: Path
) -> None:
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 1024))  # several partitions
    try:
        run_spark(signed_bundle, str(damaged), str(tmp_path / "spark.csv"), spark=spark)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    run_local(Artifact(signed_bundle), str(damaged), str(tmp_path / "local.csv"))
    got = read_folder(tmp_path / "spark.csv", "csv").sort_by("_row")
    want = ds.dataset(tmp_path / "local.csv", format="csv").to_table()
    assert got.column("_row").to_pylist() == want.column("_row").to_pylist()
    assert got.column("decision").equals(want.column("decision"))
    spark_rejects = sorted(
        read_rejects(tmp_path / "spark.csv.rejects.jsonl"), key=lambda r: r["_row"]
    )
    assert spark_rejects == rejects_of(tmp_path / "local.csv")
    assert [r["row"] for r in spark_rejects] == sorted(DAMAGE)


def _misshape_csv(path: Path, short: int, long: int) -> None:
    """Cut record ``short`` of the CSV at ``path`` to three fields; give ``long`` one too many."""
    lines = path.read_text().split("\n")
    lines[short + 1] = ",".join(lines[short + 1].split(",")[:3])
    lines[long + 1] += ",0.5"
    path.write_text("\n".join(lines))


@pytest.mark.parametrize("id_column", [None, "id"])
def test_a_line_with_the_wrong_number_of_fields_gets_the_same_reject_on_both_engines(
    spark: Any, signed_bundle: Path, damaged: Path, tmp_path: Path, id_column: str | None
) -> None:
    _misshape_csv(damaged, short=12, long=1500)
    options = BatchOptions(id_column=id_column, chunk_rows=300)
    local = run_local(Artifact(signed_bundle), str(damaged), str(tmp_path / "local.csv"), options)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 1024))  # several partitions
    try:
        result = run_spark(
            signed_bundle, str(damaged), str(tmp_path / "spark.csv"), options, spark=spark
        )
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert (result.rows, result.scored, result.rejected) == (2000, 1995, 5)
    assert (local.rows, local.scored, local.rejected) == (2000, 1995, 5)
    local_rejects = sorted(rejects_of(tmp_path / "local.csv"), key=lambda r: r["row"])
    spark_rejects = read_rejects(tmp_path / "spark.csv.rejects.jsonl")
    spark_rejects.sort(key=lambda r: r["row"])
    assert [r["row"] for r in spark_rejects] == [7, 12, 640, 1500, 1700]
    for got, want in zip(spark_rejects, local_rejects, strict=True):
        assert got == want
    short, long = spark_rejects[1], spark_rejects[3]
    assert short["message"].startswith('line has 3 fields, expected 31: \'"T0000012",')
    assert long["message"].startswith('line has 32 fields, expected 31: \'"T0001500",')
    assert short["table"] is short["column"] is None
    if id_column is None:  # the lines that cannot be read keep their numbers: a gap in _row
        got_rows = read_folder(tmp_path / "spark.csv", "csv").sort_by("_row").column("_row")
        want_rows = ds.dataset(tmp_path / "local.csv", format="csv").to_table().column("_row")
        assert got_rows.to_pylist() == want_rows.to_pylist()
        assert 12 not in want_rows.to_pylist() and 13 in want_rows.to_pylist()


# Lines of a JSON Lines file that hold no record, each made from the record's own line.
BAD_JSON_LINES = {
    12: lambda line: line[:40],  # cut short, after a number
    40: lambda line: "[1, 2, 3]",
    300: lambda line: "42",
    777: lambda line: line + " trailing",  # Spark's reader alone would read the object
    900: lambda line: f"[{line}]",  # an array of the record: Spark's reader, one record
    1234: lambda line: "[]",  # Spark's reader: no record, so no row to reject
    1500: lambda line: line.replace('"', "'"),  # single quotes: not JSON
    1600: lambda line: line + line,  # two objects on one line (pyarrow reads both)
}


def _damage_json_lines(tumours: pa.Table, path: Path) -> Path:
    """The tumour rows as JSON Lines: DAMAGE's bad values, BAD_JSON_LINES, a blank line."""
    records = tumours.to_pylist()
    for row, (column, value) in DAMAGE.items():
        records[row][column] = None if value == "" else value if value == "n/a" else float(value)
    lines = [json.dumps(record) for record in records]
    for row, damage in BAD_JSON_LINES.items():
        lines[row] = damage(lines[row])
    lines.insert(1000, "   ")  # a blank line is no record, and numbers none
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("id_column", [None, "id"])
def test_a_json_line_that_is_no_record_gets_the_same_reject_on_both_engines(
    spark: Any, signed_bundle: Path, tumours: pa.Table, tmp_path: Path, id_column: str | None
) -> None:
    data = _damage_json_lines(tumours, tmp_path / "in.jsonl")
    options = BatchOptions(id_column=id_column, chunk_rows=300)
    local = run_local(Artifact(signed_bundle), str(data), str(tmp_path / "local.csv"), options)
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 1024))  # several partitions
    try:
        result = run_spark(
            signed_bundle, str(data), str(tmp_path / "spark.csv"), options, spark=spark
        )
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    bad = sorted([*DAMAGE, *BAD_JSON_LINES])
    assert (local.rows, local.scored, local.rejected) == (2000, 2000 - len(bad), len(bad))
    assert (result.rows, result.scored, result.rejected) == (2000, 2000 - len(bad), len(bad))
    local_rejects = sorted(rejects_of(tmp_path / "local.csv"), key=lambda r: r["row"])
    spark_rejects = read_rejects(tmp_path / "spark.csv.rejects.jsonl")
    spark_rejects.sort(key=lambda r: r["row"])
    assert [r["row"] for r in local_rejects] == [r["row"] for r in spark_rejects] == bad
    for got, want in zip(spark_rejects, local_rejects, strict=True):
        assert got == want
    by_row = {r["row"]: r for r in spark_rejects}
    assert by_row[12]["message"] == (
        "line is not valid JSON (Expecting ',' delimiter at column 41): "
        """'{"id": "T0000012", "mean_radius": 12.163'"""
    )
    assert by_row[777]["message"].startswith("line is not valid JSON (Extra data at column ")
    for row in (40, 300, 900, 1234):
        assert by_row[row]["message"].startswith("line is not a JSON object: ")
    assert by_row[1234]["message"] == "line is not a JSON object: '[]'"
    for row in BAD_JSON_LINES:
        assert by_row[row]["table"] is by_row[row]["column"] is None
        assert by_row[row].get("id") is None
    if id_column is None:  # the lines that hold no record keep their numbers: gaps in _row
        got_rows = read_folder(tmp_path / "spark.csv", "csv").sort_by("_row").column("_row")
        want_rows = ds.dataset(tmp_path / "local.csv", format="csv").to_table().column("_row")
        assert got_rows.to_pylist() == want_rows.to_pylist()
        assert 1234 not in want_rows.to_pylist() and 1235 in want_rows.to_pylist()


def test_spark_submit_runs_the_example_on_a_python_without_shipyard(
    signed_bundle: Path, damaged: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "no-shipyard" / "shipyard"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('Shipyard is not on this cluster')\n")
    # As examples/spark_submit/README.md says: PYSPARK_PYTHON alone, and a PATH whose
    # python3 is not the one with pyspark (spark-submit must find its home through it).
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_DRIVER_PYTHON", "SPARK_HOME")}
    env.update(
        PYSPARK_PYTHON=sys.executable,
        PYTHONPATH=str(blocked.parent),
        PATH=os.pathsep.join(
            p for p in env["PATH"].split(os.pathsep) if Path(sys.executable).parent != Path(p)
        ),
    )
    spark_submit = Path(sys.executable).parent / "spark-submit"
    command = [str(spark_submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    command += ["--archives", f"{signed_bundle}#model", str(EXAMPLE)]
    command += [
        "--input",
        str(damaged),
        "--output",
        str(tmp_path / "scores.parquet"),
        "--id-column",
        "id",
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "rows": 2000,
        "scored": 1997,
        "rejected": 3,
    }
    scores = read_folder(tmp_path / "scores.parquet", "parquet")
    assert scores.column_names == ["id", "p_malignant", "decision"]
    assert scores.num_rows == 1997
    rejected = sorted(r["id"] for r in read_rejects(tmp_path / "scores.parquet.rejects.jsonl"))
    assert rejected == [f"T{row:07d}" for row in sorted(DAMAGE)]
