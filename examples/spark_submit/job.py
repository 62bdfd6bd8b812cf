"""Score a file on Spark with a Shipyard bundle, on a cluster that has no Shipyard.

    spark-submit --master yarn --archives tumour_triage-1.0.0.tar.gz#model job.py \\
        --input hdfs:///data/tumours.csv --output hdfs:///scores/tumours --id-column id

``--archives NAME-VERSION.tar.gz#model`` unpacks the bundle as ``model/`` beside the driver
and every executor. This script imports the bundle's own ``pyspark_dataframe`` entry point
(which checks every file against MANIFEST.json on import, and the signature when
SHIPYARD_PUBLIC_KEY is set), reads the input with spark.read, scores it in Arrow batches
with the bundle's executor, and writes two folders: the scores (the id column and the
outputs) and, beside them, ``NAME.rejects.jsonl`` with one record per row that failed
validation (id, table, column, message). Nothing here imports Shipyard: the cluster needs
pyspark, pyarrow and the libraries in the bundle's requirements.txt.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from pyspark import SparkFiles, StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

READERS = {"csv": "csv", "parquet": "parquet", "jsonl": "json"}
REASON = "_reject"


def bundle_folder(alias: str) -> Path:
    """Where --archives unpacked the bundle: ./ALIAS on YARN and Kubernetes, else SparkFiles."""
    local = Path(alias)
    return local if local.is_dir() else Path(SparkFiles.get(alias))


def load_entry_point(root: Path) -> tuple[str, Any, dict[str, Any]]:
    """The bundle's package name, its pyspark_dataframe module, and its input_info.json."""
    (package,) = [p.name for p in root.iterdir() if (p / "pyspark_dataframe").is_dir()]
    sys.path.insert(0, str(root))
    entry = importlib.import_module(f"{package}.pyspark_dataframe")  # verifies the bundle
    input_info = json.loads((root / package / "input_info.json").read_text())
    return package, entry, input_info


def score(
    package: str, entry: Any, table: str, frame: Any, outputs: list[str] | None, key: str
) -> Any:
    """The scored DataFrame: ``key``, the outputs, and the reason a row was rejected (or null)."""
    tables = {table: frame}
    if "rejects" in inspect.signature(entry.main).parameters:
        return entry.main(tables, outputs, (key,), rejects=REASON)
    # Bundles whose main() does not take rejects yet: their runtime's scoring function does.
    runtime = importlib.import_module(f"{package}._runtime._spark")
    return runtime.score_dataframes(
        entry._executor, package, tables, outputs, (key,), rejects=REASON
    )


def rejects_location(output: str) -> str:
    """Beside the output, named after all of it: ``scores.parquet.rejects.jsonl``."""
    return output.rstrip("/") + ".rejects.jsonl"


def write(frame: Any, location: str, fmt: str) -> None:
    """Write ``frame`` as a folder of ``fmt`` part files, replacing what was there."""
    writer = frame.write.mode("overwrite").format(READERS[fmt])
    if fmt == "csv":
        writer = writer.option("header", "true")
    if fmt == "jsonl":
        writer = writer.option("ignoreNullFields", "false")
    writer.save(location)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="model", help="the --archives alias (default: model)")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--format", choices=sorted(READERS), default="parquet")
    parser.add_argument("--input-format", choices=sorted(READERS))
    parser.add_argument("--id-column", required=True, help="copied to the scores and rejects")
    parser.add_argument("--outputs", help="comma-separated nodes (default: the bundle's outputs)")
    options = parser.parse_args()
    input_format = options.input_format or Path(options.input).suffix.lstrip(".") or "csv"
    input_format = "jsonl" if input_format in ("json", "ndjson") else input_format

    spark = SparkSession.builder.appName("score with a Shipyard bundle").getOrCreate()
    package, entry, input_info = load_entry_point(bundle_folder(options.bundle))
    (table,) = [t["name"] for t in input_info["tables"]]
    reader = spark.read.option("header", "true") if input_format == "csv" else spark.read
    frame = reader.format(READERS[input_format]).load(options.input)
    outputs = options.outputs.split(",") if options.outputs else None
    key = options.id_column
    scored = score(package, entry, table, frame, outputs, key)
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)

    reason = F.from_json(REASON, "table string, column string, message string")
    rejects = scored.where(F.col(REASON).isNotNull()).select(
        key,
        reason["table"].alias("table"),
        reason["column"].alias("column"),
        reason["message"].alias("message"),
    )
    write(rejects, rejects_location(options.output), "jsonl")
    write(scored.where(F.col(REASON).isNull()).drop(REASON), options.output, options.format)
    counts = {bool(r[0]): r[1] for r in scored.groupBy(F.col(REASON).isNull()).count().collect()}
    scored_rows, rejected = counts.get(True, 0), counts.get(False, 0)
    print(json.dumps({"rows": scored_rows + rejected, "scored": scored_rows, "rejected": rejected}))
    spark.stop()


if __name__ == "__main__":
    main()
