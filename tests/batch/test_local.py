"""The local engine: each format in and out, rejects with reasons, nothing lost or partial."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from shipyard.batch import BatchOptions, run_local
from shipyard.batch._io import rejects_location
from shipyard.cli import main
from shipyard.errors import UsageError
from shipyard.runtime import Artifact

from .conftest import read_table, write_table


@pytest.fixture(scope="module")
def artifact(signed_bundle: Path) -> Artifact:
    """The tumour-triage bundle, opened once (its model loaded once) for the module."""
    return Artifact(signed_bundle)


def rejects_of(output: Path) -> list[dict[str, Any]]:
    """The reject records written beside ``output``."""
    text = Path(rejects_location(str(output))).read_text()
    return [json.loads(line) for line in text.splitlines()]


def expected(artifact: Artifact, table: pa.Table) -> dict[str, list[Any]]:
    """What the bundle's python_dict path returns for the rows of ``table``."""
    columns = {n: table.column(n).to_pylist() for n in table.column_names if n != "id"}
    result = artifact.run({"tumours": columns})
    return {name: value["values"] for name, value in result.items()}


@pytest.mark.parametrize(
    ("source", "target"),
    [("in.csv", "out.parquet"), ("in.parquet", "out.jsonl"), ("in.jsonl", "out.csv")],
)
def test_each_format_in_and_out_scores_as_the_bundle_does(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path, source: str, target: str
) -> None:
    data = write_table(tumours, tmp_path / source)
    options = BatchOptions(id_column="id", chunk_rows=300)
    result = run_local(artifact, str(data), str(tmp_path / target), options)
    out = read_table(tmp_path / target)
    want = expected(artifact, tumours)
    assert (result.rows, result.scored, result.rejected) == (2000, 2000, 0)
    assert out.column_names == ["id", "p_malignant", "decision"]
    assert out.column("id").to_pylist() == tumours.column("id").to_pylist()  # order kept
    assert out.column("decision").to_pylist() == want["decision"]
    np.testing.assert_allclose(out.column("p_malignant").to_numpy(), want["p_malignant"])
    assert rejects_of(tmp_path / target) == []


def test_without_an_id_column_rows_are_numbered_from_zero(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours.drop_columns(["id"]), tmp_path / "in.parquet")
    run_local(artifact, str(data), str(tmp_path / "out.parquet"), BatchOptions(chunk_rows=333))
    out = read_table(tmp_path / "out.parquet")
    assert out.column_names == ["_row", "p_malignant", "decision"]
    assert out.column("_row").to_pylist() == list(range(2000))


def _damage_csv(path: Path, column_names: list[str], changes: dict[int, tuple[str, str]]) -> None:
    lines = path.read_text().split("\n")
    for row, (column, value) in changes.items():
        fields = lines[row + 1].split(",")
        if column == "+":
            fields.append(value)
        else:
            fields[column_names.index(column)] = value
        lines[row + 1] = ",".join(fields)
    path.write_text("\n".join(lines))


def test_bad_rows_go_to_the_reject_file_with_their_reason(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours, tmp_path / "in.csv")
    _damage_csv(
        data,
        tumours.column_names,
        {
            3: ("mean_radius", "twelve"),
            250: ("mean_area", "-1"),
            251: ("worst_symmetry", ""),
            1999: ("+", "0.5"),  # one field too many: the line cannot be read
        },
    )
    options = BatchOptions(id_column="id", chunk_rows=100)
    result = run_local(artifact, str(data), str(tmp_path / "out.csv"), options)
    assert (result.rows, result.scored, result.rejected) == (2000, 1996, 4)
    records = rejects_of(tmp_path / "out.csv")
    readable = [r for r in records if r["table"] is not None]
    assert readable == [
        {
            "id": "T0000003",
            "table": "tumours",
            "column": "mean_radius",
            "row": 3,
            "message": "expected float64, got str 'twelve'",
        },
        {
            "id": "T0000250",
            "table": "tumours",
            "column": "mean_area",
            "row": 250,
            "message": "-1.0 is outside the allowed range [0.0, None]",
        },
        {
            "id": "T0000251",
            "table": "tumours",
            "column": "worst_symmetry",
            "row": 251,
            "message": "null in a column that is not nullable",
        },
    ]
    (unreadable,) = [r for r in records if r["table"] is None]
    assert unreadable["message"].startswith("line has 32 fields, expected 31")
    assert "T0001999" in unreadable["message"]
    assert unreadable["row"] == 1999
    scored_ids = set(read_table(tmp_path / "out.csv").column("id").to_pylist())
    assert not scored_ids & {"T0000003", "T0000250", "T0000251", "T0001999"}


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 50])
def test_csv_lines_with_the_wrong_number_of_fields_keep_their_row_numbers(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path, chunk_rows: int
) -> None:
    data = write_table(tumours.slice(0, 12), tmp_path / "in.csv")
    lines = data.read_text().split("\n")
    for row in (0, 4, 5, 11):  # the first, two together, the last
        lines[row + 1] = ",".join(lines[row + 1].split(",")[:2])
    data.write_text("\n".join(lines))
    options = BatchOptions(chunk_rows=chunk_rows)
    result = run_local(artifact, str(data), str(tmp_path / "out.jsonl"), options)
    assert (result.rows, result.scored, result.rejected) == (12, 8, 4)
    records = sorted(rejects_of(tmp_path / "out.jsonl"), key=lambda r: r["row"])
    assert [(r["_row"], r["row"]) for r in records] == [(0, 0), (4, 4), (5, 5), (11, 11)]
    assert all(r["message"].startswith("line has 2 fields, expected 31") for r in records)
    rows = read_table(tmp_path / "out.jsonl").column("_row").to_pylist()
    assert rows == [1, 2, 3, 6, 7, 8, 9, 10]


def test_two_outputs_in_one_folder_keep_their_own_rejects(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours.slice(0, 20), tmp_path / "in.csv")
    _damage_csv(data, tumours.column_names, {3: ("mean_area", "big")})
    options = BatchOptions(id_column="id")
    first = run_local(artifact, str(data), str(tmp_path / "scores.parquet"), options)
    second = run_local(artifact, str(data), str(tmp_path / "scores.jsonl"), options)
    assert (first.rejects, second.rejects) == (
        str(tmp_path / "scores.parquet.rejects.jsonl"),
        str(tmp_path / "scores.jsonl.rejects.jsonl"),
    )
    assert len(rejects_of(tmp_path / "scores.parquet")) == len(
        rejects_of(tmp_path / "scores.jsonl")
    )


def test_the_result_and_a_parquet_output_say_which_bundle_scored(
    artifact: Artifact, signed_bundle: Path, tumours: pa.Table, tmp_path: Path
) -> None:
    import hashlib

    import pyarrow.parquet as pq

    data = write_table(tumours.slice(0, 10), tmp_path / "in.csv")
    result = run_local(artifact, str(data), str(tmp_path / "scores.parquet"))
    digest = hashlib.sha256(signed_bundle.read_bytes()).hexdigest()
    assert result.provenance == {
        "bundle": "tumour_triage",
        "bundle_version": "1.0.0",
        "digest": digest,
    }
    stored = pq.read_schema(tmp_path / "scores.parquet").metadata[b"shipyard.provenance"]
    assert json.loads(stored) == result.provenance
    assert result.to_json()["provenance"] == result.provenance


def test_json_lines_that_are_not_records_are_rejected_by_number(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours.slice(0, 10), tmp_path / "in.jsonl")
    lines = data.read_text().splitlines()
    lines[2] = "{not json"
    lines[5] = "[1, 2, 3]"
    lines.insert(7, "")  # blank lines are not records
    data.write_text("\n".join(lines) + "\n")
    result = run_local(artifact, str(data), str(tmp_path / "out.jsonl"))
    assert (result.rows, result.scored, result.rejected) == (10, 8, 2)
    records = rejects_of(tmp_path / "out.jsonl")
    assert [(r["_row"], r["row"]) for r in records] == [(2, 2), (5, 5)]
    assert records[0]["message"].startswith("line is not valid JSON")
    assert records[1]["message"].startswith("line is not a JSON object")
    rows = read_table(tmp_path / "out.jsonl").column("_row").to_pylist()
    assert rows == [0, 1, 3, 4, 6, 7, 8, 9]


def test_a_json_line_holding_two_records_is_rejected_whole_with_its_number(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    # pyarrow reads the block (every line JSON) as 11 records for 10 lines
    data = write_table(tumours.slice(0, 10), tmp_path / "in.jsonl")
    lines = data.read_text().splitlines()
    one = lines[4]
    lines[4] = f"{one} {one}"
    data.write_text("\n".join(lines) + "\n")
    result = run_local(artifact, str(data), str(tmp_path / "out.jsonl"))
    assert (result.rows, result.scored, result.rejected) == (10, 9, 1)
    (record,) = rejects_of(tmp_path / "out.jsonl")
    column = len(one) + 2  # where the second object starts (columns count from 1)
    assert record["row"] == 4 and record["table"] is None
    assert record["message"].startswith(f"line is not valid JSON (Extra data at column {column}): ")
    assert read_table(tmp_path / "out.jsonl").column("_row").to_pylist() == [
        0,
        1,
        2,
        3,
        *range(5, 10),
    ]


def test_rows_read_always_equal_rows_written_plus_rows_rejected(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    # A property checked over random files: sizes, chunk sizes, formats and damage.
    rng = random.Random(20240517)
    names = tumours.column_names
    for case in range(14):
        rows = rng.choice([0, 1, 7, 150, 401])
        table = tumours.slice(rng.randrange(0, 1500), rows)
        source = rng.choice(["csv", "parquet", "jsonl"])
        target = rng.choice(["csv", "parquet", "jsonl"])
        folder = tmp_path / f"case{case}"
        folder.mkdir()
        data = write_table(table, folder / f"in.{source}")
        damaged: set[str] = set()
        if rows and source != "parquet":
            lines = data.read_text().split("\n")
            first = 1 if source == "csv" else 0
            for _ in range(rng.randrange(0, rows // 3 + 2)):
                line = rng.randrange(first, first + rows)
                kind = rng.choice(["text", "negative", "missing", "garbage"])
                if source == "csv":
                    fields = lines[line].split(",")
                    damaged.add(fields[0].strip('"'))
                    spot = rng.randrange(1, len(names))
                    fields[spot] = {"text": "x1", "negative": "-2", "missing": ""}.get(kind, "")
                    if kind == "garbage":
                        fields.append("9")
                    lines[line] = ",".join(fields)
                else:
                    record = json.loads(lines[line]) if lines[line].startswith("{") else None
                    if record is None:
                        continue
                    damaged.add(record["id"])
                    spot = names[rng.randrange(1, len(names))]
                    record[spot] = {"text": "x1", "negative": -2.0, "missing": None}.get(kind)
                    lines[line] = "not json" if kind == "garbage" else json.dumps(record)
            data.write_text("\n".join(lines))
        output = folder / f"out.{target}"
        options = BatchOptions(id_column="id", chunk_rows=rng.randint(1, 120))
        result = run_local(artifact, str(data), str(output), options)
        written = read_table(output).num_rows if output.stat().st_size else 0
        rejected = rejects_of(output)
        assert result.rows == rows, case
        assert written + len(rejected) == rows == result.scored + result.rejected, case
        assert result.rejected <= len(damaged), case


@pytest.mark.integration  # workers=2 scores in a pool of worker processes
def test_workers_write_exactly_what_one_process_writes(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours, tmp_path / "in.csv")
    _damage_csv(data, tumours.column_names, {10: ("mean_radius", "?"), 1500: ("mean_area", "")})
    options = BatchOptions(id_column="id", chunk_rows=150)
    one = run_local(artifact, str(data), str(tmp_path / "one.csv"), options)
    two = run_local(artifact, str(data), str(tmp_path / "two.csv"), replace(options, workers=2))
    assert (two.rows, two.rejected) == (one.rows, one.rejected) == (2000, 2)
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert rejects_of(tmp_path / "two.csv") == rejects_of(tmp_path / "one.csv")


def test_outputs_names_any_node(artifact: Artifact, tumours: pa.Table, tmp_path: Path) -> None:
    data = write_table(tumours.slice(0, 50), tmp_path / "in.parquet")
    run_local(
        artifact,
        str(data),
        str(tmp_path / "out.parquet"),
        BatchOptions(id_column="id", outputs=["compactness_ratio"]),
    )
    out = read_table(tmp_path / "out.parquet")
    assert out.column_names == ["id", "compactness_ratio"]
    ratio = np.asarray(tumours.column("mean_area")[:50]) / np.asarray(
        tumours.column("mean_perimeter")[:50]
    )
    np.testing.assert_allclose(out.column("compactness_ratio").to_numpy(), ratio)


def test_an_input_without_a_needed_column_is_refused_before_anything_is_written(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours.drop_columns(["mean_radius"]), tmp_path / "in.csv")
    with pytest.raises(UsageError, match="has no column 'mean_radius'"):
        run_local(artifact, str(data), str(tmp_path / "out.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_run_stopped_midway_leaves_neither_output_nor_temporary_files(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    from shipyard.batch import Stopped

    data = write_table(tumours, tmp_path / "in.csv")
    chunks = iter(range(100))
    with pytest.raises(Stopped):
        run_local(
            artifact,
            str(data),
            str(tmp_path / "out.csv"),
            BatchOptions(chunk_rows=100),
            should_stop=lambda: next(chunks) >= 3,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_killed_run_never_leaves_a_file_under_the_output_name(
    slow_bundle: Path, gate: Path, tmp_path: Path
) -> None:
    # The gate holds the run at x = 100 (never released): it is still running when killed.
    data = tmp_path / "items.csv"
    data.write_text("x\n" + "".join(f"{i}.5\n" for i in range(3000)))
    output = tmp_path / "scores.csv"
    command = [sys.executable, "-c", "from shipyard.cli import main; main()", "batch", "run"]
    command += [str(slow_bundle), "-i", str(data), "-o", str(output), "--chunk-rows", "10"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline and process.poll() is None:
            partial = [p for p in tmp_path.glob(".scores.csv.*.partial") if p.stat().st_size > 100]
            if partial:
                break
            time.sleep(0.05)
        assert partial, "the run never started writing"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not output.exists()
    assert not (tmp_path / "scores.csv.rejects.jsonl").exists()


# VmHWM, not getrusage's ru_maxrss: on Linux a child's ru_maxrss starts at its parent's size
# when it was forked (the test process, which has just built a large table), VmHWM at exec.
MEMORY_PROBE = """
import re, sys
from shipyard.batch import BatchOptions, run_local
options = BatchOptions(id_column="id", chunk_rows=2_500)
run_local(sys.argv[1], sys.argv[2], sys.argv[3], options)
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_peak_memory_does_not_grow_with_the_file(signed_bundle: Path, tmp_path: Path) -> None:
    from tests._tumours import tumour_rows

    peaks = {}
    for rows in (100_000, 400_000):
        data = write_table(tumour_rows(rows, seed=rows), tmp_path / f"in{rows}.csv")
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_PROBE,
                str(signed_bundle),
                str(data),
                str(tmp_path / f"out{rows}.parquet"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        peaks[rows] = int(done.stdout.split()[-1]) / 1024  # MB
        data.unlink()
    # The small file is 40 chunks: enough for the buffers of reading, scoring and writing
    # to reach their size. 300,000 more rows are ~75 MB as float64 alone, ~70 MB as CSV
    # text: a run that held the file would grow by far more than the margin.
    assert peaks[400_000] - peaks[100_000] < 40, peaks


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_one_summary_line_or_json(
    capsys: pytest.CaptureFixture[str], signed_bundle: Path, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours.slice(0, 100), tmp_path / "in.parquet")
    code, out, _ = run_cli(
        capsys, "batch", "run", str(signed_bundle), "-i", str(data), "-o", str(tmp_path / "a.csv")
    )
    assert code == 0
    assert out.count("\n") == 1
    assert out.startswith("100 rows: 100 scored, 0 rejected in ")
    assert "rows/s" in out
    code, out, _ = run_cli(
        capsys,
        "batch",
        "run",
        str(signed_bundle),
        "-i",
        str(data),
        "-o",
        str(tmp_path / "b.jsonl"),
        "--outputs",
        "decision",
        "--json",
    )
    summary = json.loads(out)
    assert (code, summary["rows"], summary["scored"], summary["format"]) == (0, 100, 100, "jsonl")
    assert summary["rejects"] == str(tmp_path / "b.jsonl.rejects.jsonl")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give a bundle file, or --project, --env and --model"),
        (("--engine", "dask"), "unknown engine 'dask'"),
        (("--format", "xlsx"), "unknown format 'xlsx'"),
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
    signed_bundle: Path,
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    data = tmp_path / "in.csv"
    data.write_text("mean_radius\n1\n")
    bundle = () if not args else (str(signed_bundle),)
    code, _, err = run_cli(
        capsys, "batch", "run", *bundle, "-i", str(data), "-o", str(tmp_path / "o.csv"), *args
    )
    assert code == 2
    assert message in err
    assert err.count("\n") == 1


def test_s3_in_and_out_with_the_output_only_under_its_name_when_complete(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path, s3_bucket: Any
) -> None:
    data = write_table(tumours.slice(0, 500), tmp_path / "in.csv")
    _damage_csv(data, tumours.column_names, {9: ("mean_area", "big")})
    s3_bucket.upload_file(str(data), s3_bucket.bucket, "requests/in.csv")
    root = f"s3://{s3_bucket.bucket}"
    options = BatchOptions(id_column="id")
    result = run_local(artifact, f"{root}/requests/in.csv", f"{root}/scores/out.parquet", options)
    assert (result.rows, result.scored, result.rejected) == (500, 499, 1)
    assert result.rejects == f"{root}/scores/out.parquet.rejects.jsonl"
    listed = s3_bucket.list_objects_v2(Bucket=s3_bucket.bucket, Prefix="scores/")["Contents"]
    keys = sorted(o["Key"] for o in listed if not o["Key"].endswith("/"))
    assert keys == ["scores/out.parquet", "scores/out.parquet.rejects.jsonl"]  # no .partial left
    s3_bucket.download_file(s3_bucket.bucket, "scores/out.parquet", str(tmp_path / "out.parquet"))
    assert read_table(tmp_path / "out.parquet").num_rows == 499


def test_a_column_bad_in_every_row_rejects_every_row_and_writes_an_empty_output(
    artifact: Artifact, tumours: pa.Table, tmp_path: Path
) -> None:
    column = tumours.column_names.index("mean_area")
    table = tumours.slice(0, 300).set_column(column, "mean_area", pa.array([-1.0] * 300))
    data = write_table(table, tmp_path / "in.parquet")
    options = BatchOptions(id_column="id")
    result = run_local(artifact, str(data), str(tmp_path / "out.parquet"), options)
    assert (result.rows, result.scored, result.rejected) == (300, 0, 300)
    out = read_table(tmp_path / "out.parquet")
    assert (out.num_rows, out.column_names) == (0, ["id", "p_malignant", "decision"])
    records = rejects_of(tmp_path / "out.parquet")
    assert [r["row"] for r in records] == list(range(300))
    assert {(r["column"], r["message"]) for r in records} == {
        ("mean_area", "-1.0 is outside the allowed range [0.0, None]")
    }
