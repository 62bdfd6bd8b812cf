"""``shipyard demo``'s app step: the web template's app, registered, promoted with its model
in one revision (through a reviewer's approval, as the demo's production needs), served
beside it, and answering as the model itself does."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from shipyard.demo._app_step import APP, ROW, app_step
from shipyard.demo._serve_step import open_registry
from shipyard.errors import ShipyardError
from shipyard.runtime import Artifact

from ._display import recording_display
from ._production import production_registry

CHAIN = ("integration", "uat", "production")


@pytest.mark.integration  # the step runs `shipyard serve` in a subprocess and calls it over HTTP
def test_the_app_step_promotes_app_and_model_in_one_revision_and_the_app_answers_as_the_model(
    tmp_path: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    demo_reference: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPYARD_USER", "alice")
    production_registry(tmp_path, signed_bundle, key_pair[1])
    display = recording_display()
    result = app_step(tmp_path, "demo", CHAIN, key_pair, display)

    # The app's answer is the bundle's own for the same row, run here without any server.
    row = {"tumours": {name: [values[ROW]] for name, values in demo_reference["tumours"].items()}}
    own = Artifact(signed_bundle).run(row)
    [answered] = result["app"]["predictions"]
    assert result["app"]["model"] == "tumour_triage"
    assert answered["decision"] == own["decision"]["values"][0]
    assert answered["p_malignant"] == pytest.approx(own["p_malignant"]["values"][0], abs=1e-12)

    # One promotion into production brought both, once the reviewer approved alice's
    # request; the revision before it had no app.
    with open_registry(tmp_path) as registry:
        latest, before = registry.history("demo", "production")[:2]
        [request] = registry.list_change_requests("demo", "production")
    assert latest.number == result["revision"]["number"] == request.result_revision
    assert latest.reason.startswith("promote from uat")
    assert latest.actor == "reviewer" and "by alice, approved by reviewer" in latest.reason
    assert (request.state, request.requested_by) == ("applied", "alice")
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
    assert f"$ SHIPYARD_USER=reviewer shipyard env approve {request.id} --project demo" in shown
    assert f"applied: change request {request.id} (promote uat@" in shown
    assert f"production revision {latest.number} holds " in shown
    assert (tmp_path / "api-key.txt").read_text().strip() not in shown


def test_the_app_step_stops_and_production_stays_as_it_was_while_a_request_lacks_approvals(
    tmp_path: Path, signed_bundle: Path, key_pair: tuple[Path, Path]
) -> None:
    production_registry(tmp_path, signed_bundle, key_pair[1])
    with open_registry(tmp_path) as registry:
        # Two people must approve; the demo has one reviewer, so the request stays pending.
        registry.set_setting("approvals_required", "2", "demo", "production")
        before = registry.status("demo", "production").revision
    display = recording_display()
    with pytest.raises(ShipyardError, match=r"change request \d+ is pending after reviewer's"):
        app_step(tmp_path, "demo", CHAIN, key_pair, display)
    with open_registry(tmp_path) as registry:
        status = registry.status("demo", "production")
        [request] = registry.list_change_requests("demo", "production")
    assert status.revision == before
    assert [c.name for c in status.components] == ["tumour_triage"]
    assert (request.state, [a.actor for a in request.approvals]) == ("pending", ["reviewer"])
    assert f"approved: change request {request.id}" in display.console.export_text()
