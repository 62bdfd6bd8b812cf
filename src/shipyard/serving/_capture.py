"""Request capture: a sampled share of inputs and outputs, written to rotating Parquet files.

The hot path only draws a random number and, for a sampled request, queues references
to arrays it already has. A background ``Worker`` turns them into Arrow tables and hands
them to a ``CaptureSink``. A full queue (a slow writer, a full disk) drops the record
and counts it in ``shipyard_capture_dropped_total``; it never fails or waits a request.

Files: ``FOLDER/MODEL/VERSION/YYYYMMDDTHHMMSSZ-PID-N.parquet``, one per
``rows_per_file`` rows or ``seconds_per_file`` seconds, written under a temporary name and
renamed, so a reader never sees half a file. Columns: ``request_id``, ``row`` (the row's
place in its request, from 0: ``REQUEST_ID#ROW`` names one row for late labels),
``captured_at`` (UTC), ``version``, ``role`` (``live``, or ``shadow`` for a shadow
version's answer to a mirrored request, outputs only), ``latency_ms`` (the live answer's),
``input.TABLE.COLUMN`` … and ``output.NODE`` …. FOLDER lies under the
serving host's capture root (``$SHIPYARD_CAPTURE_ROOT``), whatever an environment config
says: checked when serving starts and again before every write.

LLM calls are kept for audit whatever the sampling rate: every call an llm node made for a
request (``shipyard.runtime.recorded_calls``: prompt hash, settings, endpoint, the model
the endpoint reported, tokens, latency, answer, error) goes to
``FOLDER/MODEL/VERSION/YYYYMMDDTHHMMSSZ-PID-N.llm_calls.jsonl``, one JSON object a line,
with ``request_id``, ``row``, ``captured_at``, ``version`` and ``role`` first. The rendered
prompt (``prompt``, the messages sent) is kept only when ``llm_prompts`` is on; it is null
otherwise, and ``prompt_sha256`` still identifies it. ``llm_calls`` off keeps none.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from ..registry import Roots, capture_root
from ..runtime import arrow_array
from ._background import Worker
from ._metrics import Metrics

logger = logging.getLogger("shipyard.serving")


@dataclass(frozen=True)
class CaptureRecord:
    """One sampled request: its validated inputs and its outputs, with their declared types."""

    model: str
    version: str
    request_id: str
    at: float  # seconds since the epoch
    inputs: Mapping[str, tuple[str, np.ndarray]]  # "table.column" -> (type, values)
    outputs: Mapping[str, tuple[str, np.ndarray]]  # node -> (type, values)
    role: str = "live"  # or "shadow": a shadow version's answer to a mirrored request
    latency_ms: float | None = None


@dataclass(frozen=True)
class CallRecords:
    """The llm calls one request made, as ``shipyard.runtime.recorded_calls`` records them."""

    model: str
    version: str
    request_id: str
    at: float  # seconds since the epoch
    calls: Sequence[Mapping[str, Any]]
    role: str = "live"  # or "shadow"


class CaptureSink(Protocol):
    """Where captured batches go (a seam: tests plug in a slow or failing one)."""

    def write(self, model: str, version: str, table: object) -> None:
        """Store one batch (a ``pyarrow.Table``); may raise OSError."""

    def write_calls(self, model: str, version: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Store llm call records (JSON objects); may raise OSError."""


class ParquetFolder:
    """Writes each batch as one Parquet file under ``folder/MODEL/VERSION/``, never out of ``root``.

    ``root`` (default: ``folder`` itself) is a ``Roots`` or a folder. Before each write the
    target folder is resolved (symlinks, ``..``) and checked against the root, so a link
    placed inside the root later cannot carry capture files out of it: such a write raises
    PermissionDenied, which ``Capture`` counts as a failed write.
    """

    def __init__(
        self, folder: str | os.PathLike[str], root: Roots | str | os.PathLike[str] | None = None
    ) -> None:
        self.folder = Path(folder)
        self.root = root if isinstance(root, Roots) else capture_root(root or folder)
        self._numbers = itertools.count(1)

    @classmethod
    def for_environment(
        cls,
        configured: str | None,
        project: str,
        environment: str,
        root: Roots | None = None,
    ) -> ParquetFolder:
        """The folder an environment's capture goes to, under the serving host's capture root.

        ``configured`` is the environment config's ``capture.folder``: relative to the root
        (an absolute one must lie under it); None means ``ROOT/PROJECT/ENVIRONMENT``.
        ``root`` defaults to ``capture_root()`` ($SHIPYARD_CAPTURE_ROOT, else
        $SHIPYARD_HOME/capture). Raises PermissionDenied naming the folder and the root.
        """
        root = root or capture_root()
        wanted = configured if configured else os.path.join(project, environment)
        return cls(root.locate(wanted, "the capture folder"), root)

    def write(self, model: str, version: str, table: object) -> None:
        import pyarrow.parquet as pq

        path = self._next_file(model, version, ".parquet")
        partial = path.with_name(path.name + ".partial")
        try:
            pq.write_table(table, partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def write_calls(self, model: str, version: str, records: Sequence[Mapping[str, Any]]) -> None:
        path = self._next_file(model, version, ".llm_calls.jsonl")
        partial = path.with_name(path.name + ".partial")
        line = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
        try:
            partial.write_bytes(b"".join(orjson.dumps(r, option=line) for r in records))
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    def _next_file(self, model: str, version: str, suffix: str) -> Path:
        """A new file's path under ``folder/MODEL/VERSION/``, checked against the root."""
        target = Path(self.root.locate(str(self.folder / model / version), "the capture folder"))
        target.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return target / f"{stamp}-{os.getpid()}-{next(self._numbers)}{suffix}"


class Capture:
    """Samples requests at ``rate`` (0 to 1) and writes them through ``sink`` in the background.

    ``llm_calls`` keeps every llm call's record (not sampled: an audit trail misses
    nothing), ``llm_prompts`` the rendered prompt in it. All three may be changed at any
    time (a new environment revision can change them). Call ``start()`` before use and
    ``stop()`` to flush what is buffered.
    """

    def __init__(
        self,
        sink: CaptureSink,
        metrics: Metrics,
        rate: float = 0.0,
        *,
        queue_size: int = 1000,
        rows_per_file: int = 10_000,
        seconds_per_file: float = 60.0,
        seed: int | None = None,
        llm_calls: bool = True,
        llm_prompts: bool = False,
    ) -> None:
        self.sink = sink
        self.rate = rate
        self.llm_calls = llm_calls
        self.llm_prompts = llm_prompts
        self._metrics = metrics
        self._random = random.Random(seed).random
        self._rows_per_file = rows_per_file
        self._seconds_per_file = seconds_per_file
        self._buffers: dict[tuple[str, str], list[CaptureRecord]] = {}
        self._started: dict[tuple[str, str], float] = {}
        self._calls: dict[tuple[str, str], list[dict[str, Any]]] = {}  # llm call lines
        self._calls_started: dict[tuple[str, str], float] = {}
        self._worker = Worker(
            "shipyard-capture",
            self._add,
            queue_size,
            tick=self._flush_due,
            tick_seconds=min(1.0, seconds_per_file),
        )

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued and buffered (waits at most ``timeout`` seconds)."""
        self._seconds_per_file = 0.0  # the final tick flushes every buffer
        self._worker.stop(timeout)

    def sampled(self) -> bool:
        """Whether to capture this request (a draw against ``rate``)."""
        return self.rate > 0.0 and self._random() < self.rate

    def offer(self, record: CaptureRecord) -> None:
        """Queue a sampled request; dropped (and counted) when the queue is full."""
        if not self._worker.submit(record):
            self._metrics.capture_dropped.labels("queue_full").inc()

    def offer_calls(self, record: CallRecords) -> None:
        """Queue a request's llm call records (unless ``llm_calls`` is off); a full queue
        drops them, counted as one request."""
        if not self.llm_calls or not record.calls:
            return
        if not self._worker.submit(record):
            self._metrics.capture_dropped.labels("queue_full").inc()

    def _add(self, record: CaptureRecord | CallRecords) -> None:
        if isinstance(record, CallRecords):
            self._add_calls(record)
            return
        key = (record.model, record.version)
        buffer = self._buffers.setdefault(key, [])
        if not buffer:
            self._started[key] = time.monotonic()
        buffer.append(record)
        if sum(len(next(iter(r.outputs.values()))[1]) for r in buffer) >= self._rows_per_file:
            self._flush(key)

    def _add_calls(self, record: CallRecords) -> None:
        key = (record.model, record.version)
        lines = self._calls.setdefault(key, [])
        if not lines:
            self._calls_started[key] = time.monotonic()
        at = datetime.fromtimestamp(record.at, UTC).isoformat(timespec="microseconds")
        head = {"captured_at": at, "version": record.version, "role": record.role}
        for call in record.calls:
            line = {"request_id": record.request_id, "row": call.get("row"), **head}
            line.update((k, v) for k, v in call.items() if k != "row")
            if not self.llm_prompts:
                line["prompt"] = None  # the hash still names it; the text holds the inputs
            lines.append(line)
        if len(lines) >= self._rows_per_file:
            self._flush_calls(key)

    def _flush_due(self) -> None:
        now = time.monotonic()
        for key in list(self._buffers):
            if self._buffers[key] and now - self._started[key] >= self._seconds_per_file:
                self._flush(key)
        for key in list(self._calls):
            if self._calls[key] and now - self._calls_started[key] >= self._seconds_per_file:
                self._flush_calls(key)

    def _flush_calls(self, key: tuple[str, str]) -> None:
        lines = self._calls.pop(key, [])
        if not lines:
            return
        try:
            self.sink.write_calls(key[0], key[1], lines)
        except Exception as exc:  # as for inputs and outputs: capture never stops serving
            logger.warning("capture of %s %s: %d llm calls lost (%s)", *key, len(lines), exc)
            requests = len({line["request_id"] for line in lines})
            self._metrics.capture_dropped.labels("write_failed").inc(requests)

    def _flush(self, key: tuple[str, str]) -> None:
        records = self._buffers.pop(key, [])
        if not records:
            return
        try:
            table = _arrow_table(records)
            self.sink.write(key[0], key[1], table)
        except Exception as exc:  # a full disk must not stop capture, nor serving
            logger.warning("capture of %s %s: %d requests lost (%s)", *key, len(records), exc)
            self._metrics.capture_dropped.labels("write_failed").inc(len(records))
            return
        self._metrics.captured.labels(key[0]).inc(table.num_rows)


def _arrow_table(records: list[CaptureRecord]) -> Any:
    import pyarrow as pa

    tables = []
    for record in records:
        rows = len(next(iter(record.outputs.values()))[1]) if record.outputs else 0
        columns = {
            "request_id": pa.array([record.request_id] * rows, pa.string()),
            "captured_at": pa.array(
                [int(record.at * 1_000_000)] * rows, pa.timestamp("us", tz="UTC")
            ),
            "version": pa.array([record.version] * rows, pa.string()),
            "row": pa.array(range(rows), pa.int32()),
            "role": pa.array([record.role] * rows, pa.string()),
            "latency_ms": pa.array([record.latency_ms] * rows, pa.float64()),
        }
        for prefix, values in (("input.", record.inputs), ("output.", record.outputs)):
            for name, (dtype, array) in values.items():
                columns[prefix + name] = arrow_array(dtype, array)
        tables.append(pa.table(columns))
    return pa.concat_tables(tables, promote_options="default")
