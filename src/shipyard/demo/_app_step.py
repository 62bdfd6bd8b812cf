"""The app step of ``shipyard demo``: a web app beside the model, promoted and served with it.

``app_step`` scaffolds the web template's app for the demo model (what ``shipyard app
create`` writes), locks it as a signed app bundle, registers and tags it, adds it with
the model production runs to the first environment of the chain, and promotes that
environment along the chain, so one promotion (approved by a second person, as
production needs) brings app and model into production in one revision. It then serves
production with the real ``shipyard serve`` and asks the app, as a user would, for one
prediction, which must be the model's own answer.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ..errors import ShipyardError
from ..registry import to_json
from ._display import Display
from ._pipeline import reference
from ._registry_steps import Narrator, demo_registry
from ._serve_step import Served, curl, serving

APP = "triage_web"
ROW = 81  # a row of the data set the model sends for review


def app_step(
    workdir: Path,
    project: str,
    chain: Sequence[str],
    keys: tuple[Path, Path],
    display: Display,
) -> dict[str, Any]:
    """Put the web app beside the model in the last environment of ``chain``; predict with it.

    ``keys`` is the (private, public) pair the registry trusts: the app bundle is signed
    with the private key, and the server checks signatures with the public one. The
    app's folder (``WORKDIR/triage_web``) is made fresh; its bundle goes to
    ``WORKDIR/dist``. Returns ``{"revision": the promotion's revision, "app": the app's
    answer, "model": the model's own predictions for the same row}`` (plain JSON).
    The promotions are those of step 6: into a target that needs approval
    (``approvals_required``, 1 on the demo's production), the promotion is a change
    request that the reviewer approves. Raises ShipyardError when that approval does not
    apply it (the target needs more), the promotion does not carry both, or the app does
    not answer as it should, or answers otherwise than the model.
    """
    from ..app_templates import CreateOptions, create_app
    from ..apps import build_app_bundle

    sign_key, public = keys
    say, views = Narrator(display), display.views
    first, target = chain[0], chain[-1]
    home = workdir / ".shipyard"
    with demo_registry(home) as registry:
        models = [c for c in registry.status(project, target).components if c.kind == "model"]
        held_first = {c.name: c for c in registry.status(project, first).components}
    if not models:
        raise ShipyardError(f"{target} runs no model for the app to call")
    model = models[0]
    folder = workdir / APP
    shutil.rmtree(folder, ignore_errors=True)  # made fresh, like the registry
    say.command(
        f"app create {APP} --template web --model {model.name} --project {project} -o {folder}"
    )
    created = create_app(CreateOptions(APP, "web", folder, (model.name,), project, tuple(chain)))
    say.line(
        f"created {created.folder} from the web template ({len(created.files)} files: "
        "app/main.py, its form page, tests, Containerfile, CI workflows)"
    )

    dist = workdir / "dist"
    with demo_registry(home) as registry:
        say.command(f"app register {folder} --project {project} --sign-key {sign_key} -o {dist}")
        bundle = build_app_bundle(folder, dist, sign_key=sign_key)
        version = to_json(registry.register_app(project, bundle))
        say.line(f"registered {views.version(version)} (kept at {bundle})")
        say.command(f"app tag {APP} {version['version_id']} --project {project}")
        tagged = to_json(registry.tag(project, APP, version["version_id"]))
        say.line(f"tagged {views.version(tagged)}")
        # The model goes up at the version the target runs: what reaches the target is the
        # app beside the model it already runs, not whatever the first environment held.
        label = model.tag or f"candidate {model.version_id}"
        there = held_first.get(model.name)
        if there is None or there.version_id != model.version_id:
            was = f"{model.name} {there.tag or there.version_id}" if there else f"no {model.name}"
            say.line(
                f"{first} holds {was}; the app goes up beside {label}, the version {target} runs"
            )
            say.command(
                f"component add {model.name} --version {model.tag or model.version_id} "
                f"--env {first} --project {project}"
            )
            added = to_json(registry.add_component(project, first, model.name, model.version_id))
            say.line(f"added: {views.revision(added)}")
        say.command(
            f"component add {APP} --version {tagged['tag']} --env {first} --project {project}"
        )
        added = to_json(registry.add_component(project, first, APP, tagged["version_id"]))
        say.line(f"added: {views.revision(added)}")
        revision = added
        for env in chain[:-1]:
            revision = say.promote(registry, env)
    _check_carried(revision, {model.name: "model", APP: "app"})
    held = " and ".join(
        f"{c['name']} {c['tag'] or c['version_id']} ({c['kind']})" for c in revision["components"]
    )
    say.line(
        f"{target} revision {revision['number']} holds {held}: the app and the model it "
        "calls went up in one promotion, and a rollback takes them back together"
    )

    with serving(workdir, project, target, say.console, public, "serve-app.log") as served:
        answer, direct = _ask_the_app(served, project, target, workdir, say)
    return {"revision": revision, "app": answer, "model": direct}


def _check_carried(revision: dict[str, Any], expected: dict[str, str]) -> None:
    """ShipyardError unless ``revision`` holds each ``expected`` component, of its kind."""
    kinds = {c["name"]: c["kind"] for c in revision["components"]}
    missing = {n: k for n, k in expected.items() if kinds.get(n) != k}
    if missing:
        raise ShipyardError(
            f"{revision['environment']} revision {revision['number']} should hold "
            f"{', '.join(f'{n} ({k})' for n, k in missing.items())}; it holds "
            f"{', '.join(f'{n} ({k})' for n, k in kinds.items()) or 'nothing'}"
        )


def _ask_the_app(
    served: Served, project: str, env: str, workdir: Path, say: Narrator
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The app's /health and one /predict, as curl would send them; the model's own
    answer to the same row. Returns (the app's answer, the model's predictions)."""
    app = f"{served.base}/apps/{APP}"
    say.line(curl(f"{app}/health"))
    health = httpx.get(f"{app}/health", timeout=30)
    if health.status_code != 200 or health.json().get("app") != APP:
        raise ShipyardError(f"{APP}'s /health answered HTTP {health.status_code} {health.text}")
    say.line(health.text)

    row = {name: values[ROW] for name, values in reference()["tumours"].items()}
    request = workdir / "app-request.json"
    request.write_text(json.dumps({"rows": [row]}))
    say.line(curl(f"{app}/predict", served.key_file, request))
    headers = {"X-API-Key": served.key(), "Content-Type": "application/json"}
    response = httpx.post(
        f"{app}/predict", content=request.read_bytes(), headers=headers, timeout=30
    )
    if response.status_code != 200:
        raise ShipyardError(f"{APP}'s /predict failed: HTTP {response.status_code} {response.text}")
    say.line(response.text)
    answer = dict(response.json())

    url = (
        f"{served.base}/api/v1/projects/{project}/environments/{env}/models/{served.model}/predict"
    )
    direct = httpx.post(url, json={"dataframe_records": [row]}, headers=headers, timeout=30)
    if direct.status_code != 200:
        raise ShipyardError(
            f"the model's own answer failed: HTTP {direct.status_code} {direct.text}"
        )
    predictions = list(direct.json()["predictions"])
    if answer != {"model": served.model, "predictions": predictions}:
        raise ShipyardError(
            f"{APP} answered {answer['predictions']}, the model itself {predictions}"
        )
    [scored] = predictions
    say.line(
        f"row {ROW} through {APP}: p_malignant {scored['p_malignant']:.4f}, decision "
        f"{scored['decision']}; the same as {served.model} "
        f"{direct.headers['x-shipyard-version']} answers itself (its predict route)"
    )
    return answer, predictions
