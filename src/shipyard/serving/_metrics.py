"""Prometheus metrics of one serving app, in a registry of its own (no global state).

Per request the hot path calls ``observe`` once: the labelled children are cached, so
it costs a dict look-up, a counter increment and a histogram observation.

With several worker processes, ``shipyard serve`` sets ``PROMETHEUS_MULTIPROC_DIR``
before the workers start: prometheus-client then keeps every value in files there, and
``Metrics(multiprocess_dir=...)`` renders the sum over all workers, whichever worker
answers the scrape.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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
        return generate_latest(merged)

    def close(self) -> None:
        """Let this process's live gauges go (with several workers); call at shutdown."""
        if self._multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self._multiprocess_dir)
