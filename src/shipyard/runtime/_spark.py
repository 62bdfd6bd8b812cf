"""Score a Spark DataFrame through a bundle, in Arrow batches, with the same executor.

Copied into every bundle; imports pyspark only when called. The bundle's verified
files travel to the executors as a broadcast variable. Each Python worker checks the
runtime's files against the manifest the driver sent, imports them from memory under
a name unique to the bundle (never from a path on disk, which another user could
have written first), and loads the executor from those same bytes, so the cluster
needs no Shipyard, no shared disk and no copy of the bundle.

The workers' llm nodes call the endpoint the driver gives (its key travels with the job,
in memory), else the one each worker's SHIPYARD_LLM_* variables name; with
``llm_calls`` each row carries the records of the calls made for it, so the driver can
write them beside the output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ._errors import MissingColumn, UnknownTable, UsageError
from ._executor import Executor
from ._llm import Endpoint, recorded_calls
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
    files: Any,
    key: str,
    table: str,
    outputs: tuple[str, ...],
    passthrough: tuple[str, ...],
    rejects: str | None = None,
    app_config: Mapping[str, Any] | None = None,
    endpoint: Mapping[str, Any] | None = None,
    llm_calls: str | None = None,
) -> Any:
    # Everything the worker needs is a local name or an import inside the function, so
    # cloudpickle sends it by value and the worker needs nothing importable in advance.
    manifest_name = MANIFEST

    def score(batches: Iterator[Any]) -> Iterator[Any]:
        import hashlib
        import importlib
        import importlib.abc
        import importlib.util
        import json
        import sys

        name = f"shipyard_bundle_{key[:32]}"
        runtime = sys.modules.get(name)
        if runtime is None:
            bundle = files.value
            manifest = bundle[manifest_name]
            entries = (
                json.loads(manifest)["files"] if hashlib.sha256(manifest).hexdigest() == key else {}
            )
            sources = {}
            for path, data in bundle.items():
                if path.startswith("_runtime/") and path.endswith(".py"):
                    if entries.get(path) != hashlib.sha256(data).hexdigest():
                        raise RuntimeError(f"bundle file '{path}' differs from the driver's")
                    sources[path[len("_runtime/") : -len(".py")]] = data

            class BundleRuntime(importlib.abc.MetaPathFinder, importlib.abc.Loader):
                """Serves this bundle's runtime modules from the verified bytes."""

                def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
                    if fullname != name and not fullname.startswith(name + "."):
                        return None
                    module = "__init__" if fullname == name else fullname[len(name) + 1 :]
                    if module not in sources:
                        return None
                    origin = f"<bundle {key[:12]}>/_runtime/{module}.py"
                    package = module == "__init__"
                    return importlib.util.spec_from_loader(
                        fullname, self, origin=origin, is_package=package
                    )

                def create_module(self, spec: Any) -> None:
                    return None

                def exec_module(self, module: Any) -> None:
                    short = module.__spec__.origin.rsplit("/", 1)[1][: -len(".py")]
                    code = compile(sources[short], module.__spec__.origin, "exec")
                    exec(code, module.__dict__)  # noqa: S102 - checked against the manifest above

            sys.meta_path.append(BundleRuntime())
            runtime = importlib.import_module(name)
        spark = importlib.import_module(f"{name}._spark")
        chosen = None if endpoint is None else spark.Endpoint(**endpoint)
        executor = runtime.cached_executor(key, files.value, endpoint=chosen)
        if app_config:
            executor = executor.with_app_config(app_config)
        for batch in batches:
            yield spark.score_batch(
                executor, batch, table, outputs, passthrough, rejects, llm_calls
            )

    return score


def score_batch(
    executor: Executor,
    batch: Any,
    table: str,
    outputs: Sequence[str],
    passthrough: Sequence[str],
    rejects: str | None,
    llm_calls: str | None,
) -> Any:
    """One Arrow batch scored on a worker (see ``score_dataframes``)."""
    if llm_calls is None:
        return _scored(executor, batch, table, outputs, passthrough, rejects)
    with recorded_calls() as calls:
        scored = _scored(executor, batch, table, outputs, passthrough, rejects)
    return scored.append_column(llm_calls, call_records(calls, scored, passthrough))


def _scored(
    executor: Executor,
    batch: Any,
    table: str,
    outputs: Sequence[str],
    passthrough: Sequence[str],
    rejects: str | None,
) -> Any:
    if rejects is None:
        return executor.score_arrow_batch(batch, table, outputs, passthrough)
    return executor.score_arrow_marked(batch, table, outputs, passthrough, rejects)


def call_records(
    calls: Sequence[Mapping[str, Any]], scored: Any, passthrough: Sequence[str]
) -> Any:
    """A ``list<string>`` Arrow array: for each row of ``scored``, its calls' records as JSON.

    A record (``recorded_calls``'s) names its row by its place among the rows scored,
    which come first in ``scored``, in order; here the row's ``passthrough`` values come
    first instead, and a row's records are in node order. Rows without calls get null.
    """
    import pyarrow as pa

    values = {name: scored.column(name).to_pylist() for name in passthrough}
    rows: list[list[str] | None] = [None] * scored.num_rows
    for call in sorted(calls, key=lambda c: (c["row"], c["node"])):
        row = call["row"]
        record = {name: values[name][row] for name in passthrough}
        record.update((k, v) for k, v in call.items() if k != "row")
        text = json.dumps(record, ensure_ascii=False, default=_plain)
        rows[row] = [*(rows[row] or []), text]
    return pa.array(rows, type=pa.list_(pa.string()))


def _plain(value: Any) -> Any:
    """A passthrough value json cannot write (a timestamp, a decimal) as text."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def score_dataframes(
    executor: Executor,
    package: str,
    tables: Mapping[str, Any],
    outputs: Sequence[str] | None = None,
    passthrough: Sequence[str] | str = (),
    rejects: str | None = None,
    *,
    app_config: Mapping[str, Any] | None = None,
    endpoint: Endpoint | None = None,
    llm_calls: str | None = None,
) -> Any:
    """Score ``{table: DataFrame}``; return a DataFrame of ``passthrough`` columns and the outputs.

    Needs a pipeline with exactly one input table and a classic (not Spark Connect)
    session. Raises UnknownTable or MissingColumn on wrong input, UsageError on an
    unknown output; a row that fails validation fails the Spark job with the SchemaError
    (naming table, column and row, and the row's passthrough values) unless ``rejects``
    names a column: then every row is returned, a row that fails validation with null
    outputs and its reason in that column as JSON (``{"table", "column", "message"}``),
    the others with a null there. ``package`` is the bundle's top folder, kept for the
    entry point's signature. Text columns declared numeric (a CSV read without a schema)
    are parsed on the workers. ``app_config`` (JSON data, sent with the job) is what
    features and rules that read app config see on the workers.

    ``endpoint`` is where the workers' llm nodes call (default: each worker's
    SHIPYARD_LLM_* variables); its key (a key file's, read now) travels with the job.
    ``llm_calls`` names an ``array<string>`` column to add: each row's llm call records
    (``recorded_calls``), as JSON text with the row's passthrough values in place of
    ``row``; null for a row that made no call. Raises EndpointError when ``endpoint``'s
    key file cannot be read.
    """
    if len(executor.tables) != 1:
        raise UsageError(
            "the Spark entry point scores pipelines with one input table; "
            f"this one declares {', '.join(executor.tables)}"
        )
    (table,) = executor.tables
    unknown = [name for name in tables if name != table]
    if unknown:
        raise UnknownTable(f"unknown table (the pipeline declares: {table})", unknown[0])
    if table not in tables:
        raise MissingColumn("table is missing from the input", table)
    passthrough = (passthrough,) if isinstance(passthrough, str) else tuple(passthrough)
    frame = tables[table]
    plan = executor.plan(outputs)
    present = set(frame.columns)
    for column in plan.columns.get(table, ()):
        if column not in present:
            raise MissingColumn("column is missing from the input", table, column)
    for column in passthrough:
        if column not in present:
            raise MissingColumn("passthrough column is missing from the input", table, column)
    clash = [name for name in plan.outputs if name in passthrough]
    if clash:
        raise UsageError(f"passthrough column '{clash[0]}' has the name of an output")
    if rejects is not None and rejects in (*passthrough, *plan.outputs):
        raise UsageError(f"the rejects column '{rejects}' has the name of another column")
    if llm_calls is not None and llm_calls in (*passthrough, *plan.outputs, rejects):
        raise UsageError(f"the llm calls column '{llm_calls}' has the name of another column")
    declared = executor.tables[table].columns
    keep = list(dict.fromkeys([*passthrough, *(c for c in frame.columns if c in declared)]))
    selected = frame.select(*keep)
    types = {f.name: f.dataType.simpleString() for f in selected.schema.fields}
    schema = [f"`{name}` {types[name]}" for name in passthrough]
    schema += [f"`{name}` {_SPARK_TYPES[executor.dtype(name)]}" for name in plan.outputs]
    if rejects is not None:
        schema.append(f"`{rejects}` string")
    if llm_calls is not None:
        schema.append(f"`{llm_calls}` array<string>")
    config = dict(executor.with_app_config(app_config).app_config)  # checked: a mapping
    sent = None
    if endpoint is not None:  # plain data: the workers build their own bundle's Endpoint
        sent = {
            "base_url": endpoint.base_url,
            "api_key": endpoint.key(),
            "concurrency": endpoint.concurrency,
        }
    files = frame.sparkSession.sparkContext.broadcast(dict(executor.files))
    key = sha256(executor.files[MANIFEST])
    worker = _make_worker(
        files, key, table, plan.outputs, passthrough, rejects, config, sent, llm_calls
    )
    return selected.mapInArrow(worker, ", ".join(schema))
