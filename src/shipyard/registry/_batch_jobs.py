"""Batch jobs: files queued for scoring in the registry's database, run by workers.

A job scores one file with the model version an environment ran when the job was
submitted (its bundle's digest is stored with the job). States::

    queued -> running -> succeeded | failed
       \\-------------\\-> cancelled

A worker claims the oldest queued job atomically (``SELECT … FOR UPDATE SKIP LOCKED`` on
PostgreSQL; SQLite writers are serialized by ``BEGIN IMMEDIATE``), runs it, and records
its progress and a heartbeat every few seconds. A job whose heartbeat stops (its worker
died: a crash, a restart, a killed container) is found by the next worker that polls:
it is queued again and run from the start (the output only appears when complete, so
nothing half-written is ever seen), or marked failed with the reason once it has been
tried ``max_attempts`` times. Submitting and cancelling are audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..errors import Conflict, InvalidInput, NotFound
from . import _lookup, _state
from ._audit import utc_text
from ._batch_rules import check_files, rejects_location
from ._core import RegistryCore
from ._db import MAX_ID, storable_id
from ._lookup import listing, now
from ._rows import BatchJobRow, EnvironmentRow, ProjectRow
from ._types import BatchJob

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
_INTERNAL = ("attempts", "result")  # kept in the options document beside the user's


def _aware(moment: datetime | None) -> datetime | None:
    """A database time as UTC-aware (SQLite gives naive UTC times back)."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=now().tzinfo)


def _text(moment: datetime | None) -> str | None:
    return None if moment is None else utc_text(moment)


def _job(session: Session, row: BatchJobRow) -> BatchJob:
    project = session.get(ProjectRow, row.project_id)
    environment = session.get(EnvironmentRow, row.environment_id)
    options = dict(row.options or {})
    return BatchJob(
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
        options={k: v for k, v in options.items() if k not in _INTERNAL},
        attempts=int(options.get("attempts", 0)),
        rows_done=row.rows_done,
        rows_rejected=row.rows_rejected,
        result=options.get("result"),
        error=row.error,
        worker=row.worker,
        created_at=utc_text(row.created_at),
        created_by=row.created_by,
        started_at=_text(row.started_at),
        heartbeat_at=_text(row.heartbeat_at),
        finished_at=_text(row.finished_at),
    )


def _row(session: Session, job_id: int, lock: bool = False) -> BatchJobRow:
    found = None
    if storable_id(job_id):  # a larger id names no job (and PostgreSQL refuses it)
        query = select(BatchJobRow).where(BatchJobRow.id == job_id)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        found = session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"batch job {job_id} does not exist")
    return found


def _object(job: BatchJob) -> str:
    return f"project/{job.project}/environment/{job.environment}/batch/{job.id}"


class BatchJobsMixin(RegistryCore):
    """Batch jobs: submitted by people and CI, claimed and run by workers."""

    # -- what people do ---------------------------------------------------------------

    def submit_batch_job(
        self,
        project: str,
        env: str,
        model: str,
        input: str,
        output: str,
        options: dict[str, Any] | None = None,
    ) -> BatchJob:
        """Queue a job scoring ``input`` into ``output`` with the model version ``env`` runs now.

        Locations are paths under the batch roots (``SHIPYARD_BATCH_ROOTS``; a relative
        one goes under the first, on each worker) or s3:// URIs under their prefixes;
        ``options`` are those of ``shipyard batch run``: format, input_format, id_column,
        outputs (a list), chunk_rows, workers. Raises NotFound (project, environment, or a
        model the environment does not run), PermissionDenied (a location outside the
        roots), InvalidInput (locations, options).
        """
        checked = check_files(input, output, options)
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            _, state = _state.read_revision(session, environment)
            models = sorted(n for n, e in state.entries.items() if e.component.kind == "model")
            if model not in models:
                raise NotFound(
                    f"environment '{env}' of project '{project}' does not run model '{model}' "
                    f"(it runs: {listing(models)})"
                )
            deployed = state.entries[model].deployed()
            row = BatchJobRow(
                project_id=proj.id,
                environment_id=environment.id,
                component=model,
                version_tag=deployed.tag or str(deployed.version_id),
                bundle_digest=deployed.digest,
                state="queued",
                input_uri=input,
                output_uri=output,
                options=checked,
                rows_done=0,
                rows_rejected=0,
                created_at=now(),
                created_by=self.actor,
            )
            session.add(row)
            session.flush()
            job = _job(session, row)
            after = {"model": model, "version": job.version, "input": input, "output": output}
            self._record(session, "batch.submit", _object(job), None, after)
            return job

    def get_batch_job(
        self,
        job_id: int,
        project: str | None = None,
        env: str | None = None,
        model: str | None = None,
    ) -> BatchJob:
        """One batch job by id.

        Raises NotFound when there is none, or when ``project``, ``env`` or ``model`` is
        given and the job is not theirs.
        """
        with self._read() as session:
            job = _job(session, _row(session, job_id))
        expected = {"project": project, "environment": env, "model": model}
        if any(value is not None and getattr(job, k) != value for k, value in expected.items()):
            scope = ", ".join(f"{k} '{v}'" for k, v in expected.items() if v is not None)
            raise NotFound(f"batch job {job_id} is not a job of {scope}")
        return job

    def list_batch_jobs(
        self,
        project: str | None = None,
        env: str | None = None,
        state: str | None = None,
        limit: int = 50,
    ) -> list[BatchJob]:
        """Batch jobs, newest first, optionally of one project (and environment) or in one state.

        Raises InvalidInput for an unknown state.
        """
        if state is not None and state not in JOB_STATES:
            raise InvalidInput(f"unknown state '{state}' (states: {', '.join(JOB_STATES)})")
        with self._read() as session:
            newest = max(1, min(limit, MAX_ID))  # no table holds more rows than ids
            query = select(BatchJobRow).order_by(BatchJobRow.id.desc()).limit(newest)
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

    def cancel_batch_job(self, job_id: int) -> BatchJob:
        """Cancel a queued or running batch job.

        A running one stops at its next heartbeat, writing nothing under its output name.
        Raises NotFound, or Conflict when the job has finished.
        """
        with self._write() as session:
            row = _row(session, job_id, lock=True)
            if row.state in FINISHED:
                raise Conflict(f"batch job {job_id} has already {row.state}; nothing to cancel")
            before = row.state
            row.state = "cancelled"
            row.error = f"cancelled by {self.actor}"
            row.finished_at = now()
            session.flush()
            job = _job(session, row)
            self._record(
                session, "batch.cancel", _object(job), {"state": before}, {"state": row.state}
            )
            return job

    # -- what workers do --------------------------------------------------------------

    def claim_batch_job(self, worker: str) -> BatchJob | None:
        """Take the oldest queued batch job for ``worker`` (it becomes running); None if none.

        Two workers never take the same job: the row is locked and skipped by others on
        PostgreSQL; SQLite runs one writer at a time.
        """
        if not worker:
            raise InvalidInput("a worker needs a name")
        with self._write() as session:
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

    def recover_batch_jobs(self, stale_after: float, max_attempts: int = 3) -> list[BatchJob]:
        """Batch jobs left running by a dead worker (no heartbeat for ``stale_after`` seconds).

        Each is queued again to run from the start, or, after ``max_attempts`` tries,
        marked failed with the reason. Returns them as they are now.
        """
        if stale_after <= 0 or max_attempts < 1:
            raise InvalidInput("stale_after must be positive and max_attempts at least 1")
        try:
            limit = now() - timedelta(seconds=stale_after)
        except OverflowError:
            too_long = f"stale_after {stale_after} seconds reaches before any date"
            raise InvalidInput(too_long) from None
        recovered = []
        with self._write() as session:
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

    def heartbeat_batch_job(
        self, job_id: int, worker: str, rows_done: int, rows_rejected: int
    ) -> bool:
        """Record a running job's progress and heartbeat.

        False when the job is no longer ``worker``'s to run (cancelled, or given to
        another worker after this one was presumed dead): the worker should stop.
        """
        if not storable_id(job_id):
            return False  # no such job, so none of this worker's
        with self._write() as session:
            done = session.execute(
                update(BatchJobRow)
                .where(
                    BatchJobRow.id == job_id,
                    BatchJobRow.worker == worker,
                    BatchJobRow.state == "running",
                )
                .values(rows_done=rows_done, rows_rejected=rows_rejected, heartbeat_at=now())
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def finish_batch_job(
        self,
        job_id: int,
        worker: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> BatchJob:
        """Record how ``worker``'s run of a job ended: succeeded with ``result``, or failed.

        Give exactly one of ``result`` (the run's summary: ``rows``, ``rejected``, …) and
        ``error`` (why it failed). A job that is no longer the worker's (cancelled, or
        recovered by another worker meanwhile) is left as it is. Returns the job as
        stored. Raises NotFound, InvalidInput.
        """
        if (result is None) == (error is None):
            raise InvalidInput("finish a batch job with a result or with an error, not both")
        if result is not None and not all(
            isinstance(result.get(k), int) for k in ("rows", "rejected")
        ):
            raise InvalidInput("a batch job's result counts its 'rows' and 'rejected' rows")
        with self._write() as session:
            row = _row(session, job_id, lock=True)
            if row.worker == worker and row.state == "running":
                row.finished_at = now()
                if result is not None:
                    row.state = "succeeded"
                    row.options = {**row.options, "result": result}
                    row.rows_done, row.rows_rejected = result["rows"], result["rejected"]
                else:
                    row.state, row.error = "failed", error
                session.flush()
            return _job(session, row)
