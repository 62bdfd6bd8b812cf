"""``shipyard demo``'s app step: the web template's app, registered, promoted with its model
in one revision, served beside it, and answering as the model itself does."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from shipyard.cli._views import (
    diff_view,
    history_view,
    revision_line,
    setting_line,
    status_view,
    version_line,
)
from shipyard.demo import Display, RegistryViews
from shipyard.demo._app_step import APP, ROW, app_step
from shipyard.demo._serve_step import open_registry
from shipyard.errors import ApprovalRequired
from shipyard.runtime import Artifact

from ._production import production_registry

CHAIN = ("integration", "uat", "production")


def _display() -> Display:
    views = RegistryViews(
        version=version_line,
        revision=revision_line,
        setting=setting_line,
        status=status_view,
        diff=diff_view,
        history=history_view,
    )
    return Display(Console(record=True, width=250), views)


@pytest.mark.integration  # the step runs `shipyard serve` in a subprocess and calls it over HTTP
def test_the_app_step_promotes_app_and_model_in_one_revision_and_the_app_answers_as_the_model(
    tmp_path: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    demo_reference: dict[str, Any],
) -> None:
    production_registry(tmp_path, signed_bundle, key_pair[1])
    display = _display()
    result = app_step(tmp_path, "demo", CHAIN, key_pair, display)

    # The app's answer is the bundle's own for the same row, run here without any server.
    row = {"tumours": {name: [values[ROW]] for name, values in demo_reference["tumours"].items()}}
    own = Artifact(signed_bundle).run(row)
    [answered] = result["app"]["predictions"]
    assert result["app"]["model"] == "tumour_triage"
    assert answered["decision"] == own["decision"]["values"][0]
    assert answered["p_malignant"] == pytest.approx(own["p_malignant"]["values"][0], abs=1e-12)

    # One promotion into production brought both; the revision before it had no app.
    with open_registry(tmp_path) as registry:
        latest, before = registry.history("demo", "production")[:2]
    assert latest.number == result["revision"]["number"]
    assert latest.reason.startswith("promote")
    assert {(c.name, c.kind, c.tag) for c in latest.components} == {
        ("tumour_triage", "model", "v1"),
        (APP, "app", "v1"),
    }
    assert [c.name for c in before.components] == ["tumour_triage"]

    spec = tomllib.loads((tmp_path / APP / "shipyard-app.toml").read_text())["app"]
    assert (spec["template"], spec["models"]) == ("web", ["tumour_triage"])
    shown = display.console.export_text()
    assert f"$ shipyard app create {APP} --template web --model tumour_triage" in shown
    assert f"/apps/{APP}/health" in shown and f'"app":"{APP}"' in shown
    assert "-X POST http://127.0.0.1:" in shown and f"/apps/{APP}/predict -H" in shown
    assert f"production revision {latest.number} holds " in shown
    assert (tmp_path / "api-key.txt").read_text().strip() not in shown


def test_the_app_step_stops_at_a_target_that_requires_approvals(
    tmp_path: Path, signed_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    production_registry(tmp_path, signed_bundle, key_pair[1])
    with open_registry(tmp_path) as registry:
        registry.set_setting("approvals_required", "1", "demo", "production")
        before = registry.status("demo", "production").revision
    with pytest.raises(ApprovalRequired):
        app_step(tmp_path, "demo", CHAIN, key_pair, _display())
    with open_registry(tmp_path) as registry:
        status = registry.status("demo", "production")
    assert status.revision == before
    assert [c.name for c in status.components] == ["tumour_triage"]
