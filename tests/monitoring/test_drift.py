"""Drift against the bundle's own reference, on drift we make ourselves.

Each test captures rows drawn from the reference distribution with one change of known
size and checks that the changed column, and only it, is flagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shipyard.monitoring import (
    Reference,
    Thresholds,
    parse_duration,
    run_drift,
    window_drift,
    windows,
)
from shipyard.registry import SETTING_DEFAULTS, Registry
from shipyard.runtime import Artifact

from . import _data

INPUTS = ("loans.income", "loans.age", "loans.region")
THRESHOLDS = SETTING_DEFAULTS["drift_thresholds"]


def flagged_inputs(run: object) -> set[str]:
    return {f.column for f in run.findings if f.drifted and f.column in INPUTS}  # type: ignore[attr-defined]


def test_the_profile_holds_bins_and_counts_for_every_column_and_output(
    loan_bundles: dict[str, Path],
) -> None:
    profile = json.loads(Artifact(loan_bundles["v1"]).files["reference/profile.json"])
    assert profile["format"] == 2
    income = profile["tables"]["loans"]["income"]
    assert len(income["bins"]["counts"]) == len(income["bins"]["cuts"]) + 1
    assert sum(income["bins"]["counts"]) == income["count"] == 4000
    assert len(income["percentiles"]) == 101
    region = profile["tables"]["loans"]["region"]
    assert set(region["categories"]) == set(_data.REGIONS) and region["other"] == 0


def test_a_mean_shift_on_one_column_flags_that_column_and_only_it(
    monitored: Registry, capture_dir: Path
) -> None:
    _data.capture(capture_dir, _data.rows(2000, seed=11, income_shift=5.0))
    run = run_drift(monitored, "demo", "production", folder=capture_dir)
    assert flagged_inputs(run) == {"loans.income"}
    income = {f.test: f for f in run.findings if f.column == "loans.income"}
    assert set(income) == {"psi", "ks"}
    assert income["psi"].score > 0.2 and income["ks"].p_value < 0.01


def test_the_same_distribution_flags_nothing(monitored: Registry, capture_dir: Path) -> None:
    _data.capture(capture_dir, _data.rows(2000, seed=12))
    run = run_drift(monitored, "demo", "production", folder=capture_dir)
    assert [f for f in run.findings if f.drifted] == []
    assert set(INPUTS) <= {f.column for f in run.findings}


def test_a_new_category_flags_that_column_names_the_category_and_spares_the_predictions(
    monitored: Registry, capture_dir: Path
) -> None:
    regions = (*_data.REGIONS, "islands")
    data = _data.rows(2000, seed=13, regions=regions, shares=(0.32, 0.24, 0.16, 0.08, 0.2))
    _data.capture(capture_dir, data)
    run = run_drift(monitored, "demo", "production", folder=capture_dir)
    assert flagged_inputs(run) == {"loans.region"}
    region = {f.test: f for f in run.findings if f.column == "loans.region"}
    assert region["chi2"].p_value < 0.01 and region["js"].score > 0.1
    assert region["chi2"].detail["new_categories"] == ["islands"]


def test_each_result_names_its_threshold_and_the_level_it_came_from(
    monitored: Registry, capture_dir: Path
) -> None:
    monitored.set_setting("drift_thresholds", {"psi": 0.5}, "demo", "production")
    _data.capture(capture_dir, _data.rows(2000, seed=11, income_shift=5.0))
    run = run_drift(monitored, "demo", "production", folder=capture_dir)
    psi = next(f for f in run.findings if f.column == "loans.income" and f.test == "psi")
    ks = next(f for f in run.findings if f.column == "loans.income" and f.test == "ks")
    assert (psi.threshold, psi.threshold_level, psi.drifted) == (0.5, "environment", False)
    assert psi.record()["detail"]["threshold"] == "drift_thresholds.psi"
    assert (ks.threshold, ks.threshold_name, ks.drifted) == (0.01, "ks_pvalue", True)


def test_results_are_stored_per_version_column_test_and_window(
    monitored: Registry, capture_dir: Path
) -> None:
    hour = 3600.0
    base = 1_900_000_000.0 // hour * hour
    _data.capture(capture_dir, _data.rows(500, seed=21), at=base + 60)
    _data.capture(capture_dir, _data.rows(500, seed=22, income_shift=5.0), at=base + hour + 60)
    run = run_drift(
        monitored, "demo", "production", folder=capture_dir, window=parse_duration("1h")
    )
    assert run.recorded == len(run.findings) >= 2 * 6  # two windows, 6 tests of the inputs
    stored = monitored.drift_results("demo", "production", version="v1")
    income = [r for r in stored if r.column == "loans.income" and r.test == "psi"]
    assert [r.drifted for r in income] == [False, True]
    assert income[0].window_end == income[1].window_start
    latest = monitored.drift_results("demo", "production", latest=True)
    assert {(r.column, r.test) for r in latest} == {(f.column, f.test) for f in run.findings}


def test_a_format_1_profile_runs_the_tests_it_allows_and_says_which_it_skipped(
    loan_bundles: dict[str, Path], capture_dir: Path
) -> None:
    profile = json.loads(Artifact(loan_bundles["v1"]).files["reference/profile.json"])
    old = {"rows": profile["rows"], "tables": {"loans": {}}}
    for name, column in profile["tables"]["loans"].items():
        kept = {k: v for k, v in column.items() if k not in ("bins", "percentiles", "other")}
        old["tables"]["loans"][name] = kept
    reference = Reference.from_profile(old)
    assert reference.format == 1
    assert reference.columns["loans.income"].tests == ("psi",)
    assert reference.columns["loans.region"].tests == ("chi2", "js")
    assert "ks" in reference.skipped["loans.income"]
    assert "prediction drift" in reference.skipped["outputs"]

    _data.capture(capture_dir, _data.rows(2000, seed=31, income_shift=5.0))
    [window] = windows(capture_dir, "loan_risk", "v1")
    findings, _ = window_drift(reference, window, Thresholds(dict(THRESHOLDS)))
    assert {(f.column, f.test) for f in findings if f.drifted} == {("loans.income", "psi")}
    assert np.isfinite([f.score for f in findings]).all()
