"""What the manifests assume of ``shipyard serve`` is what serve does: the probe and metrics
routes answer, and the grace period covers serve's drain."""

from __future__ import annotations

from pathlib import Path

import httpx

from shipyard.deploy._plan import DRAIN_SECONDS, GRACE_SECONDS, PRE_STOP_SECONDS
from shipyard.deploy._pod import LIVE, METRICS, READY
from shipyard.serving import ServeOptions, build_app

from ..conftest import serving


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
