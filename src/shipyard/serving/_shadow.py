"""Shadow traffic: a copy of each request runs on another version, off the response path.

The live answer is sent first; the copy is queued (dropped and counted when the queue is
full) and run on a background thread. Its answers go to the log (logger
``shipyard.serving.shadow``, with the live request's id) and to
``shipyard_shadow_requests_total``; they are never returned to the caller. When the live
request was sampled for capture, the shadow's outputs are captured too (role ``shadow``,
same request id), so monitoring can compare the two answers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from ._background import Worker
from ._capture import CallRecords, Capture, CaptureRecord
from ._metrics import Metrics
from ._payloads import Decoded
from ._runner import ModelRunner

logger = logging.getLogger("shipyard.serving.shadow")

SHOWN_VALUES = 5  # values per output written to the log line


class Shadow:
    """Runs mirrored requests on shadow versions; ``start()`` before use, ``stop()`` to drain."""

    def __init__(self, metrics: Metrics, queue_size: int = 1000) -> None:
        self._metrics = metrics
        self._worker = Worker("shipyard-shadow", self._run, queue_size)

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._worker.stop(timeout)

    def offer(
        self,
        runner: ModelRunner,
        decoded: Decoded,
        request_id: str,
        capture: Capture | None = None,
        sampled: bool = True,
    ) -> None:
        """Mirror a request the live version answered; counted as dropped if the queue is full.

        With ``capture``, the shadow's llm calls are offered to it, and its outputs too
        when the live request was ``sampled``.
        """
        if not self._worker.submit((runner, decoded, request_id, capture, sampled)):
            self._metrics.shadow.labels(runner.model, runner.version, "dropped").inc()

    def _run(self, item: tuple[ModelRunner, Decoded, str, Capture | None, bool]) -> None:
        runner, decoded, request_id, capture, sampled = item
        started = time.perf_counter()
        calls: list[dict[str, Any]] = []
        try:
            if decoded.style == "dict" or runner.single_table is None:
                tables, rows = runner.dataset(decoded.given)
            else:
                tables, rows = runner.columns(decoded.given)
            values = runner.run_recorded(tables, rows, runner.plan_for(decoded.outputs), calls)
        except Exception as exc:
            self._metrics.shadow.labels(runner.model, runner.version, "error").inc()
            logger.warning(
                "shadow %s %s, request %s: %s: %s",
                runner.model,
                runner.version,
                request_id,
                type(exc).__name__,
                exc,
            )
            return
        finally:
            if capture is not None and calls:
                record = CallRecords(
                    runner.model, runner.version, request_id, time.time(), calls, "shadow"
                )
                capture.offer_calls(record)
        self._metrics.shadow.labels(runner.model, runner.version, "ok").inc()
        if capture is not None and sampled:
            outputs = {name: (runner.executor.dtype(name), array) for name, array in values.items()}
            capture.offer(
                CaptureRecord(
                    runner.model,
                    runner.version,
                    request_id,
                    time.time(),
                    {},
                    outputs,
                    "shadow",
                    (time.perf_counter() - started) * 1000.0,
                )
            )
        shown = {
            name: typed["values"][:SHOWN_VALUES] for name, typed in runner.typed(values).items()
        }
        logger.info(
            "shadow %s %s, request %s (%d rows): %s",
            runner.model,
            runner.version,
            request_id,
            rows,
            orjson.dumps(shown).decode(),
        )
