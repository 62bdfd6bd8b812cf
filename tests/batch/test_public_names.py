"""The public names of ``shipyard.batch``: they change only on purpose."""

from __future__ import annotations

import shipyard.batch
import shipyard.errors


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
