"""``shipyard monitor``: the commands on the embedded registry and the default capture folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipyard.registry import Registry
from tests.cli.test_cli import run_cli

from . import _data


@pytest.fixture()
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loan_bundles: dict[str, Path]) -> Path:
    """An embedded registry in $SHIPYARD_HOME with project demo, loan_risk v1 and v2, and
    drifted traffic (income moved up) captured for v1 in production's capture folder."""
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHIPYARD_CAPTURE_ROOT", str(tmp_path / "capture"))
    monkeypatch.setenv("SHIPYARD_USER", "ops")
    for name in ("SHIPYARD_URL", "SHIPYARD_DATABASE_URL", "SHIPYARD_PROJECT", "SHIPYARD_ENV"):
        monkeypatch.delenv(name, raising=False)
    with Registry.open() as registry:
        registry.create_project("demo")
        for tag in ("v1", "v2"):
            version = registry.register_model("demo", loan_bundles[tag])
            registry.tag("demo", version.model, version.version_id)
    _data.capture(tmp_path / "capture" / "demo" / "production", _data.rows(1000, 61, 5.0))
    return tmp_path


WHERE = ("--project", "demo", "--env", "production")


def test_drift_prints_a_table_naming_each_threshold_and_stores_the_results(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "monitor", "drift", *WHERE)
    assert code == 0, err
    income = [line for line in out.splitlines() if "loans.income" in line]
    assert len(income) == 2 and all("DRIFT" in line for line in income)
    assert "drift_thresholds.psi > 0.2 (default)" in out
    assert "drift_thresholds.ks_pvalue p < 0.01 (default)" in out
    age = [line for line in out.splitlines() if "loans.age" in line]
    assert age and all(" ok" in line for line in age)
    code, out, _ = run_cli(capsys, "monitor", "drift", *WHERE, "--json", "--no-record")
    data = json.loads(out)
    assert data["versions"][0]["drifted_columns"][:1] == ["loans.income"]
    with Registry.open() as registry:
        stored = registry.drift_results("demo", "production", latest=True)
    assert {r.column for r in stored if r.drifted} >= {"loans.income"}


@pytest.mark.integration  # a loopback HTTP server (http.server, which the tier walk cannot see)
def test_check_exits_non_zero_and_posts_the_fired_alerts_to_the_webhook(
    home: Path, capsys: pytest.CaptureFixture[str], receiver: tuple[str, list[Any]]
) -> None:
    url, bodies = receiver
    rules = home / "rules.yaml"
    rules.write_text(
        "alerts:\n"
        "  - {name: income drift, drift: psi, column: loans.income}\n"
        "  - {name: age drift, drift: any, column: loans.age}\n"
        "  - {name: auc floor, metric: roc_auc, below: 0.7}\n"
    )
    assert run_cli(capsys, "monitor", "drift", *WHERE)[0] == 0
    code, out, err = run_cli(
        capsys, "monitor", "check", *WHERE, "--rules", str(rules), "--webhook", url
    )
    assert code == 1, err
    assert "1 of 3 rules fired" in out
    assert "ALERT income drift: loan_risk v1 loans.income: psi" in out
    assert "skipped auc floor: roc_auc needs labels" in out
    assert "secret-token" not in out + err  # the hook's path may be its credential
    [body] = bodies
    assert (body["project"], body["environment"]) == ("demo", "production")
    assert [(a["rule"], a["column"], a["test"]) for a in body["alerts"]] == [
        ("income drift", "loans.income", "psi")
    ]


def test_check_with_nothing_beyond_its_threshold_exits_zero(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Registry.open() as registry:
        registry.set_environment_config(
            "demo", "production", {"monitoring": {"alerts": [{"drift": "any", "windows": 2}]}}
        )
    assert run_cli(capsys, "monitor", "drift", *WHERE)[0] == 0
    code, out, _ = run_cli(capsys, "monitor", "check", *WHERE)
    assert (code, out.splitlines()[0]) == (0, "0 of 1 rules fired")  # one window, not two


def test_a_malformed_rule_is_one_error_line_naming_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = home / "rules.yaml"
    rules.write_text("alerts:\n  - {drift: t-test}\n")
    code, _, err = run_cli(capsys, "monitor", "check", *WHERE, "--rules", str(rules))
    assert code == 2
    assert (
        err.strip()
        == "error: monitoring.alerts[0].drift must be one of psi, ks, chi2, z, js, any, "
        "not 't-test'"
    )


def test_report_writes_one_html_file_and_prints_its_path(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = home / "out" / "report.html"
    code, out, err = run_cli(capsys, "monitor", "report", *WHERE, "-o", str(target))
    assert code == 0, err
    assert out.strip() == f"wrote {target} (drift found)"
    html = target.read_text()
    assert html.count("<svg") >= 6 and "loans.income" in html
    assert "<script" not in html and "src=" not in html and "href=" not in html
