"""Score a Spark DataFrame through a bundle, in Arrow batches, with the same executor.

Copied into every bundle; imports pyspark only when called. The bundle's verified
files travel to the executors as a broadcast variable; each Python worker writes
them once to a local folder keyed by the manifest's hash, checks them again, and
imports the bundle from there, so the cluster needs no Shipyard and no shared disk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._errors import SchemaError, UsageError
from ._executor import Executor
from ._manifest import MANIFEST, sha256

_SPARK_TYPES = {
    "float64": "double",
    "int64": "bigint",
    "bool": "boolean",
    "string": "string",
    "datetime": "timestamp",
    "list[float64]": "array<double>",
}


def _make_worker(
    files: Any, package: str, key: str, table: str, outputs: tuple[str, ...], passthrough: tuple[str, ...]
) -> Any:
    # Everything the worker needs is a local name or an import inside the function, so
    # cloudpickle sends it by value and the worker needs nothing importable in advance.
    def score(batches: Iterator[Any]) -> Iterator[Any]:
        import importlib
        import os
        import sys
        import tempfile

        root = os.path.join(tempfile.gettempdir(), "shipyard-bundles", key)
        if not os.path.isdir(os.path.join(root, package)):
            os.makedirs(os.path.dirname(root), exist_ok=True)
            staging = tempfile.mkdtemp(prefix=key[:12], dir=os.path.dirname(root))
            for relative, data in files.value.items():
                path = os.path.join(staging, package, *relative.split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as handle:
                    handle.write(data)
            try:
                os.rename(staging, root)
            except OSError:  # another worker finished first; its copy is identical
                pass
        if root not in sys.path:
            sys.path.insert(0, root)
        runtime = importlib.import_module(f"{package}._runtime")
        executor = runtime.cached_executor(os.path.join(root, package))
        for batch in batches:
            yield executor.score_arrow_batch(batch, table, outputs, passthrough)

    return score


def score_dataframes(
    executor: Executor,
    package: str,
    tables: Mapping[str, Any],
    outputs: Sequence[str] | None = None,
    passthrough: Sequence[str] = (),
) -> Any:
    """Score ``{table: DataFrame}``; return a DataFrame of ``passthrough`` columns and the outputs.

    Needs a pipeline with exactly one input table. Raises UnknownTable/MissingColumn on
    wrong input; rows that fail validation fail the Spark task with the SchemaError.
    """
    if len(executor.tables) != 1:
        raise UsageError(
            "the Spark entry point scores pipelines with one input table; "
            f"this one declares {', '.join(executor.tables)}"
        )
    (table,) = executor.tables
    unknown = [name for name in tables if name != table]
    if unknown:
        raise SchemaError(f"unknown table (the pipeline declares: {table})", unknown[0])
    if table not in tables:
        raise SchemaError("table is missing from the input", table)
    frame = tables[table]
    plan = executor.plan(outputs)
    present = set(frame.columns)
    for column in plan.columns.get(table, ()):
        if column not in present:
            raise SchemaError("column is missing from the input", table, column)
    for column in passthrough:
        if column not in present:
            raise SchemaError("passthrough column is missing from the input", table, column)
    keep = list(dict.fromkeys([*passthrough, *(c for c in frame.columns if c in executor.tables[table].columns)]))
    selected = frame.select(*keep)
    schema_parts = [f"`{f.name}` {f.dataType.simpleString()}" for f in selected.schema.fields if f.name in passthrough]
    schema_parts += [f"`{name}` {_SPARK_TYPES[executor.dtype(name)]}" for name in plan.outputs]
    spark = frame.sparkSession
    key = sha256(executor.files[MANIFEST])
    files = spark.sparkContext.broadcast(dict(executor.files))
    worker = _make_worker(files, package, key, table, plan.outputs, tuple(passthrough))
    return selected.mapInArrow(worker, ", ".join(schema_parts))
