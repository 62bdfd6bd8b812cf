"""Request capture writes only under the serving host's capture root (SHIPYARD_CAPTURE_ROOT).

A deployer names a folder in the environment config; the registry takes only one that
stays inside any root, and the serving host resolves it under its own root when it
starts and again before every write, so a symlink inside the root cannot lead out.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from shipyard.errors import InvalidInput, PermissionDenied
from shipyard.registry import CAPTURE_ROOT_ENV, Registry, capture_root
from shipyard.registry_http import RegistryClient, create_app
from shipyard.serving import (
    Capture,
    CaptureRecord,
    Metrics,
    ParquetFolder,
    ServeOptions,
    build_app,
)

from ..conftest import serving
from ..registry.conftest import MODEL


def record(model: str = MODEL, version: str = "1.0.0") -> CaptureRecord:
    """One captured request of two rows."""
    return CaptureRecord(
        model,
        version,
        "req-1",
        time.time(),
        {"tumours.mean_radius": ("float64", np.array([14.1, 20.5]))},
        {"p_malignant": ("float64", np.array([0.1, 0.9]))},
    )


def captured(folder: Path) -> int:
    """Rows in the capture files under ``folder``."""
    return sum(pq.read_table(f).num_rows for f in folder.rglob("*.parquet"))


@pytest.mark.parametrize("folder", ["/etc/cron.d", "../../elsewhere", "a/../../b", "..\\up"])
def test_a_deployer_cannot_point_capture_out_of_the_capture_root(
    demo: Registry, folder: str
) -> None:
    before = demo.get_environment("demo", "production").revision
    with pytest.raises(PermissionDenied) as refused:
        demo.set_environment_config("demo", "production", {"capture": {"folder": folder}})
    message = str(refused.value)
    assert f"capture.folder '{folder}' is outside the capture root" in message
    assert CAPTURE_ROOT_ENV in message
    assert demo.get_environment("demo", "production").revision == before


def test_a_capture_folder_relative_to_the_root_is_accepted(demo: Registry) -> None:
    config = {"capture": {"rate": 0.05, "folder": "sampled/production"}, "reports": "/x"}
    demo.set_environment_config("demo", "production", config)
    assert demo.get_environment_config("demo", "production") == config


@pytest.mark.parametrize(
    "capture",
    [{"folder": ""}, {"folder": 3}, ["folder"], {"llm_prompts": "yes"}, {"llm_calls": 0}],
)
def test_a_malformed_capture_entry_is_refused(demo: Registry, capture: object) -> None:
    with pytest.raises(InvalidInput, match="capture"):
        demo.set_environment_config("demo", "production", {"capture": capture})


def test_over_http_a_capture_folder_outside_the_root_is_forbidden(demo: Registry) -> None:
    token = demo.create_token("ci", "deployer")[1]
    with serving(create_app(lambda: demo)) as url, RegistryClient(url, token) as client:
        with pytest.raises(PermissionDenied, match="'/var/www' is outside the capture root"):
            client.set_environment_config(
                "demo", "integration", {"capture": {"folder": "/var/www"}}
            )
        client.set_environment_config("demo", "integration", {"capture": {"folder": "mine"}})
    assert demo.get_environment_config("demo", "integration") == {"capture": {"folder": "mine"}}


def test_the_operator_sets_the_root_and_the_folder_goes_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv(CAPTURE_ROOT_ENV, str(root))
    real = Path(os.path.realpath(root))
    assert ParquetFolder.for_environment("sampled", "demo", "prod").folder == real / "sampled"
    assert ParquetFolder.for_environment(None, "demo", "prod").folder == real / "demo" / "prod"
    inside = str(root / "legacy")  # an absolute folder under the root still works
    assert ParquetFolder.for_environment(inside, "demo", "prod").folder == real / "legacy"
    with pytest.raises(PermissionDenied) as refused:
        ParquetFolder.for_environment(str(tmp_path / "other"), "demo", "prod")
    assert f"is outside the capture root ({root})" in str(refused.value)
    assert f"{CAPTURE_ROOT_ENV} on the serving host" in str(refused.value)


def test_the_default_root_is_the_capture_folder_of_shipyard_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CAPTURE_ROOT_ENV, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    assert capture_root().entries == (str(tmp_path / "home" / "capture"),)


def test_capture_inside_the_root_writes_parquet_files(tmp_path: Path) -> None:
    metrics = Metrics()
    sink = ParquetFolder.for_environment(None, "demo", "prod", capture_root(tmp_path))
    capture = Capture(sink, metrics, rate=1.0)
    capture.start()
    capture.offer(record())
    capture.stop()
    assert captured(tmp_path / "demo" / "prod" / MODEL / "1.0.0") == 2
    assert metrics.captured.labels(MODEL)._value.get() == 2


def test_a_symlink_inside_the_root_cannot_carry_capture_files_out_of_it(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path / "root"
    sink = ParquetFolder.for_environment(None, "demo", "prod", capture_root(root))
    outside = tmp_path_factory.mktemp("outside")
    (root / "demo" / "prod").mkdir(parents=True)
    (root / "demo" / "prod" / MODEL).symlink_to(outside)  # placed after serving started
    metrics = Metrics()
    capture = Capture(sink, metrics, rate=1.0)
    capture.start()
    capture.offer(record())
    capture.stop()
    assert list(outside.iterdir()) == []  # nothing written, no folder made
    assert metrics.capture_dropped.labels("write_failed")._value.get() == 1  # one request
    with pytest.raises(PermissionDenied, match=rf"\({os.path.realpath(outside)}/1.0.0\)"):
        sink.write(MODEL, "1.0.0", object())


def test_serve_refuses_to_start_when_the_capture_folder_leads_out_of_the_root(
    demo: Registry,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv(CAPTURE_ROOT_ENV, str(root))
    demo.add_component("demo", "production", MODEL, "v1")
    demo.set_environment_config("demo", "production", {"capture": {"folder": "sampled"}})
    options = ServeOptions(project="demo", environment="production")
    (root / "sampled").symlink_to(tmp_path_factory.mktemp("outside"))
    with pytest.raises(PermissionDenied, match="the capture folder 'sampled' .* is outside"):
        build_app(options, registry=demo)
    (root / "sampled").unlink()
    app = build_app(options, registry=demo)
    assert isinstance(app.capture, Capture) and isinstance(app.capture.sink, ParquetFolder)
    assert app.capture.sink.folder == Path(os.path.realpath(root)) / "sampled"
