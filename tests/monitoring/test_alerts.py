"""Alert rules: N consecutive drifted windows, metric floors, and the webhook they post to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ShipyardError, UsageError
from shipyard.monitoring import Rule, check, read_rules, run_drift
from shipyard.monitoring._alerts import drift_alerts, metric_alerts
from shipyard.registry import Registry

from . import _data


def stored(*drifted: bool, column: str = "loans.income") -> list[dict[str, Any]]:
    return [
        {
            "model": "loan_risk",
            "version": "v1",
            "column": column,
            "test": "psi",
            "window_end": f"2026-01-01T0{i}:00:00Z",
            "score": 0.3 if d else 0.05,
            "threshold": 0.2,
            "drifted": d,
        }
        for i, d in enumerate(drifted)
    ]


def test_a_drift_rule_fires_only_after_its_number_of_consecutive_windows() -> None:
    rule = Rule("income", drift="psi", column="loans.income", windows=3)
    assert drift_alerts([rule], stored(True, True, False, True, True)) == []
    [alert] = drift_alerts([rule], stored(False, True, True, True))
    assert (alert.rule, alert.column, alert.test) == ("income", "loans.income", "psi")
    assert alert.windows == [f"2026-01-01T0{i}:00:00Z" for i in (1, 2, 3)]
    assert "psi 0.3 beyond 0.2 in the last 3 window(s)" in alert.message


def test_a_rule_for_one_column_ignores_the_others() -> None:
    rule = Rule("age", drift="any", column="loans.age")
    assert drift_alerts([rule], stored(True)) == []
    assert len(drift_alerts([rule], stored(True, column="loans.age"))) == 1


def test_a_metric_rule_fires_below_its_floor() -> None:
    rule = Rule("auc floor", metric="roc_auc", below=0.7)
    figures = [{"version": "v1", "roc_auc": 0.65, "rows": 80}, {"version": "v2", "roc_auc": 0.8}]
    [alert] = metric_alerts([rule], "loan_risk", figures)
    assert alert.version == "v1" and "roc_auc 0.65 below 0.7 (80 labelled rows)" in alert.message


def test_rules_are_read_from_the_config_and_a_bad_one_is_named() -> None:
    rules, webhook = read_rules(
        {"monitoring": {"webhook": "https://hooks.example/x", "alerts": [{"drift": "ks"}]}}
    )
    assert rules == [Rule("rule 1", drift="ks")] and webhook == "https://hooks.example/x"
    with pytest.raises(UsageError, match=r"alerts\[0\] needs one of 'below' or 'above'"):
        read_rules({"monitoring": {"alerts": [{"metric": "accuracy"}]}})
    with pytest.raises(UsageError, match="webhook must be an http"):
        read_rules({"monitoring": {"webhook": "file:///etc/passwd"}})


@pytest.mark.integration  # a loopback HTTP server (http.server, which the tier walk cannot see)
def test_check_posts_what_fired_to_the_webhook_as_json(
    monitored: Registry, capture_dir: Path, receiver: tuple[str, list[Any]]
) -> None:
    url, bodies = receiver
    _data.capture(capture_dir, _data.rows(1000, seed=81, income_shift=5.0))
    run_drift(monitored, "demo", "production", folder=capture_dir)
    rules = [
        Rule("income", drift="psi", column="loans.income"),
        Rule("age", drift="any", column="loans.age"),
    ]
    result = check(monitored, "demo", "production", rules, webhook=url)
    assert [a.rule for a in result.alerts] == ["income"]
    assert result.webhook is not None and "secret" not in result.webhook
    [body] = bodies
    assert body["alerts"][0]["column"] == "loans.income" and body["environment"] == "production"


@pytest.mark.integration  # connects to a closed loopback port
def test_a_webhook_that_cannot_be_reached_is_an_error_naming_only_its_host(
    monitored: Registry, capture_dir: Path
) -> None:
    _data.capture(capture_dir, _data.rows(1000, seed=82, income_shift=5.0))
    run_drift(monitored, "demo", "production", folder=capture_dir)
    with pytest.raises(ShipyardError, match=r"webhook at http://127\.0\.0\.1:9/… could not"):
        check(
            monitored,
            "demo",
            "production",
            [Rule("any", drift="any")],
            webhook="http://127.0.0.1:9/token",
        )
