"""The batch step of ``shipyard demo``, and the public names of ``shipyard.batch``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

import shipyard.batch
import shipyard.errors
from shipyard.batch._demo import batch_demo_step


def test_the_demo_step_scores_100_000_rows_and_shows_the_four_broken_ones(
    signed_bundle: Path, tmp_path: Path
) -> None:
    console = Console(record=True, width=200)
    result = batch_demo_step(tmp_path, signed_bundle, console)
    assert (result.rows, result.scored, result.rejected) == (100_000, 99_996, 4)
    shown = console.export_text()
    assert "100,000 rows: 99,996 scored, 4 rejected" in shown
    for text in ("T0001234", "T0025000", "T0061803", "line has 32 fields, expected 31"):
        assert text in shown
    assert (tmp_path / "batch" / "scores.csv").exists()


def test_the_public_names_of_shipyard_batch() -> None:
    assert sorted(shipyard.batch.__all__) == [
        "BatchOptions",
        "BatchResult",
        "Progress",
        "Stopped",
        "Worker",
        "fetch_deployed",
        "run_job",
        "run_local",
        "run_spark",
        "wait_for",
    ]
    for name in shipyard.batch.__all__:
        assert getattr(shipyard.batch, name) is not None


def test_a_stopped_run_raises_an_error_of_the_one_tree() -> None:
    assert shipyard.batch.Stopped is shipyard.errors.BatchStopped
    assert issubclass(shipyard.batch.Stopped, shipyard.errors.ShipyardError)
