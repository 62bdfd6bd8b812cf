"""``shipyard demo``'s monitoring step: drifted traffic to a served production, its drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from shipyard.demo._monitor_step import GROWN, monitor_step
from shipyard.demo._serve_step import open_registry

from ..demo._production import production_registry


@pytest.mark.integration  # the step runs `shipyard serve` in a subprocess and calls it over HTTP
def test_the_monitor_step_flags_the_columns_it_grew_and_writes_the_report(
    tmp_path: Path, signed_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    production_registry(tmp_path, signed_bundle, key_pair[1])
    console = Console(record=True, width=200)
    report = monitor_step(tmp_path, "demo", "production", console, public_key=key_pair[1])
    shown = console.export_text()
    for name in GROWN:
        assert f"tumours.{name}" in shown
    assert "tumours.mean_texture" not in shown  # left alone: within its thresholds
    assert f"report: {report}" in shown
    assert report.read_text().startswith("<!doctype html>")
    with open_registry(tmp_path) as registry:
        stored = registry.drift_results("demo", "production", latest=True)
    assert {f"tumours.{name}" for name in GROWN} <= {r.column for r in stored if r.drifted}
