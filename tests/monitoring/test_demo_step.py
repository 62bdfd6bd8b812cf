"""``shipyard demo``'s monitoring step: drifted traffic to a served production, its drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from shipyard.demo._monitor_step import GROWN, monitor_step
from shipyard.registry import LocalStore, Registry, create_engine, migrate


@pytest.mark.integration  # the step runs `shipyard serve` in a subprocess and calls it over HTTP
def test_the_monitor_step_flags_the_columns_it_grew_and_writes_the_report(
    tmp_path: Path, signed_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    home = tmp_path / ".shipyard"
    engine = create_engine(f"sqlite:///{home / 'registry.db'}")
    migrate(engine)
    with Registry(engine, LocalStore(home / "artifacts"), "demo") as registry:
        registry.trust_key("demo", key_pair[1].read_text())
        registry.create_project("demo")
        version = registry.register_model("demo", signed_bundle)
        registry.tag("demo", version.model, version.version_id)
        registry.add_component("demo", "production", version.model)
    console = Console(record=True, width=200)
    report = monitor_step(tmp_path, "demo", "production", console, public_key=key_pair[1])
    shown = console.export_text()
    for name in GROWN:
        assert f"tumours.{name}" in shown
    assert "tumours.mean_texture" not in shown  # left alone: within its thresholds
    assert f"report: {report}" in shown
    assert report.read_text().startswith("<!doctype html>")
    with Registry(engine, LocalStore(home / "artifacts"), "demo") as registry:
        stored = registry.drift_results("demo", "production", latest=True)
    assert {f"tumours.{name}" for name in GROWN} <= {r.column for r in stored if r.drifted}
