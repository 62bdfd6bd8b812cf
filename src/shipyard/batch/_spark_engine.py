"""The Spark engine: score a file on Spark with the bundle's own Spark runtime.

The bundle is verified and its models loaded on the driver under the run's policy
(``BatchOptions.allow_unsafe``, as the local engine does: a plain pickle is refused
unless allowed), the bundle's ``_runtime._spark`` (what its ``pyspark_dataframe`` entry
point calls) is imported from a temporary folder, the input is read with ``spark.read``,
scored in Arrow batches by the bundle's own executor on the workers (the bundle's files
travel as a broadcast: the cluster needs only the libraries of requirements.txt), and
written with ``df.write``. Rows that fail validation come back marked with their reason
and are written beside the output, as on the local engine; so are CSV lines with the
wrong number of fields (Spark keeps their text in a corrupt-record column) and JSON Lines
lines that are not one JSON object (each line is read as text and judged by
``_reasons.json_record``, as the local engine judges it), with the local engine's reason
and row number, and never scored. A pipeline with an llm node calls
``BatchOptions.endpoint`` from the workers (else the one the driver's SHIPYARD_LLM_*
variables name, else their own), and each scored row brings back the records of its calls
in a column, written beside the output as the local engine's ``NAME.llm_calls.jsonl``.
Spark writes folders of part files; on a local disk they are written under a temporary
name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import UsageError
from ..runtime import Artifact
from . import _reasons
from ._io import ROW, formats, rejects_location
from ._local import BatchResult, llm_calls_location, provenance
from ._options import BatchOptions

REASON = "_reject"  # the column the entry point marks a rejected row's reason in
CALLS = "_llm_calls"  # the column a scored row's llm call records come back in
UNREADABLE = "_shipyard_unreadable"  # the text of a line that holds no record, as read
# Spark parses only the CSV columns a query uses unless told otherwise, and then cannot
# see that a line has too few or too many fields.
_CSV_PRUNING = "spark.sql.csv.parser.columnPruning.enabled"
_ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"
_REASON_SCHEMA = "table string, column string, message string"
_SPARK_FORMATS = {"csv": "csv", "parquet": "parquet", "jsonl": "json"}


def spark_session(master: str) -> Any:
    """The active SparkSession, or a new one on ``master`` (local[*], spark://…, yarn).

    A local master runs its Python workers with this interpreter, which has the bundle's
    libraries.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.master(master)
        .appName("shipyard batch")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )


@contextlib.contextmanager
def bundle_runtime(artifact: Artifact, folder: str) -> Iterator[ModuleType]:
    """The bundle's own ``_runtime._spark`` module, imported from ``folder`` (driver only).

    Only the runtime's code is imported, not an entry point: importing one loads every
    model as it stands, whatever the run allows. Removed from ``sys.path`` and
    ``sys.modules`` afterwards.
    """
    artifact.extract(None, folder)
    package = artifact.package
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module(f"{package}._runtime._spark")
    finally:
        sys.path.remove(folder)
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def score_with_rejects(
    runtime: ModuleType,
    executor: Any,
    package: str,
    table: str,
    frame: Any,
    outputs: Sequence[str] | None,
    passthrough: Sequence[str],
    app_config: Mapping[str, Any] | None = None,
    endpoint: Any = None,
    calls_llm: bool = False,
) -> Any:
    """The scored DataFrame: ``passthrough``, the outputs, ``_reject`` (null when valid) and,
    when ``calls_llm``, ``_llm_calls`` (each row's call records as JSON texts).

    ``runtime`` is the bundle's ``_runtime._spark``; ``executor`` the bundle loaded on the
    driver under the run's policy; ``app_config`` goes to the workers when the bundle's
    runtime takes it (a bundle exported before had no node that reads app config), and
    ``endpoint`` (where the workers' llm nodes call; None: their own variables) with
    ``calls_llm``. Raises UsageError for a bundle exported before Spark could set rejected
    rows aside, or (``calls_llm``) before it could record llm calls.
    """
    accepts = inspect.signature(runtime.score_dataframes).parameters
    if "rejects" not in accepts:
        raise UsageError(
            f"bundle {package} was exported before Spark scoring could set bad rows aside; "
            "export it again with this Shipyard"
        )
    tables = {table: frame}
    configured: dict[str, Any] = {}
    if app_config and "app_config" in accepts:
        configured["app_config"] = app_config
    if calls_llm:
        if "llm_calls" not in accepts:
            raise UsageError(
                f"bundle {package} was exported before Spark scoring could record llm calls "
                "or call an environment's endpoint; export it again with this Shipyard"
            )
        configured.update(llm_calls=CALLS, endpoint=endpoint)
    return runtime.score_dataframes(
        executor, package, tables, outputs, tuple(passthrough), rejects=REASON, **configured
    )


def with_row_numbers(frame: Any) -> Any:
    """``frame`` with ``_row``: each record's number from 0, in file order for one input file.

    One extra pass counts the records of each partition; the numbers are then the
    partition's offset plus the record's place in it (all in the JVM).
    """
    from pyspark.sql import functions as F

    tagged = frame.withColumn("_id", F.monotonically_increasing_id())
    partition = F.shiftright(F.col("_id"), 33)  # the id's upper bits hold the partition
    counts = sorted(tuple(r) for r in tagged.groupBy(partition.alias("p")).count().collect())
    offsets: list[Any] = []
    total = 0
    for number, count in counts:
        offsets += [F.lit(number), F.lit(total)]
        total += count
    if not offsets:
        return frame.withColumn(ROW, F.lit(None).cast("bigint"))
    place = F.col("_id").bitwiseAND((1 << 33) - 1)
    row = F.create_map(*offsets)[partition] + place
    return tagged.withColumn(ROW, row.cast("bigint")).drop("_id")


def read_input(spark: Any, location: str, fmt: str) -> Any:
    """The input file as a DataFrame: CSV with its header, every column as text.

    A CSV frame also has ``_shipyard_unreadable``: the text of a line whose number of
    fields differs from the header's (null for the others; read with the session's CSV
    column pruning off, or Spark would not notice). So does a JSON Lines frame, for a
    line that is not one JSON object (see ``_read_json_lines``).
    """
    if fmt == "jsonl":
        return _read_json_lines(spark, location)
    if fmt != "csv":
        return spark.read.format(_SPARK_FORMATS[fmt]).load(location)
    from pyspark.sql.types import StringType, StructField, StructType

    header = spark.read.option("header", "true").csv(location).columns
    if UNREADABLE in header:
        raise UsageError(f"'{location}' has a column named '{UNREADABLE}', which Shipyard uses")
    fields = [StructField(name, StringType()) for name in [*header, UNREADABLE]]
    return (
        spark.read.schema(StructType(fields))
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", UNREADABLE)
        .csv(location)
    )


def _read_json_lines(spark: Any, location: str) -> Any:
    """JSON Lines as a DataFrame of their records, one row a non-blank line, in file order.

    Spark's JSON reader would read a line holding an array as several records (``[]``
    as none), and a line with text after its object as that object; so each line is
    read as text (split at line feeds only, blank lines skipped, as the local engine reads
    it), judged by ``_reasons.json_record`` on the workers (``_shipyard_unreadable``
    holds the text of a line that is no record), and parsed with the schema Spark
    infers from the file.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    inferred = spark.read.option("lineSep", "\n").json(location).schema
    if UNREADABLE in inferred.fieldNames():
        raise UsageError(f"'{location}' has a field named '{UNREADABLE}', which Shipyard uses")
    # Spark's own corrupt-record column, present when it met a line it could not parse
    schema = StructType([f for f in inferred.fields if f.name != "_corrupt_record"])
    lines = spark.read.option("lineSep", "\n").text(location)
    lines = lines.where(F.col("value").rlike(r"\S"))  # \s: the whitespace bytes.strip drops
    reason = F.udf(_reasons.json_reason, "string", useArrow=True)
    return lines.select(
        F.from_json(F.col("value"), schema).alias("record"),
        F.when(reason(F.col("value")).isNotNull(), F.col("value")).alias(UNREADABLE),
    ).select("record.*", UNREADABLE)


def json_line_reasons() -> Callable[[str | None, Any], str | None]:
    """The reason for a JSON Lines line that holds no record (None for None), as the local
    engine words it (``_reasons.json_reason``). The second argument is ignored (the CSV
    reason's caller passes a field too). Runs on the workers: the function and
    ``_reasons`` travel by value.
    """
    json_reason = _reasons.json_reason

    def reason(text: str | None, field: Any = None) -> str | None:
        return None if text is None else json_reason(text)

    return reason


def line_reasons(expected: int) -> Callable[[str | None, Any], str | None]:
    """The reason for an unreadable CSV line's text (None for None), as the local engine words it.

    Its fields are counted with Python's csv module (as pyarrow counts them for any line
    quoted the usual way). The second argument is ignored: Spark refuses a query of a CSV
    file that reads its corrupt-record column alone, so the caller passes a field too.
    Runs on the workers: the function and ``_reasons`` travel by value.
    """
    wrong_field_count = _reasons.wrong_field_count

    def reason(text: str | None, field: Any = None) -> str | None:
        import csv

        if text is None:
            return None
        fields = next(csv.reader([text]), [])
        return wrong_field_count(len(fields), expected, text)

    return reason


def write_output(frame: Any, location: str, fmt: str) -> None:
    """Write ``frame`` as a folder of part files; on a local disk under a temporary name first.

    ``fmt``: csv, parquet, jsonl, or text (a frame of one string column, a line per row).
    """
    writer = frame.write.format({**_SPARK_FORMATS, "text": "text"}[fmt])
    if fmt == "csv":
        writer = writer.option("header", "true")
    elif fmt == "jsonl":  # every record names every field, as the local engine writes them
        writer = writer.option("ignoreNullFields", "false")
    if "://" in location:  # hdfs://, s3a://: the job committer publishes the files at the end
        writer.mode("overwrite").save(location)
        return
    final = Path(location).resolve()
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        writer.mode("error").save(str(temporary))
        if final.is_dir():
            shutil.rmtree(final)
        elif final.exists():
            final.unlink()
        os.replace(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def run_spark(
    bundle: str | os.PathLike[str],
    input: str,
    output: str,
    options: BatchOptions | None = None,
    *,
    spark: Any = None,
) -> BatchResult:
    """Score ``input`` on Spark with ``bundle`` into the folder ``output``, rejects beside it.

    The same outputs, id column (or ``_row``) and reject records as ``run_local``, from
    the same ``options``; the output and ``NAME.rejects.jsonl`` are folders of part
    files. A pipeline with an llm node calls ``options.endpoint`` from the workers (None:
    the one this host's SHIPYARD_LLM_* variables name, else each worker's own) and writes
    ``NAME.llm_calls.jsonl`` too, a folder of part files holding the local engine's
    records. ``spark``: a session to use
    (default: the active one, or a new one on ``options.master``, stopped at the end).
    ``options.arrow_batch_rows``: rows per Arrow batch sent to the Python workers during
    the run (Spark's ``spark.sql.execution.arrow.maxRecordsPerBatch``, 10,000 by default:
    larger batches score faster; the session's own value is put back afterwards).
    ``options.allow_unsafe`` False refuses a plain pickle (or a skops type beyond the
    allow-list) with ModelError on the driver, before Spark runs anything.
    Raises UsageError, the bundle's ArtifactError, ModelError, EndpointError (the
    endpoint's key file cannot be read), or Spark's error when the job fails.
    """
    from pyspark import StorageLevel, cloudpickle
    from pyspark.sql import functions as F

    cloudpickle.register_pickle_by_value(_reasons)  # the workers may have no Shipyard
    started = time.perf_counter()
    options = options or BatchOptions()
    id_column = options.id_column
    input_format, format = formats(input, output, options.format, options.input_format)
    artifact = Artifact(bundle, options.public_key)
    # Loaded here, under the run's policy, before Spark sees a byte: a plain pickle that
    # allow_unsafe does not allow is refused now (ModelError). The workers load only the
    # files this load verified: each checks them against the manifest the driver sent.
    executor = artifact.executor(
        public_key=options.public_key,
        allow_unsafe=options.allow_unsafe,
        endpoint=options.endpoint,
    )
    tables = list(executor.tables)
    if len(tables) != 1:
        raise UsageError(f"batch scoring needs one input table; this bundle has {tables}")
    plan = executor.plan(options.outputs)
    calls_llm = any(executor.nodes[n]["kind"] == "llm" for n in plan.nodes)
    endpoint = _driver_endpoint(options.endpoint) if calls_llm else None
    owned = spark is None and _no_active_session()
    session = spark or spark_session(options.master)
    key = id_column or ROW
    rejects = rejects_location(output)
    calls = llm_calls_location(output) if calls_llm else None
    settings = {_ARROW_BATCH: str(options.arrow_batch_rows), _CSV_PRUNING: "false"}
    try:
        with (
            _session_conf(session, settings),
            tempfile.TemporaryDirectory(prefix="shipyard-spark-") as folder,
            bundle_runtime(artifact, folder) as runtime,
        ):
            frame = read_input(session, input, input_format)
            if id_column is not None and id_column not in frame.columns:
                raise UsageError(f"'{input}' has no column '{id_column}'")
            header = [c for c in frame.columns if c != UNREADABLE]
            reasons = line_reasons(len(header)) if input_format == "csv" else json_line_reasons()
            if id_column != ROW:  # a reject's row is the record's number, with an id too
                frame = with_row_numbers(frame)
            unreadable = None
            if UNREADABLE in frame.columns:
                # Such a line is a reject, never scored: none of it goes to a model or an
                # endpoint (the local engine does not score it either).
                unreadable = frame.where(F.col(UNREADABLE).isNotNull())
                frame = frame.where(F.col(UNREADABLE).isNull()).drop(UNREADABLE)
            scored = score_with_rejects(
                runtime,
                executor,
                artifact.package,
                tables[0],
                frame,
                options.outputs,
                [key] if key == ROW else [key, ROW],
                options.app_config,
                endpoint,
                calls_llm,
            )
            persisted = scored.persist(StorageLevel.MEMORY_AND_DISK)
            counts = _write_all(persisted, unreadable, key, header, output, format, calls, reasons)
    finally:
        if owned:
            session.stop()
    scored_rows, rejected = counts.get(True, 0), counts.get(False, 0)
    return BatchResult(
        engine="spark",
        input=input,
        output=output,
        rejects=rejects,
        format=format,
        rows=scored_rows + rejected,
        scored=scored_rows,
        rejected=rejected,
        seconds=time.perf_counter() - started,
        llm_calls=calls,
        provenance=provenance(artifact, options),
    )


def _write_all(
    scored: Any,
    unreadable: Any,
    key: str,
    header: Sequence[str],
    output: str,
    fmt: str,
    calls: str | None,
    line_reason: Callable[[str | None, Any], str | None],
) -> dict[bool, int]:
    """Write the valid rows to ``output``, the rejected ones beside it and the call records
    to ``calls`` (when given); count the valid (True) and rejected (False) rows.

    ``scored`` is persisted (every write and the count read it once computed), with
    ``_reject`` (null when valid) and, with ``calls``, ``_llm_calls``. ``unreadable`` (None
    when every line was read) are the lines that hold no record (a CSV line the ``header``
    does not fit, a JSON line that is no object): rejected with no id, table or column, as
    on the local engine, for ``line_reason`` of their text (run on the workers).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    lines = None
    try:
        ok = F.col(REASON).isNull()
        reason = F.from_json(F.col(REASON), _REASON_SCHEMA)
        bad = scored.where(~ok).select(
            F.col(key),
            reason["table"].alias("table"),
            reason["column"].alias("column"),
            F.col(ROW).alias("row"),
            reason["message"].alias("message"),
        )
        if unreadable is not None:
            judge = F.udf(line_reason, "string", useArrow=False)
            none = F.lit(None).cast("string")
            lines = unreadable.select(
                (F.col(key) if key == ROW else F.lit(None).cast(scored.schema[key].dataType)).alias(
                    key
                ),
                none.alias("table"),
                none.alias("column"),
                F.col(ROW).alias("row"),
                judge(F.col(UNREADABLE), F.col(header[0])).alias("message"),
            ).persist(StorageLevel.MEMORY_AND_DISK)  # few: kept for the count below
            bad = bad.unionByName(lines)
        write_output(bad, rejects_location(output), "jsonl")
        if calls is not None:
            made = scored.where(ok & F.col(CALLS).isNotNull())
            write_output(made.select(F.explode(CALLS).alias("value")), calls, "text")
        internal = [REASON, *([ROW] if key != ROW else []), *([CALLS] if calls else [])]
        write_output(scored.where(ok).drop(*internal), output, fmt)
        counts = scored.groupBy(ok.alias("ok")).count().collect()
        found = {bool(r[0]): int(r[1]) for r in counts}
        if lines is not None:
            found[False] = found.get(False, 0) + lines.count()
        return found
    finally:
        scored.unpersist()
        if lines is not None:
            lines.unpersist()


@contextlib.contextmanager
def _session_conf(session: Any, settings: Mapping[str, str]) -> Iterator[None]:
    """``settings`` on the session for the block; the session's own values put back after."""
    previous = {name: session.conf.get(name, None) for name in settings}
    for name, value in settings.items():
        session.conf.set(name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                session.conf.unset(name)
            else:
                session.conf.set(name, value)


def _driver_endpoint(given: Any) -> Any:
    """The endpoint the workers call: ``given`` (an environment config's), else the one this
    host's SHIPYARD_LLM_* variables name, as the local engine would call; None when neither
    names one (each worker then reads its own variables). ModelError when they are malformed.
    """
    if given is not None:
        return given
    from ..runtime import Endpoint

    here = Endpoint.from_environ(os.environ)
    return here if here.base_url is not None else None


def _no_active_session() -> bool:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() is None
