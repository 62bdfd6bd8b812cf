"""Batch jobs on SQLite and PostgreSQL: queued, claimed once, run, cancelled, never lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from shipyard.batch import Worker, wait_for
from shipyard.cli import main
from shipyard.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from shipyard.registry import BatchJob, Registry
from shipyard.registry_http import OPERATIONS, RegistryClient, create_app

from ..conftest import serving
from .conftest import read_table, write_table

FAST = {"poll_every": 0.05, "heartbeat_every": 0.2, "stale_after": 1.0}


@pytest.fixture()
def production(registry: Registry, slow_bundle: Path, signed_bundle: Path) -> Registry:
    """Project 'demo' whose production runs 'slow' v1 and 'tumour_triage' v1."""
    registry.create_project("demo")
    for bundle in (slow_bundle, signed_bundle):
        version = registry.register_model("demo", bundle)
        registry.tag("demo", version.model, version.version_id)
        registry.add_component("demo", "production", version.model)
    return registry


@pytest.fixture()
def items(tmp_path: Path) -> Path:
    """600 rows for the slow model (x from 0.25 to 599.25: the ``gate`` holds x >= 100)."""
    path = tmp_path / "items.csv"
    path.write_text("x\n" + "".join(f"{i}.25\n" for i in range(600)))
    return path


def until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"waited {timeout} s in vain")


def running(registry: Registry, job_id: int) -> BatchJob | None:
    """The job once a worker has scored some of it, else None."""
    job = registry.get_batch_job(job_id)
    return job if job.state == "running" and job.rows_done > 0 else None


def test_a_job_scores_with_the_version_deployed_when_it_was_submitted(
    production: Registry, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours.slice(0, 300), tmp_path / "in.parquet")
    output = tmp_path / "scores.csv"
    job = production.submit_batch_job(
        "demo",
        "production",
        "tumour_triage",
        str(data),
        str(output),
        {"id_column": "id"},
    )
    deployed = production.list_components("demo", "production")
    assert (job.state, job.version, job.rows_done) == ("queued", "v1", 0)
    assert job.bundle_digest == next(c.digest for c in deployed if c.name == "tumour_triage")
    Worker(production, **FAST).run(until_idle=True)
    done = production.get_batch_job(job.id)
    assert (done.state, done.rows_done, done.rows_rejected, done.error) == (
        "succeeded",
        300,
        0,
        None,
    )
    assert done.result is not None and done.result["scored"] == 300
    assert read_table(output).column("id").to_pylist() == tumours.column("id")[:300].to_pylist()
    assert [e.action for e in production.audit_list(limit=1)] == ["batch.submit"]
    assert [j.id for j in production.list_batch_jobs("demo", "production", "succeeded")] == [job.id]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (("slow", "in.csv", "/etc/passwd", {}), PermissionDenied, "outside the batch roots"),
        (("slow", "/etc/passwd", "out.csv", {}), PermissionDenied, "outside the batch roots"),
        (("slow", "../in.csv", "out.csv", {}), PermissionDenied, "outside the batch roots"),
        (("slow", "s3://b/in.csv", "out.csv", {}), PermissionDenied, "outside the batch roots"),
        (("slow", "hdfs://h/in.csv", "out.csv", {}), InvalidInput, "a path or an s3:// URI"),
        (("nope", "in.csv", "out.csv", {}), NotFound, "does not run model 'nope'"),
        (("slow", "in.csv", "out.csv", {"workers": 0}), InvalidInput, "at least 1"),
        (("slow", "in.csv", "out.csv", {"speed": 2}), InvalidInput, "unknown batch option"),
        (("slow", "in.xlsx", "out.csv", {}), InvalidInput, "cannot tell the format"),
    ],
)
def test_a_job_that_cannot_run_is_refused_at_submission(
    production: Registry, arguments: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    model, source, target, options = arguments
    with pytest.raises(error, match=message):
        production.submit_batch_job("demo", "production", model, source, target, options)
    assert production.list_batch_jobs() == []


def test_concurrent_workers_never_claim_the_same_job(
    production: Registry, items: Path, tmp_path: Path
) -> None:
    ids = [
        production.submit_batch_job(
            "demo", "production", "slow", str(items), str(tmp_path / f"{i}.csv")
        ).id
        for i in range(6)
    ]
    claimed: list[int] = []

    def claim_all(worker: str) -> None:
        while (job := production.claim_batch_job(worker)) is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == ids
    assert {j.state for j in production.list_batch_jobs()} == {"running"}


def heartbeat_ended(job_id: int) -> bool:
    """Whether this process's heartbeat thread for ``job_id`` has ended (the job is not its own)."""
    return not any(t.name == f"heartbeat-{job_id}" for t in threading.enumerate())


def test_cancelling_a_running_job_stops_it_and_writes_nothing(
    production: Registry, items: Path, gate: Path, tmp_path: Path
) -> None:
    output = tmp_path / "scores.csv"
    options = {"chunk_rows": 10}
    job = production.submit_batch_job(
        "demo", "production", "slow", str(items), str(output), options
    )
    worker = Worker(production, **FAST).start()
    try:
        until(lambda: running(production, job.id))  # held at the gate: it cannot finish
        assert production.cancel_batch_job(job.id).state == "cancelled"
        # Released only once the worker has heard of the cancellation.
        until(lambda: heartbeat_ended(job.id))
    finally:
        (gate / "release").touch()
        worker.stop(timeout=30)
    done = production.get_batch_job(job.id)
    assert (done.state, done.error) == ("cancelled", "cancelled by alice")
    assert not output.exists()
    assert not list(tmp_path.glob(".scores.csv.*"))  # the temporary files went too
    with pytest.raises(Conflict, match="already cancelled"):
        production.cancel_batch_job(job.id)


def test_a_job_that_fails_says_why(production: Registry, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text("y\n1\n")
    job = production.submit_batch_job(
        "demo", "production", "slow", str(data), str(tmp_path / "o.csv")
    )
    Worker(production, **FAST).run(until_idle=True)
    done = production.get_batch_job(job.id)
    assert done.state == "failed"
    assert done.error is not None and "has no column 'x'" in done.error


@pytest.fixture()
def worker_process(
    production: Registry, database_url: str, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts ``shipyard batch worker`` processes on the test's registry; kills them after."""
    started: list[subprocess.Popen[bytes]] = []
    command = [sys.executable, "-c", "from shipyard.cli import main; main()", "batch", "worker"]
    command += ["--poll", "0.05", "--heartbeat", "0.2", "--stale-after", "1"]

    def start() -> subprocess.Popen[bytes]:
        env = dict(  # read when the process starts, so that it sees the test's ``gate``
            os.environ,
            SHIPYARD_DATABASE_URL=database_url,
            SHIPYARD_ARTIFACT_STORE=str(tmp_path / "artifacts"),
        )
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.mark.parametrize("max_attempts", [2, 1])
def test_a_killed_worker_never_loses_its_job(
    production: Registry,
    worker_process: Callable[[], subprocess.Popen[bytes]],
    items: Path,
    gate: Path,
    tmp_path: Path,
    max_attempts: int,
) -> None:
    output = tmp_path / "scores.csv"
    options = {"chunk_rows": 10}
    job = production.submit_batch_job(
        "demo", "production", "slow", str(items), str(output), options
    )
    process = worker_process()
    until(lambda: running(production, job.id))  # held at the gate: it cannot finish
    process.send_signal(signal.SIGKILL)  # mid-job, as a crash or a restart would
    process.wait(timeout=30)
    assert production.get_batch_job(job.id).state == "running"  # as the dead worker left it
    assert not output.exists()
    (gate / "release").touch()  # the next attempt runs to the end
    # The next worker to start finds it, once its heartbeat is older than stale_after.
    restarted = Worker(production, **FAST, max_attempts=max_attempts).start()
    try:
        done = wait_for(production, job.id, timeout=60)
    finally:
        restarted.stop(timeout=30)
    assert done.error is not None and "stopped during attempt 1" in done.error
    if max_attempts == 2:
        assert (done.state, done.attempts, done.rows_done) == ("succeeded", 2, 600)
        assert "queued again to run from the start" in done.error
        assert read_table(output).num_rows == 600
    else:
        assert (done.state, done.attempts) == ("failed", 1)
        assert "gave up after 1 attempts" in done.error
        assert not output.exists()


def test_http_routes_submit_follow_list_and_cancel(
    production: Registry, items: Path, tmp_path: Path
) -> None:
    deployer = production.create_token("ci", "deployer")[1]
    viewer = production.create_token("watcher", "viewer")[1]
    with serving(create_app(lambda: production)) as url:
        client = RegistryClient(url, deployer)
        submitted = client.submit_batch_job(
            "demo", "production", "slow", str(items), str(tmp_path / "o.csv"), {"chunk_rows": 50}
        )
        assert (submitted["state"], submitted["model"], submitted["created_by"]) == (
            "queued",
            "slow",
            "ci",
        )
        assert client.get_batch_job(submitted["id"])["input"] == str(items)
        watcher = RegistryClient(url, viewer)
        assert [j["id"] for j in watcher.list_batch_jobs(project="demo")] == [submitted["id"]]
        path = f"{url}/api/v1/batch-jobs/{submitted['id']}"
        auth = {"Authorization": f"Bearer {viewer}"}
        scope = {"project": "demo", "env": "production", "model": "slow"}
        mine = httpx.get(path, params=scope, headers=auth)
        assert mine.json()["id"] == submitted["id"]
        other = httpx.get(path, params={**scope, "model": "tumour_triage"}, headers=auth)
        assert other.status_code == 404
        submit = f"{url}/api/v1/projects/demo/environments/production/models/slow/batch"
        assert httpx.post(submit, json={}).status_code == 401
        with pytest.raises(PermissionDenied, match="has role viewer"):
            watcher.cancel_batch_job(submitted["id"])
        with pytest.raises(PermissionDenied, match="'/etc/passwd' is outside the batch roots"):
            client.submit_batch_job("demo", "production", "slow", "in.csv", "/etc/passwd")
        assert client.cancel_batch_job(submitted["id"])["state"] == "cancelled"
        with pytest.raises(Conflict):
            client.cancel_batch_job(submitted["id"])
        with pytest.raises(NotFound):
            client.get_batch_job(999_999)


JOB_OPERATIONS = {
    "submit_batch_job": ("POST", "deployer"),
    "get_batch_job": ("GET", "viewer"),
    "list_batch_jobs": ("GET", "viewer"),
    "cancel_batch_job": ("POST", "deployer"),
    "claim_batch_job": ("POST", "deployer"),
    "recover_batch_jobs": ("POST", "deployer"),
    "heartbeat_batch_job": ("POST", "deployer"),
    "finish_batch_job": ("POST", "deployer"),
}


def test_job_operations_are_in_the_openapi_document_and_a_worker_can_use_them_over_http(
    production: Registry, items: Path, tmp_path: Path
) -> None:
    assert {op.name: (op.method, op.role) for op in OPERATIONS if "batch_job" in op.name} == (
        JOB_OPERATIONS
    )
    output = tmp_path / "o.csv"
    job_id = production.submit_batch_job("demo", "production", "slow", str(items), str(output)).id
    worker = production.create_token("worker", "deployer")[1]
    viewer = production.create_token("watcher", "viewer")[1]
    with serving(create_app(lambda: production)) as url:
        document = httpx.get(f"{url}/openapi.json").json()
        found = {
            op["operationId"]: (method.upper(), op)
            for item in document["paths"].values()
            for method, op in item.items()
        }
        for name, (method, role) in JOB_OPERATIONS.items():
            assert found[name][0] == method, name
            assert f"role `{role}`" in found[name][1]["description"], name
        job = {"$ref": "#/components/schemas/BatchJob"}
        submitted = found["submit_batch_job"][1]["responses"]["201"]
        assert submitted["content"]["application/json"]["schema"] == job
        claimed = found["claim_batch_job"][1]["responses"]["200"]
        assert claimed["content"]["application/json"]["schema"] == {
            "anyOf": [job, {"type": "null"}]
        }
        assert "rejects" in document["components"]["schemas"]["BatchJob"]["required"]

        with pytest.raises(PermissionDenied, match="has role viewer"):
            RegistryClient(url, viewer).claim_batch_job("w1")
        client = RegistryClient(url, worker)
        taken = client.claim_batch_job("w1")
        assert (taken["id"], taken["state"], taken["worker"], taken["attempts"]) == (
            job_id,
            "running",
            "w1",
            1,
        )
        assert client.claim_batch_job("w2") is None  # nothing else is queued
        assert client.heartbeat_batch_job(job_id, "w1", 120, 3) is True
        assert client.heartbeat_batch_job(job_id, "w2", 1, 0) is False  # not w2's job
        assert (production.get_batch_job(job_id).rows_done, taken["rows_done"]) == (120, 0)
        # A heartbeat older than stale_after (0.001 s) is a dead worker's: queued again.
        recovered = client.recover_batch_jobs(0.001, 3)
        assert [(j["id"], j["state"]) for j in recovered] == [(job_id, "queued")]
        assert "worker w1 stopped during attempt 1" in recovered[0]["error"]
        assert client.heartbeat_batch_job(job_id, "w1", 130, 3) is False  # so w1 must stop
        assert client.claim_batch_job("w2")["attempts"] == 2
        with pytest.raises(InvalidInput, match="not both"):
            client.finish_batch_job(job_id, "w2")
        result = {"rows": 600, "scored": 600, "rejected": 0}
        ignored = client.finish_batch_job(job_id, "w1", result=result)  # w1 lost the job
        assert ignored["state"] == "running"
        done = client.finish_batch_job(job_id, "w2", result=result)
        assert (done["state"], done["rows_done"], done["result"]) == ("succeeded", 600, result)
        assert client.get_batch_job(job_id)["finished_at"] is not None


def test_a_worker_runs_jobs_through_a_registry_server(
    production: Registry, tumours: pa.Table, tmp_path: Path
) -> None:
    data = write_table(tumours.slice(0, 50), tmp_path / "in.csv")
    output = tmp_path / "scores.parquet"
    job = production.submit_batch_job(
        "demo", "production", "tumour_triage", str(data), str(output), {"id_column": "id"}
    )
    token = production.create_token("worker", "deployer")[1]
    with serving(create_app(lambda: production)) as url, RegistryClient(url, token) as client:
        Worker(client, "remote", **FAST).run(until_idle=True)
        done = wait_for(client, job.id, timeout=60)
    assert (done.state, done.worker, done.rows_done, done.error) == (
        "succeeded",
        "remote",
        50,
        None,
    )
    assert read_table(output).column("id").to_pylist() == tumours.column("id")[:50].to_pylist()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run the CLI in-process; return (exit code, stdout)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out


def test_cli_scores_with_the_deployed_model_and_manages_jobs(
    production: Registry,
    database_url: str,
    tumours: pa.Table,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SHIPYARD_URL", raising=False)
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPYARD_ARTIFACT_STORE", str(tmp_path / "artifacts"))
    data = write_table(tumours.slice(0, 40), tmp_path / "in.csv")
    model = ("--project", "demo", "--env", "production", "--model", "tumour_triage")
    code, out = run_cli(
        capsys, "batch", "run", *model, "-i", str(data), "-o", str(tmp_path / "o.csv"), "--json"
    )
    assert (code, json.loads(out)["scored"]) == (0, 40)
    origin = json.loads(out)["provenance"]
    revision = production.get_environment("demo", "production").revision
    assert {k: origin[k] for k in ("project", "environment", "model", "version")} == {
        "project": "demo",
        "environment": "production",
        "model": "tumour_triage",
        "version": production.list_components("demo", "production")[0].tag,
    }
    assert origin["revision"] == revision and len(origin["digest"]) == 64
    code, out = run_cli(
        capsys, "batch", "submit", *model, "-i", str(data), "-o", str(tmp_path / "p.csv"), "--json"
    )
    job_id = json.loads(out)["id"]
    code, out = run_cli(capsys, "batch", "status", str(job_id), "--json")
    assert (code, json.loads(out)["state"], json.loads(out)["output"]) == (
        0,
        "queued",
        str(tmp_path / "p.csv"),
    )
    code, out = run_cli(capsys, "batch", "status", str(job_id))  # for people: one row
    assert code == 0 and "queued" in out and "tumour_triage" in out
    assert "Traceback" not in out
    code, out = run_cli(capsys, "batch", "list", "--state", "queued", "--json")
    assert [j["id"] for j in json.loads(out)] == [job_id]
    code, out = run_cli(capsys, "batch", "cancel", str(job_id))
    assert (code, out.strip()) == (0, f"batch job {job_id}: cancelled")
    code, _ = run_cli(capsys, "batch", "cancel", str(job_id))
    assert code == 1


def test_cli_job_commands_work_against_a_registry_server(
    production: Registry,
    tumours: pa.Table,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_table(tumours.slice(0, 30), tmp_path / "in.csv")
    output = tmp_path / "p.csv"
    model = ("--project", "demo", "--env", "production", "--model", "tumour_triage")
    # No database here: everything goes through the server.
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("SHIPYARD_TOKEN", production.create_token("ci", "deployer")[1])
    with serving(create_app(lambda: production)) as url:
        monkeypatch.setenv("SHIPYARD_URL", url)
        code, out = run_cli(
            capsys, "batch", "submit", *model, "-i", str(data), "-o", str(output), "--json"
        )
        submitted = json.loads(out)
        assert (code, submitted["state"], submitted["created_by"]) == (0, "queued", "ci")
        code, out = run_cli(capsys, "batch", "list", "--project", "demo", "--json")
        assert (code, [j["id"] for j in json.loads(out)]) == (0, [submitted["id"]])
        code, out = run_cli(capsys, "batch", "worker", "--once", "--poll", "0.05")
        assert code == 0 and url in out
        code, out = run_cli(capsys, "batch", "status", str(submitted["id"]), "--json")
        assert (code, json.loads(out)["state"], json.loads(out)["rows_done"]) == (
            0,
            "succeeded",
            30,
        )
        code, _ = run_cli(capsys, "batch", "cancel", str(submitted["id"]))
        assert code == 1  # it has finished: nothing to cancel
    assert read_table(output).num_rows == 30
