"""Prediction drift: the outputs against what the bundle returned for its reference rows."""

from __future__ import annotations

import json
from pathlib import Path

from shipyard.monitoring import run_drift
from shipyard.registry import Registry
from shipyard.runtime import Artifact

from . import _data


def test_the_profile_holds_what_the_bundle_returned_for_its_reference_rows(
    loan_bundles: dict[str, Path],
) -> None:
    profile = json.loads(Artifact(loan_bundles["v1"]).files["reference/profile.json"])
    outputs = profile["outputs"]
    assert set(outputs) == {"p_default", "decision"}
    assert sum(outputs["p_default"]["bins"]["counts"]) == 4000
    assert set(outputs["decision"]["categories"]) == {"approve", "decline"}


def test_inputs_that_move_the_model_move_its_predictions(
    monitored: Registry, capture_dir: Path
) -> None:
    _data.capture(capture_dir, _data.rows(2000, seed=11, income_shift=5.0))
    run = run_drift(monitored, "demo", "production", folder=capture_dir)
    drifted = {(f.column, f.test) for f in run.findings if f.drifted}
    assert {("output.p_default", "psi"), ("output.p_default", "ks")} <= drifted
    # Two values left: the decision's shares are compared with a z-test.
    assert ("output.decision", "z") in drifted


def test_inputs_the_model_ignores_leave_its_predictions_alone(
    monitored: Registry, capture_dir: Path
) -> None:
    regions = (*_data.REGIONS, "islands")
    data = _data.rows(2000, seed=13, regions=regions, shares=(0.32, 0.24, 0.16, 0.08, 0.2))
    _data.capture(capture_dir, data)
    run = run_drift(monitored, "demo", "production", folder=capture_dir)
    outputs = [f for f in run.findings if f.column.startswith("output.")]
    assert {f.column for f in outputs} == {"output.p_default", "output.decision"}
    assert not any(f.drifted for f in outputs)
