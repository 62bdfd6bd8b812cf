"""The monitoring step of ``shipyard demo``: serve production with full capture, send it
drifted traffic, then show the drift table and write the HTML report.

The traffic is the reference data with tumours made larger (radius, perimeter and area
scaled up), the kind of shift a new scanner calibration brings: drift must flag those
columns, and the model's probabilities move with them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table as RichTable

from ..errors import ShipyardError
from ._pipeline import reference
from ._serve_step import _free_port, _shipyard, _stop, _wait_for, open_registry

REQUESTS, ROWS = 40, 25  # 1,000 captured rows: enough for every test to speak
GROWN = {"mean_radius": 1.25, "mean_perimeter": 1.25, "mean_area": 1.55, "worst_area": 1.55}


def drifted_rows(requests: int = REQUESTS, rows: int = ROWS, seed: int = 0) -> list[dict[str, Any]]:
    """Request bodies drawn from the reference, with the ``GROWN`` columns scaled up."""
    columns = reference()["tumours"]
    generator = np.random.default_rng(seed)
    count = len(next(iter(columns.values())))
    bodies = []
    for _ in range(requests):
        picked = generator.integers(0, count, rows)
        body = {
            name: [float(values[i]) * GROWN.get(name, 1.0) for i in picked]
            for name, values in columns.items()
        }
        bodies.append({"tumours": body})
    return bodies


def monitor_step(
    workdir: Path,
    project: str,
    env: str,
    console: Console,
    public_key: Path | None = None,
) -> Path:
    """Capture drifted traffic to ``env``, print its drift and return the report's path.

    Raises ShipyardError when serving fails or drift misses the columns made to drift.
    """
    from ..monitoring import build_report

    home = (workdir / ".shipyard").resolve()
    capture_root = (workdir / "capture").resolve()
    with open_registry(workdir) as registry:
        config = dict(registry.get_environment_config(project, env))
        config["capture"] = {"rate": 1.0}
        console.print(
            f"[dim]$ shipyard env config set capture.rate 1.0 --env {env}[/]  (capture every "
            "request, for the demo)"
        )
        registry.set_environment_config(project, env, config)
        model = next(c.name for c in registry.status(project, env).components if c.kind == "model")
        _, key = registry.create_api_key(project, env, "monitoring-demo")

    port = _free_port()
    environment = {**os.environ, "SHIPYARD_HOME": str(home)}
    environment["SHIPYARD_CAPTURE_ROOT"] = str(capture_root)
    environment.pop("SHIPYARD_DATABASE_URL", None)
    environment.pop("SHIPYARD_ARTIFACT_STORE", None)
    if public_key is not None:
        environment["SHIPYARD_PUBLIC_KEY"] = str(public_key.resolve())
    log_path = workdir / "serve-monitoring.log"
    log = log_path.open("w")
    server = subprocess.Popen(
        [*_shipyard(), "serve", "--project", project, "--env", env, "--port", str(port)],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/api/v1/projects/{project}/environments/{env}/models/{model}/predict"
    try:
        _wait_for(base, server, log_path)
        with httpx.Client(headers={"X-API-Key": key}, timeout=30) as client:
            for body in drifted_rows():
                answer = client.post(url, content=json.dumps(body))
                if answer.status_code != 200:
                    raise ShipyardError(f"a drifted request failed: HTTP {answer.status_code}")
    finally:
        code = _stop(server)  # SIGTERM: the capture is flushed before the server exits
        log.close()
    if code not in (0, -signal.SIGTERM):
        raise ShipyardError(f"the server exited with {code}; see {log_path}")
    console.print(
        f"sent {REQUESTS} requests ({REQUESTS * ROWS:,} rows) with "
        f"{', '.join(GROWN)} scaled up; captured under {capture_root}",
        soft_wrap=True,
    )

    console.print(f"[dim]$ shipyard monitor drift --project {project} --env {env}[/]")
    with open_registry(workdir) as registry:
        folder = capture_root / project / env
        html, run = build_report(registry, project, env, folder=folder)
    report = workdir / "monitoring-report.html"
    report.write_text(html)
    console.print(drift_table(run.to_json()))
    flagged = {c for v in run.versions for c in v.drifted_columns}
    missed = {f"tumours.{name}" for name in GROWN} - flagged
    if missed:
        raise ShipyardError(f"drift missed the columns made to drift: {', '.join(sorted(missed))}")
    console.print(f"report: {report}", soft_wrap=True)
    return report


def drift_table(data: dict[str, Any]) -> Any:
    """The drifted results (each with its threshold), then how many held."""
    grid = RichTable(title=f"drifted in {data['project']}/{data['environment']}")
    for column in ("version", "column", "test", "score", "p-value", "threshold"):
        grid.add_column(column, no_wrap=column in ("column", "threshold"))
    held = 0
    for version in data["versions"]:
        for r in version["results"]:
            if not r["drifted"]:
                held += 1
                continue
            name = r["detail"]["threshold"].removeprefix("drift_thresholds.")
            judged = (
                f"p < {r['threshold']:g}" if name.endswith("pvalue") else f"> {r['threshold']:g}"
            )
            grid.add_row(
                version["version"],
                r["column"],
                r["test"],
                f"{r['score']:.4g}",
                "-" if r["p_value"] is None else f"{r['p_value']:.2g}",
                judged,
            )
    grid.caption = f"{held} other results within their thresholds (setting drift_thresholds)"
    return grid
