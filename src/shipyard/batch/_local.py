"""The local engine: score a file with a bundle in bounded memory, chunk by chunk.

Each chunk goes through the bundle's own executor (``Executor.score_arrow_rows``): the
rows that pass validation are scored, the others become reject records with the
reason. With ``workers`` > 1 chunks are scored in that many processes (each loads the
bundle once) and written in input order. Memory holds a few chunks at a time, whatever
the size of the file.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import BatchStopped, UsageError
from ..runtime import Artifact, Executor, arrow_type, reason, recorded_calls
from ._io import ROW, Chunk, Sink, Source, formats, rejects_location
from ._options import BatchOptions

REJECT_FIELDS = ("table", "column", "row", "message")

Scored = tuple[pa.RecordBatch, list[dict[str, Any]], list[dict[str, Any]]]


def llm_calls_location(output: str) -> str:
    """Where a run's llm call records go: beside the output, ``OUTPUT.llm_calls.jsonl``."""
    rejects = rejects_location(output)
    return rejects[: -len(".rejects.jsonl")] + ".llm_calls.jsonl"


@dataclass(frozen=True)
class Progress:
    """Where a run is: records read so far, how many were rejected, the share of the file
    read, and the llm calls made so far (also those of the chunk being scored)."""

    rows: int
    rejected: int
    fraction: float | None
    seconds: float
    llm_calls: int = 0


class CallCounter:
    """Counts the llm calls a run makes, across threads and (``shared``) worker processes."""

    def __init__(self, shared: Any = None) -> None:
        self._shared = shared  # a multiprocessing Value("q") the workers add to, or None
        self._lock = threading.Lock()
        self._count = 0

    def __call__(self, record: object = None) -> None:
        """One more call (``recorded_calls``'s ``on_call``)."""
        if self._shared is not None:
            with self._shared.get_lock():
                self._shared.value += 1
        else:
            with self._lock:
                self._count += 1

    @property
    def value(self) -> int:
        return int(self._shared.value) if self._shared is not None else self._count

    @property
    def shared(self) -> Any:
        """What worker processes add to (None: this process counts alone)."""
        return self._shared


@dataclass(frozen=True)
class BatchResult:
    """What a finished run did: ``rows`` read = ``scored`` + ``rejected``, always."""

    engine: str
    input: str
    output: str
    rejects: str
    format: str
    rows: int
    scored: int
    rejected: int
    seconds: float
    llm_calls: str | None = None  # the call records' file, when the pipeline calls an LLM
    # Which bundle scored: its name, version and sha256, and for a deployed version where
    # it ran (project, environment, revision, model, version). A Parquet output carries it
    # too, in its schema metadata under "shipyard.provenance".
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Records read per second of the whole run."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The result as plain JSON data, ``rows_per_second`` included."""
        return {**asdict(self), "rows_per_second": round(self.rows_per_second, 1)}

    def summary(self) -> str:
        """One line: rows, scored, rejected, seconds, rows/s, and where the files are."""
        line = (
            f"{self.rows:,} rows: {self.scored:,} scored, {self.rejected:,} rejected "
            f"in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s) -> {self.output}"
        )
        return line + (f"; rejects -> {self.rejects}" if self.rejected else "")


# shipyard.batch has always called it Stopped; it is the one tree's BatchStopped.
Stopped = BatchStopped


class ChunkScorer:
    """Scores chunks with one loaded bundle: output rows, and a reject record per failed row.

    Output rows are the id column (or ``_row``) and the outputs; a reject record is
    ``{id or _row, table, column, row, message}`` where ``row`` counts from the start of
    the input file.
    """

    def __init__(
        self, executor: Executor, outputs: Sequence[str] | None, id_column: str | None
    ) -> None:
        if len(executor.tables) != 1:
            raise UsageError(
                "batch scoring needs a pipeline with one input table; "
                f"this one declares {', '.join(executor.tables)}"
            )
        (self.table,) = executor.tables
        self.executor = executor
        self.plan = executor.plan(outputs)
        self.key = id_column or ROW
        if self.key in self.plan.outputs:
            raise UsageError(f"the id column '{self.key}' has the name of an output")
        self.passthrough = (self.key, ROW) if id_column and id_column != ROW else (ROW,)
        self.calls_llm = any(executor.nodes[n]["kind"] == "llm" for n in self.plan.nodes)
        self.on_call: CallCounter | None = None  # told of each llm call as it ends

    def needed_columns(self) -> list[str]:
        """The columns to read from the input: the declared ones and the id column."""
        declared = list(self.executor.tables[self.table].columns)
        return [*declared, *(c for c in self.passthrough if c != ROW and c not in declared)]

    def check_columns(self, present: Sequence[str] | None, location: str) -> None:
        """Refuse an input that lacks a column the outputs need, or the id column."""
        if present is None:
            return
        needed = [*self.plan.columns.get(self.table, ()), *self.passthrough[:-1]]
        missing = [c for c in needed if c not in present]
        if missing:
            raise UsageError(
                f"'{location}' has no column '{missing[0]}' "
                f"(it has: {', '.join(present) or 'none'})"
            )

    def output_schema(self, id_type: pa.DataType) -> pa.Schema:
        """The output file's columns: the id (of ``id_type``) or ``_row``, then the outputs."""
        fields = [pa.field(self.key, id_type if self.key != ROW else pa.int64())]
        fields += [pa.field(n, arrow_type(self.executor.dtype(n))) for n in self.plan.outputs]
        return pa.schema(fields)

    def score(self, chunk: Chunk) -> Scored:
        """The chunk's output rows, its reject records (unreadable records included) and a
        record of each llm call made for it (``shipyard.runtime.recorded_calls``), each
        carrying the row's id and ``_row`` instead of its place in the chunk."""
        batch = chunk.batch
        with recorded_calls(self.on_call) as calls:
            scored, rejected = self.executor.score_arrow_rows(
                batch, self.table, self.plan.outputs, self.passthrough
            )
        if calls:
            ids = scored.column(self.key).to_pylist()
            numbers = scored.column(ROW).to_pylist()
            calls = [
                {self.key: ids[c["row"]], ROW: numbers[c["row"]]}
                | {k: v for k, v in c.items() if k != "row"}
                for c in sorted(calls, key=lambda c: (c["row"], c["node"]))
            ]
        if self.key != ROW:
            scored = scored.drop_columns([ROW])
        keys = batch.column(self.key).to_pylist() if rejected else []
        rows = batch.column(ROW).to_pylist() if rejected else []
        records = [
            {
                self.key: keys[i],
                "table": error.table,
                "column": error.column,
                "row": rows[i],
                "message": reason(error),
            }
            for i, error in rejected
        ]
        for row, message in chunk.unreadable:
            key = row if self.key == ROW else None
            records.append(
                {self.key: key, "table": None, "column": None, "row": row, "message": message}
            )
        return scored, records, calls


PROVENANCE_KEY = b"shipyard.provenance"


def provenance(artifact: Artifact, options: BatchOptions) -> dict[str, Any]:
    """What scored a run: the bundle's name, version and sha256, then ``options.provenance``.

    The file is hashed only when ``options.provenance`` does not already hold the digest
    (a batch job's worker checked it against the job before the run).
    """
    digest = (options.provenance or {}).get("digest")
    if digest is None:
        with open(artifact.path, "rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    metadata = artifact.metadata
    found = {"bundle": metadata["name"], "bundle_version": metadata["version"], "digest": digest}
    return {**found, **(options.provenance or {})}


def load_executor(
    bundle: str | os.PathLike[str] | Artifact,
    public_key: Any = None,
    allow_unsafe: bool = True,
    app_config: Mapping[str, Any] | None = None,
    endpoint: Any = None,
) -> Executor:
    """The verified bundle's executor (every file checked, and the signature when a key is set),
    running with ``app_config``.

    ``endpoint`` is where its llm nodes call (default: the host's SHIPYARD_LLM_*). Raises
    TamperedArtifact, SignatureError or ArtifactError; ModelError for a pickle (or a skops
    type beyond the allow-list) when ``allow_unsafe`` is False.
    """
    artifact = bundle if isinstance(bundle, Artifact) else Artifact(bundle, public_key)
    # verifies before anything is deserialised
    executor = artifact.executor(
        public_key=public_key, allow_unsafe=allow_unsafe, endpoint=endpoint
    )
    return executor.with_app_config(app_config) if app_config else executor


# -- worker processes ---------------------------------------------------------------------

_worker_scorer: ChunkScorer | None = None


def _start_worker(
    bundle: str,
    public_key: Any,
    allow_unsafe: bool,
    outputs: Sequence[str] | None,
    id_column: str | None,
    app_config: Mapping[str, Any],
    endpoint: Any = None,
    calls: Any = None,
) -> None:
    global _worker_scorer
    executor = load_executor(bundle, public_key, allow_unsafe, app_config, endpoint)
    _worker_scorer = ChunkScorer(executor, outputs, id_column)
    if calls is not None:
        _worker_scorer.on_call = CallCounter(calls)


def _score_in_worker(chunk: Chunk) -> Scored:
    assert _worker_scorer is not None, "the worker was not started with a bundle"
    return _worker_scorer.score(chunk)


def _pool_context() -> Any:
    # fork would copy the parent's threads (pyarrow's, a progress display's) mid-flight
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _scored_in_order(
    chunks: Iterator[Chunk],
    scorer: ChunkScorer,
    workers: int,
    bundle: Path,
    public_key: Any,
    allow_unsafe: bool = True,
    endpoint: Any = None,
    shared_calls: Any = None,
) -> Generator[tuple[Chunk, Scored], None, None]:
    """Each chunk with what scoring it gave, in input order; ``workers`` processes if > 1
    (each adding its llm calls to ``shared_calls``, a multiprocessing Value, when given)."""
    if workers <= 1:
        for chunk in chunks:
            yield chunk, scorer.score(chunk)
        return
    config = dict(scorer.executor.app_config)  # each worker loads the bundle with it too
    arguments = (
        *(str(bundle), public_key, allow_unsafe),
        *(scorer.plan.outputs, _id_column(scorer), config, endpoint, shared_calls),
    )
    with ProcessPoolExecutor(
        workers, mp_context=_pool_context(), initializer=_start_worker, initargs=arguments
    ) as pool:
        pending: deque[tuple[Chunk, Future[Any]]] = deque()
        try:
            for chunk in chunks:
                pending.append((chunk, pool.submit(_score_in_worker, chunk)))
                if len(pending) >= 2 * workers:  # bounded read-ahead keeps memory flat
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        finally:
            for _, future in pending:
                future.cancel()


class _Ticker:
    """Calls ``tick()`` on a thread every ``every`` seconds while ``count()`` has moved."""

    def __init__(self, tick: Callable[[], None], count: Callable[[], int], every: float = 0.5):
        self._tick, self._count, self._every = tick, count, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-llm-progress", daemon=True)

    def _run(self) -> None:
        seen = self._count()
        while not self._stop.wait(self._every):
            now = self._count()
            if now != seen:
                seen = now
                self._tick()

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _id_column(scorer: ChunkScorer) -> str | None:
    return None if scorer.key == ROW else scorer.key


def run_local(
    bundle: str | os.PathLike[str] | Artifact,
    input: str,
    output: str,
    options: BatchOptions | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BatchResult:
    """Score the file ``input`` with ``bundle`` into ``output`` and its reject file beside it.

    ``bundle``: a bundle file, or an opened ``Artifact`` (its loaded models are reused).
    ``options`` (BatchOptions) say how; the defaults score the pipeline's outputs by
    ``_row`` in chunks of 50,000 records. The output holds the id column (or ``_row``)
    and the outputs; rows that fail validation go to ``NAME.rejects.jsonl`` with the
    reason. A pipeline with an llm node also writes ``NAME.llm_calls.jsonl``: one record
    per call (the row's id, prompt hash and text, settings, the model the endpoint
    reported, tokens, latency, answer; see ``shipyard.runtime.recorded_calls``). The files
    appear only when the run completes (written under temporary names, then renamed).
    The llm calls of a chunk's rows are made ``concurrency`` at a time per llm node (the
    endpoint's, default 4; in each of ``workers`` processes).
    ``on_progress`` is called with a Progress after every chunk; ``should_stop`` too, and
    a True from it raises BatchStopped, leaving nothing behind. A pipeline with an llm
    node also reports, from a thread, every half second in which calls were made, so a
    long chunk shows its calls (``Progress.llm_calls``) before it is done.
    Raises UsageError for bad options or an unreadable input, the bundle's ArtifactError
    when it fails verification, ModelError when a node fails on valid input.
    """
    started = time.perf_counter()
    options = options or BatchOptions()
    if options.workers < 1:
        raise UsageError("--workers must be at least 1")
    input_format, format = formats(input, output, options.format, options.input_format)
    if os.path.abspath(input) == os.path.abspath(output):
        raise UsageError("the output would overwrite the input; choose another path")
    public_key = options.public_key
    artifact = bundle if isinstance(bundle, Artifact) else Artifact(bundle, public_key)
    executor = load_executor(
        artifact, public_key, options.allow_unsafe, options.app_config, options.endpoint
    )
    scorer = ChunkScorer(executor, options.outputs, options.id_column)
    rejects = rejects_location(output)
    calls = llm_calls_location(output) if scorer.calls_llm else None
    origin = provenance(artifact, options)
    rows = rejected = 0
    counter: CallCounter | None = None
    if scorer.calls_llm:
        shared = _pool_context().Value("q", 0) if options.workers > 1 else None
        counter = scorer.on_call = CallCounter(shared)
    last = Progress(0, 0, 0.0, 0.0)
    with (
        Source(input, input_format, scorer.needed_columns(), options.chunk_rows) as source,
        Sink(output, format, {PROVENANCE_KEY: json.dumps(origin).encode()}) as sink,
        Sink(rejects, "jsonl") as reject_sink,
        ExitStack() as optional,
    ):
        calls_sink = optional.enter_context(Sink(calls, "jsonl")) if calls else None
        if counter is not None and on_progress is not None:
            # An llm call takes a while: report the calls made while a chunk is scored.
            def tick() -> None:
                seconds = time.perf_counter() - started
                on_progress(replace(last, seconds=seconds, llm_calls=counter.value))

            optional.enter_context(_Ticker(tick, lambda: counter.value))
        scorer.check_columns(source.names, input)
        id_type: pa.DataType = pa.string()
        # closed explicitly, before the file: a worker pool may be reading chunks from it
        results = _scored_in_order(
            source.chunks(),
            scorer,
            options.workers,
            artifact.path,
            public_key,
            options.allow_unsafe,
            options.endpoint,
            counter.shared if counter is not None else None,
        )
        with closing(results):
            for chunk, (scored, records, llm_records) in results:
                if should_stop is not None and should_stop():
                    raise BatchStopped(f"stopped after {rows:,} rows")
                if scorer.key in chunk.batch.schema.names:
                    id_type = chunk.batch.schema.field(scorer.key).type
                sink.write(scored)
                if records:
                    reject_sink.write_records(records)
                if llm_records and calls_sink is not None:
                    calls_sink.write_records(llm_records)
                rows += chunk.rows
                rejected += len(records)
                if on_progress is not None:
                    elapsed = time.perf_counter() - started
                    made = counter.value if counter is not None else 0
                    last = Progress(rows, rejected, source.fraction(), elapsed, made)
                    on_progress(last)
        reject_sink.commit()
        if calls_sink is not None:
            calls_sink.commit()
        sink.commit(scorer.output_schema(id_type))  # last: the output means "complete"
    return BatchResult(
        engine="local",
        input=input,
        output=output,
        rejects=rejects,
        format=format,
        rows=rows,
        scored=sink.rows,
        rejected=rejected,
        seconds=time.perf_counter() - started,
        llm_calls=calls,
        provenance=origin,
    )
