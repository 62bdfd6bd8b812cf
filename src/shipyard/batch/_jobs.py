"""Batch jobs: queued in the registry's database, run by workers with the local engine.

A job scores one file with the model version an environment ran when the job was
submitted (its bundle's digest is stored with the job). States::

    queued -> running -> succeeded | failed
       \\-------------\\-> cancelled

A worker claims the oldest queued job atomically (``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite writers are serialized by ``BEGIN IMMEDIATE``), runs it, and writes
its progress and a heartbeat every few seconds. A job whose heartbeat stops (its worker
died: a crash, a restart, a killed container) is found by the next worker that starts
or polls: it is queued again and run from the start (the output only appears when
complete, so nothing half-written is ever seen), or marked failed with the reason once it
has been tried ``max_attempts`` times. Submitting and cancelling are audited.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..errors import UsageError
from ..registry import Conflict, InvalidInput, NotFound, Registry
from ..registry._audit import append as audit
from ..registry._audit import utc_text
from ..registry._db import WRITE
from ..registry._lookup import listing, now
from ..registry._rows import BatchJobRow, EnvironmentRow, ProjectRow
from ._io import FORMATS, formats, is_remote, rejects_location
from ._local import Stopped, run_local

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
OPTIONS = ("format", "input_format", "id_column", "outputs", "chunk_rows", "workers")
_INTERNAL = ("attempts", "result")  # kept in the options document beside the user's


@dataclass(frozen=True)
class Job:
    """A batch job as stored: what it scores with, where, its state and progress."""

    id: int
    project: str
    environment: str
    model: str
    version: str | None
    bundle_digest: str | None
    state: str
    input: str
    output: str
    rejects: str
    options: dict[str, Any]
    attempts: int
    rows_done: int
    rows_rejected: int
    result: dict[str, Any] | None
    error: str | None
    worker: str | None
    created_at: str
    created_by: str
    started_at: str | None
    heartbeat_at: str | None
    finished_at: str | None

    def to_json(self) -> dict[str, Any]:
        """The job as plain JSON data."""
        return asdict(self)


# -- database access --------------------------------------------------------------------


@contextlib.contextmanager
def _transaction(registry: Registry, write: bool = True) -> Iterator[Session]:
    engine = registry.engine.execution_options(**{WRITE: True}) if write else registry.engine
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def _aware(moment: datetime | None) -> datetime | None:
    """A database time as UTC-aware (SQLite gives naive UTC times back)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=now().tzinfo)


def _job(session: Session, row: BatchJobRow) -> Job:
    project = session.get(ProjectRow, row.project_id)
    environment = session.get(EnvironmentRow, row.environment_id)
    options = dict(row.options or {})
    user = {k: v for k, v in options.items() if k not in _INTERNAL}

    def text(moment: datetime | None) -> str | None:
        return None if moment is None else utc_text(moment)

    return Job(
        id=row.id,
        project=project.name if project else "?",
        environment=environment.name if environment else "?",
        model=row.component,
        version=row.version_tag,
        bundle_digest=row.bundle_digest,
        state=row.state,
        input=row.input_uri,
        output=row.output_uri,
        rejects=rejects_location(row.output_uri),
        options=user,
        attempts=int(options.get("attempts", 0)),
        rows_done=row.rows_done,
        rows_rejected=row.rows_rejected,
        result=options.get("result"),
        error=row.error,
        worker=row.worker,
        created_at=utc_text(row.created_at),
        created_by=row.created_by,
        started_at=text(row.started_at),
        heartbeat_at=text(row.heartbeat_at),
        finished_at=text(row.finished_at),
    )


def _row(session: Session, job_id: int, lock: bool = False) -> BatchJobRow:
    query = select(BatchJobRow).where(BatchJobRow.id == job_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    found = session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"batch job {job_id} does not exist")
    return found


def _object(job: Job | BatchJobRow, project: str, environment: str) -> str:
    return f"project/{project}/environment/{environment}/batch/{job.id}"


# -- what users do ------------------------------------------------------------------------


def check_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run options of a job, checked: format, input_format, id_column, outputs, chunk_rows,
    workers. Raises InvalidInput naming the first bad one."""
    checked: dict[str, Any] = {}
    for name, value in (options or {}).items():
        if value is None:
            continue
        if name not in OPTIONS:
            raise InvalidInput(f"unknown batch option '{name}' (options: {', '.join(OPTIONS)})")
        if name in ("format", "input_format") and value not in FORMATS:
            raise InvalidInput(f"option '{name}' must be one of {', '.join(FORMATS)}")
        if name == "id_column" and not isinstance(value, str):
            raise InvalidInput("option 'id_column' must be a column name")
        if name == "outputs" and not (
            isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        ):
            raise InvalidInput("option 'outputs' must be a list of node names")
        if name in ("chunk_rows", "workers") and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise InvalidInput(f"option '{name}' must be a whole number of at least 1")
        checked[name] = value
    return checked


def _check_location(kind: str, location: str) -> str:
    if not isinstance(location, str) or not location:
        raise InvalidInput(f"the {kind} location is required")
    if not is_remote(location) and not os.path.isabs(location):
        raise InvalidInput(
            f"the {kind} location '{location}' must be an absolute path or an s3:// URI "
            "(a worker does not share your working folder)"
        )
    return location


def deployed_component(registry: Any, project: str, env: str, model: str) -> Any:
    """The version of ``model`` that ``env`` runs now (a registry's or a server's answer).

    Raises NotFound listing what the environment runs.
    """
    deployed = {
        (c["name"] if isinstance(c, dict) else c.name): c
        for c in registry.list_components(project, env)
    }
    if model not in deployed:
        raise NotFound(
            f"environment '{env}' of project '{project}' does not run model '{model}' "
            f"(it runs: {listing(sorted(deployed))})"
        )
    return deployed[model]


def fetch_deployed(
    registry: Any, project: str, env: str, model: str, folder: str | os.PathLike[str]
) -> Path:
    """Copy the bundle of the version ``env`` runs into ``folder``; return its path.

    Raises NotFound; UsageError when ``registry`` is a server client that cannot send
    bundles.
    """
    component = deployed_component(registry, project, env, model)
    version = component["version_id"] if isinstance(component, dict) else component.version_id
    fetch = getattr(registry, "fetch_bundle", None)
    if fetch is None:
        raise UsageError(
            "this registry server does not send bundles; run on a host with the registry "
            "database, or pass the bundle file"
        )
    return Path(fetch(project, model, version, folder))


def submit_job(
    registry: Registry,
    project: str,
    env: str,
    model: str,
    input: str,
    output: str,
    options: Mapping[str, Any] | None = None,
) -> Job:
    """Queue a job scoring ``input`` into ``output`` with the model version ``env`` runs now.

    Locations are absolute paths (as the workers see them) or s3:// URIs. Raises
    NotFound (project, environment, or a model the environment does not run),
    InvalidInput (locations, options).
    """
    _check_location("input", input)
    _check_location("output", output)
    checked = check_options(options)
    try:
        formats(input, output, checked.get("format"), checked.get("input_format"))
    except UsageError as exc:
        raise InvalidInput(str(exc)) from None
    component = deployed_component(registry, project, env, model)
    with _transaction(registry) as session:
        proj = session.execute(select(ProjectRow).where(ProjectRow.name == project)).scalar_one()
        environment = session.execute(
            select(EnvironmentRow).where(
                EnvironmentRow.project_id == proj.id, EnvironmentRow.name == env
            )
        ).scalar_one()
        row = BatchJobRow(
            project_id=proj.id,
            environment_id=environment.id,
            component=model,
            version_tag=component.tag or str(component.version_id),
            bundle_digest=component.digest,
            state="queued",
            input_uri=input,
            output_uri=output,
            options=checked,
            rows_done=0,
            rows_rejected=0,
            created_at=now(),
            created_by=registry.actor,
        )
        session.add(row)
        session.flush()
        job = _job(session, row)
        after = {"model": model, "version": job.version, "input": input, "output": output}
        audit(session, registry.actor, "batch.submit", _object(job, project, env), None, after)
        return job


def get_job(registry: Registry, job_id: int) -> Job:
    """One job by id; NotFound when there is none."""
    with _transaction(registry, write=False) as session:
        return _job(session, _row(session, job_id))


def list_jobs(
    registry: Registry,
    project: str | None = None,
    env: str | None = None,
    state: str | None = None,
    limit: int = 50,
) -> list[Job]:
    """Jobs, newest first, optionally of one project (and environment) or in one state."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown state '{state}' (states: {', '.join(STATES)})")
    with _transaction(registry, write=False) as session:
        query = select(BatchJobRow).order_by(BatchJobRow.id.desc()).limit(max(1, limit))
        if project is not None:
            query = query.join(ProjectRow, ProjectRow.id == BatchJobRow.project_id).where(
                ProjectRow.name == project
            )
            if env is not None:
                query = query.join(
                    EnvironmentRow, EnvironmentRow.id == BatchJobRow.environment_id
                ).where(EnvironmentRow.name == env)
        if state is not None:
            query = query.where(BatchJobRow.state == state)
        return [_job(session, row) for row in session.execute(query).scalars()]


def cancel_job(registry: Registry, job_id: int) -> Job:
    """Cancel a queued or running job (a running one stops at its next heartbeat, writing
    nothing). Raises NotFound, or Conflict when the job has finished."""
    with _transaction(registry) as session:
        row = _row(session, job_id, lock=True)
        if row.state in FINISHED:
            raise Conflict(f"batch job {job_id} has already {row.state}; nothing to cancel")
        before = row.state
        row.state = "cancelled"
        row.error = f"cancelled by {registry.actor}"
        row.finished_at = now()
        session.flush()
        job = _job(session, row)
        obj = _object(job, job.project, job.environment)
        audit(session, registry.actor, "batch.cancel", obj, {"state": before}, {"state": row.state})
        return job


# -- what workers do ----------------------------------------------------------------------


def claim_job(registry: Registry, worker: str) -> Job | None:
    """Take the oldest queued job for ``worker`` (state running); None when none is queued.

    Two workers never take the same job: the row is locked and skipped by others on
    PostgreSQL; SQLite runs one writer at a time.
    """
    with _transaction(registry) as session:
        row = session.execute(
            select(BatchJobRow)
            .where(BatchJobRow.state == "queued")
            .order_by(BatchJobRow.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if row is None:
            return None
        moment = now()
        row.state = "running"
        row.worker = worker
        row.started_at = row.heartbeat_at = moment
        row.rows_done = row.rows_rejected = 0
        row.options = {**row.options, "attempts": int(row.options.get("attempts", 0)) + 1}
        session.flush()
        return _job(session, row)


def recover_jobs(registry: Registry, stale_after: float, max_attempts: int = 3) -> list[Job]:
    """Jobs left running by a dead worker (no heartbeat for ``stale_after`` seconds).

    Each is queued again to run from the start, or, after ``max_attempts`` tries, marked
    failed with the reason. Returns them as they are now.
    """
    limit = now() - timedelta(seconds=stale_after)
    recovered = []
    with _transaction(registry) as session:
        rows = session.execute(
            select(BatchJobRow)
            .where(BatchJobRow.state == "running")
            .with_for_update(skip_locked=True)
        ).scalars()
        for row in rows:
            beat = _aware(row.heartbeat_at or row.started_at)
            if beat is not None and beat >= limit:
                continue
            attempts = int(row.options.get("attempts", 0))
            lost = (
                f"worker {row.worker} stopped during attempt {attempts} "
                f"(no heartbeat since {utc_text(beat) if beat else 'it started'})"
            )
            if attempts >= max_attempts:
                row.state, row.finished_at = "failed", now()
                row.error = f"{lost}; gave up after {attempts} attempts"
            else:
                row.state, row.started_at, row.heartbeat_at = "queued", None, None
                row.error = f"{lost}; queued again to run from the start"
            row.worker = None
            session.flush()
            recovered.append(_job(session, row))
    return recovered


def _beat(registry: Registry, job: Job, worker: str, rows: int, rejected: int) -> bool:
    """Record progress and a heartbeat; False when the job is no longer this worker's to run
    (cancelled, or given to another worker after this one was presumed dead)."""
    with _transaction(registry) as session:
        done = session.execute(
            update(BatchJobRow)
            .where(
                BatchJobRow.id == job.id,
                BatchJobRow.worker == worker,
                BatchJobRow.state == "running",
            )
            .values(rows_done=rows, rows_rejected=rejected, heartbeat_at=now())
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


def _finish(
    registry: Registry,
    job: Job,
    worker: str,
    state: str,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    with _transaction(registry) as session:
        row = _row(session, job.id, lock=True)
        if row.worker != worker or row.state != "running":
            return  # cancelled, or recovered by another worker meanwhile: theirs to say
        row.state, row.finished_at = state, now()
        if error is not None:  # else keep the note of an earlier interrupted attempt
            row.error = error
        if result is not None:
            row.options = {**row.options, "result": result}
            row.rows_done, row.rows_rejected = result["rows"], result["rejected"]


class _Heartbeat:
    """Writes a running job's progress every ``every`` seconds from a thread."""

    def __init__(self, registry: Registry, job: Job, worker: str, every: float) -> None:
        self.registry, self.job, self.worker, self.every = registry, job, worker, every
        self.rows = self.rejected = 0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not _beat(self.registry, self.job, self.worker, self.rows, self.rejected):
                    self.lost.set()
                    return
            except Exception:  # noqa: BLE001 - a database hiccup: try again next beat
                continue

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_job(registry: Registry, job: Job, worker: str, heartbeat_every: float = 5.0) -> Job:
    """Run a claimed job with the local engine; record how it ended. Returns the job as stored."""
    try:
        with tempfile.TemporaryDirectory(prefix="shipyard-job-") as folder:
            if job.bundle_digest is None:
                raise UsageError(f"batch job {job.id} names no bundle")
            bundle = registry.store.fetch(job.bundle_digest, Path(folder) / "bundle.tar.gz")
            with _Heartbeat(registry, job, worker, heartbeat_every) as beat:

                def progress(p: Any) -> None:
                    beat.rows, beat.rejected = p.rows, p.rejected

                result = run_local(
                    bundle,
                    job.input,
                    job.output,
                    **job.options,
                    on_progress=progress,
                    should_stop=beat.lost.is_set,
                )
        _finish(registry, job, worker, "succeeded", result=result.to_json())
    except Stopped:
        pass  # cancelled (or taken over): the state already says so
    except Exception as exc:  # noqa: BLE001 - any failure is the job's outcome, with its reason
        _finish(registry, job, worker, "failed", error=f"{type(exc).__name__}: {exc}")
    return get_job(registry, job.id)


class Jobs:
    """The job functions over one registry, as methods (the seam the CLI shares with
    ``BatchClient``, which calls a registry server instead)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def submit(
        self,
        project: str,
        env: str,
        model: str,
        input: str,
        output: str,
        options: Mapping[str, Any] | None = None,
    ) -> Job:
        """``submit_job``."""
        return submit_job(self.registry, project, env, model, input, output, options)

    def get(self, job_id: int) -> Job:
        """``get_job``."""
        return get_job(self.registry, job_id)

    def list(
        self,
        project: str | None = None,
        env: str | None = None,
        state: str | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """``list_jobs``."""
        return list_jobs(self.registry, project, env, state, limit)

    def cancel(self, job_id: int) -> Job:
        """``cancel_job``."""
        return cancel_job(self.registry, job_id)

    def close(self) -> None:
        """Close the registry's connections."""
        self.registry.close()


class Worker:
    """Runs queued jobs one at a time, in this process; ``start`` runs it in a thread.

    Each poll first recovers jobs whose worker died (see ``recover_jobs``), then claims
    and runs the oldest queued job. ``name`` identifies the worker in the job rows.
    """

    def __init__(
        self,
        registry: Registry,
        name: str | None = None,
        *,
        poll_every: float = 2.0,
        heartbeat_every: float = 5.0,
        stale_after: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        if stale_after <= heartbeat_every:
            raise UsageError("stale_after must be longer than heartbeat_every")
        self.registry = registry
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll_every = poll_every
        self.heartbeat_every = heartbeat_every
        self.stale_after = stale_after
        self.max_attempts = max_attempts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Job | None:
        """Recover dead workers' jobs, then run one queued job; None when none was queued."""
        recover_jobs(self.registry, self.stale_after, self.max_attempts)
        job = claim_job(self.registry, self.name)
        if job is None:
            return None
        return run_job(self.registry, job, self.name, self.heartbeat_every)

    def run(self, until_idle: bool = False) -> None:
        """Run jobs until ``stop`` (or, with ``until_idle``, until none is queued)."""
        while not self._stop.is_set():
            if self.run_once() is None:
                if until_idle:
                    return
                self._stop.wait(self.poll_every)

    def start(self) -> Worker:
        """Run in a daemon thread (e.g. inside the registry server); returns self."""
        self._thread = threading.Thread(target=self.run, name=f"batch-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current job (a job cut short by exit is recovered later)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def wait_for(registry: Registry, job_id: int, timeout: float, every: float = 0.2) -> Job:
    """The job once it has finished (or as it is after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    job = get_job(registry, job_id)
    while job.state not in FINISHED and time.monotonic() < deadline:
        time.sleep(every)
        job = get_job(registry, job_id)
    return job
