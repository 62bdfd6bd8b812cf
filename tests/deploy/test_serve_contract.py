"""What the manifests assume of ``shipyard serve`` is what serve does: the probe and metrics
routes answer, the grace period covers serve's drain, and each arm of a split serves its
own version with the arguments it is rendered with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from shipyard.deploy import bake_environment, render_environment
from shipyard.deploy._plan import (
    API_KEYS_DIR,
    API_KEYS_FILE,
    BUNDLE_DIR,
    DRAIN_SECONDS,
    GRACE_SECONDS,
    PRE_STOP_SECONDS,
)
from shipyard.deploy._pod import LIVE, METRICS, READY
from shipyard.registry import Registry
from shipyard.serving import ServeOptions, build_app

from ..conftest import serving
from ..serving.conftest import serve_process
from ._kustomize import build
from .conftest import MODEL


def test_the_probed_routes_are_served_and_answer_when_ready(signed_bundle: Path) -> None:
    app = build_app(ServeOptions(bundle=str(signed_bundle)))
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert http.get(READY).json()["ready"] is True
        assert http.get(LIVE).json() == {"live": True}
        metrics = http.get(METRICS)
        assert metrics.status_code == 200 and "# TYPE" in metrics.text


def test_the_grace_period_lets_serve_drain_after_the_pre_stop_wait() -> None:
    assert ServeOptions().drain_seconds == DRAIN_SECONDS
    assert GRACE_SECONDS > PRE_STOP_SECONDS + DRAIN_SECONDS


def test_the_manifests_and_the_image_agree_on_where_serve_runs() -> None:
    from shipyard.deploy import _image, _plan

    assert _plan.CONTAINER_UID == _image.UID
    assert _plan.PORT == _image.PORT
    assert _plan.DATA_DIR == _image.STATE  # the writable volume the manifests mount
    assert _plan.BUNDLE_DIR == _image.BAKED
    assert f"{_plan.API_KEYS_DIR}/{_plan.API_KEYS_FILE}" == _image.API_KEYS


def test_an_arms_arguments_are_the_images_command_with_its_pin() -> None:
    from shipyard.deploy import _image, _pod

    (command,) = [line for line in _image._serve_start() if line.startswith("CMD ")]
    assert json.loads(command.removeprefix("CMD ")) == list(_pod.SERVE_ARGUMENTS)
    assert _pod.serve_arguments("m", "v2") == [*_pod.SERVE_ARGUMENTS, "--pin", "m=v2"]


def on_this_host(args: list[str], baked: Path, keys: Path) -> list[str]:
    """An arm's container arguments with the pod's paths made this machine's (and its
    all-interfaces address loopback)."""
    here = {BUNDLE_DIR: str(baked), f"{API_KEYS_DIR}/{API_KEYS_FILE}": str(keys)}
    return [here.get(arg, "127.0.0.1" if arg == "0.0.0.0" else arg) for arg in args]


def test_each_rendered_arm_runs_serve_answering_with_its_own_version_only(
    deployed: Registry, tmp_path: Path, demo_rows: dict[str, Any]
) -> None:
    """The kubernetes render of a 50/50 split, as kubectl would apply it: each arm's
    container arguments given to ``shipyard serve`` over the baked image folder."""
    traffic = {"weights": {"v1": 50, "v2": 50}, "shadow": None}
    deployed.set_setting("traffic", traffic, project="demo", env="production", component=MODEL)
    render_environment(deployed, "demo", "production", "kubernetes", tmp_path / "render")
    baked = bake_environment(deployed, "demo", "production", tmp_path / "baked").folder
    keys = tmp_path / "api-keys"
    keys.write_text("a-key-the-platform-team-chose\n")
    objects = build(tmp_path / "render" / "overlays" / "production")
    arms = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]["args"]
        for o in objects
        if o["kind"] == "Deployment"
    }
    assert sorted(arms) == ["shipyard-demo", "shipyard-demo-v2"]
    body = {"tumours": {name: values[:1] for name, values in demo_rows["tumours"].items()}}
    path = f"/api/v1/projects/demo/environments/production/models/{MODEL}/predict"
    # As the image runs it: one worker, its home on a writable volume.
    env = {"SHIPYARD_WORKERS": "1", "SHIPYARD_HOME": str(tmp_path / "home")}
    for name, version in (("shipyard-demo", "v1"), ("shipyard-demo-v2", "v2")):
        args = on_this_host(arms[name], baked, keys)
        headers = {"X-API-Key": "a-key-the-platform-team-chose"}  # the mounted key file's
        with (
            serve_process(args, env) as (base, _),
            httpx.Client(base_url=base, headers=headers, timeout=30) as client,
        ):
            seen = set()
            for _ in range(40):  # 50/50 inside serve: both versions would show in 40 answers
                response = client.post(path, json=body)
                assert response.status_code == 200, response.text
                seen.add(response.headers["x-shipyard-version"])
            assert seen == {version}, name
            assert client.get("/health").json()["pinned"] == {MODEL: version}
