"""Prometheus metrics of one serving app, in a registry of its own (no global state).

Per request the hot path calls ``observe`` once: the labelled children are cached, so
it costs a dict look-up, a counter increment and a histogram observation.

With several worker processes, ``shipyard serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
before the workers start: prometheus-client then keeps every value in files there, and
``Metrics(multiprocess_dir=...)`` renders the sum over all workers, whichever worker
answers the scrape.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

# Seconds; a one-row request takes well under a millisecond, a big batch can take seconds.
BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """Request, error, swap, shadow and capture metrics; ``render()`` is what /metrics serves."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._multiprocess_dir = multiprocess_dir
        r = self.registry
        self.requests = Counter(
            "shipyard_requests_total",
            "Requests answered, by model, version, route and HTTP status.",
            ["model", "version", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shipyard_request_duration_seconds",
            "Time from the request's arrival to its answer, by model, version and route.",
            ["model", "version", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "shipyard_request_errors_total",
            "Requests answered with an error, by model, version and error kind.",
            ["model", "version", "kind"],
            registry=r,
        )
        self.in_flight = Gauge(
            "shipyard_requests_in_flight",
            "Requests being answered now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.loaded = Gauge(
            "shipyard_model_loaded",
            "1 for each model version this server holds; 'role' is live, shadow or addressable.",
            ["model", "version", "digest", "role"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.revision = Gauge(
            "shipyard_environment_revision",
            "The environment revision being served.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.swaps = Counter(
            "shipyard_swaps_total",
            "Route table swaps, by outcome (done, failed).",
            ["outcome"],
            registry=r,
        )
        self.shadow = Counter(
            "shipyard_shadow_requests_total",
            "Requests mirrored to a shadow version, by outcome (ok, error, dropped).",
            ["model", "version", "outcome"],
            registry=r,
        )
        self.captured = Counter(
            "shipyard_capture_rows_total", "Rows written to capture files.", ["model"], registry=r
        )
        self.capture_dropped = Counter(
            "shipyard_capture_dropped_total",
            "Captured requests dropped: the queue was full (slow or blocked writer) or a write "
            "failed.",
            ["reason"],
            registry=r,
        )
        self._children: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}
        self._loaded: set[tuple[str, str, str, str]] = set()
        self._drift: DriftGauges | None = None

    def follow_drift(self, read: Callable[[], Iterable[dict[str, Any]]]) -> None:
        """Expose the latest drift results ``read()`` returns (see ``DriftGauges``)."""
        self._drift = DriftGauges(read)
        self.registry.register(self._drift)

    def set_loaded(self, held: set[tuple[str, str, str, str]]) -> None:
        """Mark the ``(model, version, digest, role)`` held now with 1, the ones let go with 0."""
        for labels in self._loaded - held:
            self.loaded.labels(*labels).set(0)  # not removed: other workers may still hold it
        for labels in held:
            self.loaded.labels(*labels).set(1)
        self._loaded = set(held)

    def observe(self, model: str, version: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (model, version, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, version, route, str(status)),
                self.latency.labels(model, version, route),
            )
            if len(self._children) < 10_000:  # labels come from the route table, not the caller
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The text exposition format of every metric (summed over workers when several)."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, self._multiprocess_dir)
        if self._drift is not None:
            merged.register(self._drift)
        return generate_latest(merged)

    def close(self) -> None:
        """Let this process's live gauges go (with several workers); call at shutdown."""
        if self._multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self._multiprocess_dir)


class DriftGauges:
    """``shipyard_drift_score{model,version,column,test}``: the latest stored drift results.

    ``read()`` returns the registry's latest results (``drift_results(..., latest=True)``
    as JSON data). A scrape never waits on the registry: it answers with what was read
    last, and starts a refresh on a thread of its own once that is ``max_age`` seconds
    old. A failed read keeps the previous values (and is logged).
    """

    def __init__(self, read: Callable[[], Iterable[dict[str, Any]]], max_age: float = 30.0) -> None:
        self._read = read
        self._max_age = max_age
        self._results: list[dict[str, Any]] = []
        self._read_at = -max_age
        self._lock = threading.Lock()
        self._reading = False

    def refresh(self) -> None:
        """Read the results now (on the caller's thread)."""
        try:
            results = list(self._read())
        except Exception:
            logging.getLogger("shipyard.serving").exception("reading drift results failed")
            results = self._results
        with self._lock:
            self._results, self._read_at, self._reading = results, time.monotonic(), False

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families' names, so registering reads nothing."""
        yield from self._families([])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            stale = time.monotonic() - self._read_at >= self._max_age and not self._reading
            if stale:
                self._reading = True
            results = self._results
        if stale:
            threading.Thread(target=self.refresh, name="shipyard-drift", daemon=True).start()
        yield from self._families(results)

    @staticmethod
    def _families(results: list[dict[str, Any]]) -> Iterator[GaugeMetricFamily]:
        score = GaugeMetricFamily(
            "shipyard_drift_score",
            "The latest drift test statistic per model version, column and test (PSI, KS "
            "distance, chi-square, z or Jensen-Shannon distance), from `shipyard monitor drift`.",
            labels=["model", "version", "column", "test"],
        )
        drifted = GaugeMetricFamily(
            "shipyard_drift_detected",
            "1 where that latest result was beyond its threshold (drift_thresholds), else 0.",
            labels=["model", "version", "column", "test"],
        )
        for result in results:
            labels = [str(result[k]) for k in ("model", "version", "column", "test")]
            score.add_metric(labels, float(result["score"]))
            drifted.add_metric(labels, 1.0 if result["drifted"] else 0.0)
        yield score
        yield drifted
