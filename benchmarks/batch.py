"""Batch scoring of 1,000,000 rows: Shipyard's engines vs the raw model and vs MLflow.

Run by ``run.py`` after ``prepare.py`` (models and bundles in WORK). Each measurement runs
in its own process, so its peak memory (VmHWM) is its own: Shipyard's in Shipyard's
environment, MLflow's in the benchmark environment (which has no Shipyard). Compared,
for HistGradientBoosting and LogisticRegression on a breast-cancer-shaped table:

* local: ``shipyard.batch.run_local`` (Parquet in, Parquet out, id column carried) with the
  ONNX and the native bundle; the limit is the raw model's ``predict_proba`` on the same
  rows already in memory as one numpy array (reading and writing not counted); MLflow is
  ``mlflow.pyfunc`` over the same file in pandas chunks of 50,000 rows, written back.
  Shipyard's peak memory is also measured on a 250,000-row file: it should not move.
* Spark at local[2]: ``shipyard.batch.run_spark`` vs ``mlflow.pyfunc.spark_udf``, both
  reading the Parquet file and writing Parquet, with Arrow batches of 50,000 rows; each
  first scores the 250,000-row file once (session, Python workers and model warm), then
  the 1,000,000-row file is timed.

Usage: ``python benchmarks/batch.py WORK BENCH_PYTHON`` (``measure …`` is internal).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROWS = 1_000_000
SMALL = 250_000
CHUNK = 50_000
REPEATS = 3  # local runs: the median of three, in one process
ARROW_BATCH = 50_000  # rows per Arrow batch on Spark, for both runners
MODELS = ("hist_gradient_boosting", "logistic_regression")
HERE = Path(__file__).resolve()


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def columns_of(work: Path, model: str) -> list[str]:
    state = pickle.loads((work / "models.pkl").read_bytes())
    return list(state["models"][model][1])


def bundle_of(work: Path, model: str, backend: str) -> Path:
    return work / "dist" / backend / f"bench_{model}-1.0.0.tar.gz"


# -- measurements (each runs in a fresh process) -------------------------------------------


def median_seconds(run: Callable[[], Any]) -> float:
    """The median wall time of ``REPEATS`` calls of ``run``."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_local(work: Path, model: str, backend: str, data: str) -> dict[str, Any]:
    from shipyard.batch import BatchOptions, run_local

    bundle = bundle_of(work, model, backend)
    options = BatchOptions(id_column="id")
    with tempfile.TemporaryDirectory() as folder:
        # Each run opens and verifies the bundle and loads its model: all of a real run.
        seconds = median_seconds(lambda: run_local(bundle, data, f"{folder}/out.parquet", options))
    return {"rows": pq_rows(data), "seconds": seconds}


def pq_rows(data: str) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(data).metadata.num_rows)


def measure_raw(work: Path, model: str, data: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    fitted = pickle.loads((work / "models.pkl").read_bytes())["models"][model][0]
    table = pq.read_table(data, columns=columns_of(work, model))
    matrix = table.to_pandas().to_numpy()
    del table
    fitted.predict_proba(matrix[:1000])  # warm-up
    return {"rows": len(matrix), "seconds": median_seconds(lambda: fitted.predict_proba(matrix))}


def _mlflow_model(work: Path, model: str, folder: str) -> str:
    import mlflow.sklearn

    fitted = pickle.loads((work / "models.pkl").read_bytes())["models"][model][0]
    path = f"{folder}/{model}"
    mlflow.sklearn.save_model(
        fitted, path, pyfunc_predict_fn="predict_proba", serialization_format="cloudpickle"
    )
    return path


def measure_mlflow(work: Path, model: str, data: str) -> dict[str, Any]:
    import mlflow.pyfunc
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = columns_of(work, model)
    with tempfile.TemporaryDirectory() as folder:
        path = _mlflow_model(work, model, folder)

        def score() -> None:
            pyfunc = mlflow.pyfunc.load_model(path)
            writer = None
            for batch in pq.ParquetFile(data).iter_batches(CHUNK, columns=["id", *columns]):
                frame = batch.to_pandas()
                scores = pyfunc.predict(frame[columns])
                out = pd.DataFrame({"id": frame["id"], "p_malignant": scores[:, 1]})
                table = pa.Table.from_pandas(out, preserve_index=False)
                writer = writer or pq.ParquetWriter(f"{folder}/out.parquet", table.schema)
                writer.write_table(table)
            assert writer is not None
            writer.close()

        return {"rows": pq_rows(data), "seconds": median_seconds(score)}


def _spark(master: str) -> Any:
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        SparkSession.builder.master(master)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.range(10).count()  # start-up is not what we measure
    return spark


def measure_spark(work: Path, model: str, backend: str, data: str, warm: str) -> dict[str, Any]:
    from shipyard.batch import BatchOptions, run_spark

    spark = _spark("local[2]")
    bundle = bundle_of(work, model, backend)
    options = BatchOptions(id_column="id", arrow_batch_rows=ARROW_BATCH)
    with tempfile.TemporaryDirectory() as folder:
        # One run on the small file first: Python workers start and load the model once.
        run_spark(bundle, warm, f"{folder}/warm", options, spark=spark)
        start = time.perf_counter()
        result = run_spark(bundle, data, f"{folder}/out.parquet", options, spark=spark)
        seconds = time.perf_counter() - start
    spark.stop()
    return {"rows": result.rows, "seconds": seconds}


def measure_spark_udf(work: Path, model: str, data: str, warm: str) -> dict[str, Any]:
    import mlflow.pyfunc

    spark = _spark("local[2]")
    columns = columns_of(work, model)
    with tempfile.TemporaryDirectory() as folder:
        path = _mlflow_model(work, model, folder)

        def score(source: str, target: str) -> None:
            udf = mlflow.pyfunc.spark_udf(spark, path, result_type="array<double>")
            frame = spark.read.parquet(source)
            scored = frame.select("id", udf(*columns).getItem(1).alias("p_malignant"))
            scored.write.parquet(target)

        score(warm, f"{folder}/warm")  # as for Shipyard: workers started, model loaded
        start = time.perf_counter()
        score(data, f"{folder}/out.parquet")
        seconds = time.perf_counter() - start
        rows = spark.read.parquet(f"{folder}/out.parquet").count()
    spark.stop()
    return {"rows": rows, "seconds": seconds}


MEASURES = {
    "local": measure_local,
    "raw": measure_raw,
    "mlflow": measure_mlflow,
    "spark": measure_spark,
    "spark_udf": measure_spark_udf,
}


# -- orchestration ----------------------------------------------------------------------


def tumour_rows(rows: int, seed: int) -> Any:
    """A breast-cancer-shaped pyarrow Table: ``id`` and the 30 measurements (the names of
    prepare.py), resampled from scikit-learn's data with 2 % noise, never negative."""
    import numpy as np
    import pyarrow as pa
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(raw.data), rows)
    columns: dict[str, Any] = {"id": pa.array([f"T{i:07d}" for i in range(rows)])}
    for i, name in enumerate(raw.feature_names):
        sample = raw.data[picks, i] * (1.0 + rng.normal(0.0, 0.02, rows))
        columns[re.sub(r"\W+", "_", name.strip())] = np.round(np.maximum(sample, 0.0), 6)
    return pa.table(columns)


def prepare_data(work: Path) -> dict[int, Path]:
    """Breast-cancer-shaped Parquet files of 1,000,000 and 250,000 rows (made once)."""
    import pyarrow.parquet as pq

    folder = work / "batch"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for rows in (ROWS, SMALL):
        path = folder / f"tumours-{rows}.parquet"
        if not path.exists():
            print(f"  generating {rows:,} rows …", flush=True)
            pq.write_table(tumour_rows(rows, seed=rows), path, row_group_size=65_536)
        files[rows] = path
    return files


def run(python: Path, kind: str, *args: str) -> dict[str, Any]:
    """One measurement in a fresh process: its rows/s and peak memory."""
    command = [str(python), str(HERE), "measure", kind, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(work: Path, bench_python: Path) -> None:
    files = prepare_data(work)
    big, small = str(files[ROWS]), str(files[SMALL])
    here = Path(sys.executable)
    table = []
    for model in MODELS:
        print(f"  {model} …", flush=True)
        raw = run(here, "raw", str(work), model, big)
        rows = [("local", "raw predict_proba (in memory)", raw, None)]
        for backend in ("onnx", "native"):
            found = run(here, "local", str(work), model, backend, big)
            again = run(here, "local", str(work), model, backend, small)
            rows.append(("local", f"shipyard local ({backend})", found, again))
        mlflow = run(bench_python, "mlflow", str(work), model, big)
        rows.append(("local", "mlflow.pyfunc, pandas chunks", mlflow, None))
        spark = run(here, "spark", str(work), model, "onnx", big, small)
        udf = run(bench_python, "spark_udf", str(work), model, big, small)
        rows.append(("spark", "shipyard spark (onnx)", spark, None))
        rows.append(("spark", "mlflow spark_udf", udf, None))
        table.append((model, raw, udf, rows))
    print()
    header = (
        f"{'model':22s} {'engine':6s} {'runner':30s} {'rows/s':>10s} {'peak MB':>8s} "
        f"{'@250k MB':>8s} {'vs limit':>8s} {'vs udf':>7s}"
    )
    print(header)
    print("-" * len(header))
    for model, raw, udf, rows in table:
        limit_rate = raw["rows"] / raw["seconds"]
        udf_rate = udf["rows"] / udf["seconds"]
        for engine, label, found, small_run in rows:
            rate = found["rows"] / found["seconds"]
            at_small = f"{small_run['peak_mb']:8.0f}" if small_run else f"{'':8s}"
            limit = f"{rate / limit_rate:.2f}x" if engine == "local" else ""
            versus = f"{rate / udf_rate:.2f}x" if engine == "spark" else ""
            print(
                f"{model:22s} {engine:6s} {label:30s} {rate:10,.0f} {found['peak_mb']:8.0f} "
                f"{at_small} {limit:>8s} {versus:>7s}"
            )
    print(
        f"\n{ROWS:,} rows, Parquet in and out; rows/s of the whole run (load, read, score, write)"
        " except for the raw limit (predict_proba only); peak MB = VmHWM of the process;"
        " local runs are medians of 3; '@250k' = the same run on 250,000 rows;"
        " Spark runs timed warm (see the docstring),"
        " their peak MB is the driver's Python process only."
    )


def measure(kind: str, work: str, *args: str) -> None:
    import warnings

    warnings.simplefilter("ignore")
    found = MEASURES[kind](Path(work), *args)
    print(json.dumps({**found, "peak_mb": peak_mb()}))


if __name__ == "__main__":
    if sys.argv[1] == "measure":
        measure(*sys.argv[2:])
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
