"""Drift results: stored per environment, version, column, test, window; thresholds are settings."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.registry import InvalidInput, InvalidSetting, NotFound, Registry


def result(window_end: str = "2026-01-01T01:00:00Z", **changes: Any) -> dict[str, Any]:
    found = {
        "model": "tumour_triage",
        "version": "v1",
        "column": "tumours.radius",
        "test": "psi",
        "window_start": "2026-01-01T00:00:00Z",
        "window_end": window_end,
        "score": 0.31,
        "p_value": None,
        "threshold": 0.2,
        "threshold_level": "default",
        "drifted": True,
        "rows": 500,
        "detail": {"bins": 10},
    }
    found.update(changes)
    return found


@pytest.fixture()
def project(registry: Registry) -> Registry:
    registry.create_project("demo")
    return registry


def test_recorded_results_read_back_per_environment(project: Registry) -> None:
    assert project.record_drift("demo", "production", {"results": [result()]}) == 1
    [found] = project.drift_results("demo", "production")
    assert (found.column, found.test, found.score, found.drifted) == (
        "tumours.radius",
        "psi",
        0.31,
        True,
    )
    assert found.window_end == "2026-01-01T01:00:00.000000Z"
    assert found.detail == {"bins": 10}
    assert project.drift_results("demo", "uat") == []


def test_recording_a_window_again_replaces_it(project: Registry) -> None:
    project.record_drift("demo", "production", {"results": [result(score=0.5)]})
    project.record_drift("demo", "production", {"results": [result(score=0.05, drifted=False)]})
    assert [r.score for r in project.drift_results("demo", "production")] == [0.05]


def test_latest_keeps_the_newest_window_of_each_column_and_test(project: Registry) -> None:
    project.record_drift(
        "demo",
        "production",
        {
            "results": [
                result("2026-01-01T01:00:00Z", score=0.1),
                result("2026-01-01T02:00:00Z", score=0.4, window_start="2026-01-01T01:00:00Z"),
                result(test="ks", score=0.02, p_value=0.5, threshold=0.01),
            ]
        },
    )
    latest = project.drift_results("demo", "production", latest=True)
    assert sorted((r.test, r.score) for r in latest) == [("ks", 0.02), ("psi", 0.4)]
    since = project.drift_results("demo", "production", since="2026-01-01T01:30:00Z")
    assert [r.score for r in since] == [0.4]


def test_a_bad_result_is_refused_naming_its_field_and_nothing_is_stored(
    project: Registry,
) -> None:
    with pytest.raises(InvalidInput, match=r"results\[1\]\.score"):
        project.record_drift("demo", "production", {"results": [result(), result(score="x")]})
    with pytest.raises(InvalidInput, match=r"results\[0\]\.column holds control characters"):
        project.record_drift("demo", "production", {"results": [result(column="a\x00b")]})
    with pytest.raises(InvalidInput, match=r"results\[0\]\.test"):
        project.record_drift("demo", "production", {"results": [result(test="t-test")]})
    assert project.drift_results("demo", "production") == []
    with pytest.raises(NotFound, match="no environment 'staging'"):
        project.record_drift("demo", "staging", {"results": [result()]})


def test_drift_thresholds_are_a_setting_that_inherits(project: Registry) -> None:
    assert project.get_setting("drift_thresholds", "demo", "production").value["psi"] == 0.2
    project.set_setting("drift_thresholds", '{"psi": 0.3}', "demo")
    found = project.get_setting("drift_thresholds", "demo", "production")
    assert (found.value, found.level) == ({"psi": 0.3}, "project")
    with pytest.raises(InvalidSetting, match="ks_pvalue is a p-value"):
        project.set_setting("drift_thresholds", {"ks_pvalue": 5}, "demo")
    with pytest.raises(InvalidSetting, match="unknown test"):
        project.set_setting("drift_thresholds", {"t": 1}, "demo")
