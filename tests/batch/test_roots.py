"""Batch jobs read and write only under the batch roots an operator sets (SHIPYARD_BATCH_ROOTS).

The registry refuses a location outside them at submission; each worker checks again,
with symlinks and '..' resolved, just before it runs the job.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from shipyard.batch import Worker
from shipyard.errors import InvalidInput, PermissionDenied, UsageError
from shipyard.registry import BATCH_ROOTS_ENV, Registry, Roots, batch_roots
from shipyard.registry_http import create_app

from ..conftest import serving

FAST = {"poll_every": 0.05, "heartbeat_every": 0.2, "stale_after": 1.0}
ROWS = "x\n" + "".join(f"{i}.25\n" for i in range(5))  # five rows for the 'slow' model


def roots_of(*entries: str | Path) -> Roots:
    return Roots.parse(",".join(map(str, entries)), "batch roots", BATCH_ROOTS_ENV)


@pytest.fixture()
def slow_demo(registry: Registry, slow_bundle: Path) -> Registry:
    """Project 'demo' whose production runs 'slow' v1 (input column x)."""
    registry.create_project("demo")
    version = registry.register_model("demo", slow_bundle)
    registry.tag("demo", version.model, version.version_id)
    registry.add_component("demo", "production", version.model)
    return registry


def test_a_relative_location_is_under_the_first_root(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    roots = roots_of(first, second)
    real = Path(os.path.realpath(tmp_path))
    assert roots.locate("in/rows.csv", "the input location") == str(real / "first/in/rows.csv")
    assert roots.locate(str(second / "o.csv"), "the output location") == str(real / "second/o.csv")


def test_dot_dot_cannot_lead_out_of_a_root(tmp_path: Path) -> None:
    roots = roots_of(tmp_path / "root")
    with pytest.raises(PermissionDenied) as refused:
        roots.locate("../elsewhere/o.csv", "the output location")
    message = str(refused.value)
    assert "the output location '../elsewhere/o.csv'" in message
    assert f"outside the batch roots ({tmp_path / 'root'})" in message
    assert BATCH_ROOTS_ENV in message
    with pytest.raises(PermissionDenied, match="'/etc/passwd' is outside the batch roots"):
        roots.locate("/etc/passwd", "the output location")


def test_a_symlink_inside_a_root_cannot_lead_out_of_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "shortcut").symlink_to(root / "data")
    roots = roots_of(root)
    real_outside = os.path.realpath(outside)
    with pytest.raises(PermissionDenied, match=rf"\({real_outside}/o.csv\) is outside"):
        roots.locate("escape/o.csv", "the output location")
    # A link that stays inside the root is followed.
    found = roots.locate("shortcut/o.csv", "the output location")
    assert found == os.path.join(os.path.realpath(root), "data", "o.csv")


def test_s3_locations_need_a_prefix_the_roots_list() -> None:
    roots = roots_of("s3://scores/jobs", "/srv/batch")
    assert roots.locate("s3://scores/jobs/a.csv", "the input location") == "s3://scores/jobs/a.csv"
    assert roots.locate("a.csv", "the input location") == "s3://scores/jobs/a.csv"
    for refused in ("s3://scores/jobsdb/a.csv", "s3://other/jobs/a.csv", "s3://scores/a.csv"):
        with pytest.raises(PermissionDenied, match="outside the batch roots"):
            roots.locate(refused, "the input location")
    with pytest.raises(InvalidInput, match="'.' or '..'"):
        roots.locate("s3://scores/jobs/../private/a.csv", "the input location")
    # Without an s3:// entry no S3 location is allowed: the workers' credentials are not
    # for a deployer to aim at any bucket they reach.
    with pytest.raises(PermissionDenied, match="outside the batch roots"):
        roots_of("/srv/batch").locate("s3://scores/jobs/a.csv", "the input location")


def test_roots_default_to_the_batch_folder_of_shipyard_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BATCH_ROOTS_ENV)
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))
    assert batch_roots().entries == (str(tmp_path / "home" / "batch"),)


def test_an_operator_sets_several_roots_and_a_malformed_list_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BATCH_ROOTS_ENV, "/srv/batch, /mnt/shared/ ,s3://scores/jobs/")
    assert batch_roots().entries == ("/srv/batch", "/mnt/shared", "s3://scores/jobs/")
    for malformed in ("relative/folder", "hdfs://cluster/data", "s3://", " , "):
        monkeypatch.setenv(BATCH_ROOTS_ENV, malformed)
        with pytest.raises(UsageError, match=BATCH_ROOTS_ENV):
            batch_roots()


def test_a_relative_job_location_is_scored_under_the_workers_root(
    slow_demo: Registry, batch_root: Path
) -> None:
    (batch_root / "in").mkdir()
    (batch_root / "in" / "items.csv").write_text(ROWS)
    (batch_root / "out").mkdir()
    job = slow_demo.submit_batch_job("demo", "production", "slow", "in/items.csv", "out/s.csv")
    assert (job.input, job.output) == ("in/items.csv", "out/s.csv")  # as given: each worker
    Worker(slow_demo, **FAST).run(until_idle=True)  # resolves them under its own root
    done = slow_demo.get_batch_job(job.id)
    assert (done.state, done.rows_done, done.error) == ("succeeded", 5, None)
    real = os.path.realpath(batch_root)
    assert done.result is not None and done.result["output"] == f"{real}/out/s.csv"
    assert (batch_root / "out" / "s.csv").read_text().count("\n") == 6  # header + 5 rows


def test_a_symlink_made_after_submission_cannot_carry_a_job_out_of_the_root(
    slow_demo: Registry, batch_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (batch_root / "items.csv").write_text(ROWS)
    job = slow_demo.submit_batch_job("demo", "production", "slow", "items.csv", "late/s.csv")
    outside = tmp_path_factory.mktemp("outside")
    (batch_root / "late").symlink_to(outside)  # after the registry checked the job
    Worker(slow_demo, **FAST).run(until_idle=True)
    done = slow_demo.get_batch_job(job.id)
    assert done.state == "failed" and done.error is not None
    assert done.error.startswith("PermissionDenied: the output location 'late/s.csv'")
    assert f"({os.path.realpath(outside)}/s.csv) is outside the batch roots" in done.error
    assert list(outside.iterdir()) == []


def test_a_worker_holds_a_job_to_its_own_roots(
    slow_demo: Registry, batch_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (batch_root / "items.csv").write_text(ROWS)
    job = slow_demo.submit_batch_job(
        "demo", "production", "slow", str(batch_root / "items.csv"), str(batch_root / "s.csv")
    )
    elsewhere = roots_of(tmp_path_factory.mktemp("worker-root"))
    Worker(slow_demo, roots=elsewhere, **FAST).run(until_idle=True)
    done = slow_demo.get_batch_job(job.id)
    assert done.state == "failed" and done.error is not None
    assert "the input location" in done.error and "outside the batch roots" in done.error
    assert not (batch_root / "s.csv").exists()


def test_over_http_a_location_outside_the_roots_is_a_403_naming_it(
    slow_demo: Registry, batch_root: Path
) -> None:
    token = slow_demo.create_token("ci", "deployer")[1]
    with serving(create_app(lambda: slow_demo)) as url:
        answer = httpx.post(
            f"{url}/api/v1/projects/demo/environments/production/models/slow/batch",
            json={"input": "items.csv", "output": "/etc/passwd"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 403
    body = answer.json()
    assert body["error"] == "PermissionDenied"
    assert "'/etc/passwd' is outside the batch roots" in body["message"]
    assert str(batch_root) in body["message"]
    assert slow_demo.list_batch_jobs() == []
