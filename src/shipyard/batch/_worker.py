"""``Worker``: runs the registry's queued batch jobs with the local engine, one at a time.

The queue is the registry's (``submit_batch_job``, ``claim_batch_job``, … in
``shipyard.registry``); a worker only calls those operations, so it runs against the
embedded ``Registry`` or a registry server's ``RegistryClient`` alike. While a job runs,
a thread records its progress and a heartbeat every few seconds; when the heartbeat is
refused (the job was cancelled, or given to another worker after this one was presumed
dead) the run stops and writes nothing. A job reads and writes only under the worker's
batch roots (``$SHIPYARD_BATCH_ROOTS``), checked again here whatever the registry accepted.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from ..errors import BatchStopped, UsageError
from ..registry import BatchJob, Roots, batch_roots, rejects_location
from ._deployed import check_loadable
from ._local import Progress, run_local
from ._options import BatchOptions

FINISHED = ("succeeded", "failed", "cancelled")


class JobQueue(Protocol):
    """The registry operations a worker calls: ``Registry`` and ``RegistryClient`` have them.

    A client answers with the jobs' JSON data; the worker reads either form.
    """

    def get_batch_job(self, job_id: int) -> Any: ...

    def claim_batch_job(self, worker: str) -> Any: ...

    def recover_batch_jobs(self, stale_after: float, max_attempts: int = 3) -> Any: ...

    def heartbeat_batch_job(
        self, job_id: int, worker: str, rows_done: int, rows_rejected: int
    ) -> Any: ...

    def finish_batch_job(
        self,
        job_id: int,
        worker: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Any: ...

    def fetch_bundle(
        self, project: str, model: str, version: str | int | None, folder: str | os.PathLike[str]
    ) -> Path: ...


def as_job(found: BatchJob | dict[str, Any]) -> BatchJob:
    """A job as the registry returns it, from either a ``Registry`` or a server's JSON data."""
    return found if isinstance(found, BatchJob) else BatchJob(**found)


def get_job(registry: JobQueue, job_id: int) -> BatchJob:
    """``registry.get_batch_job`` as a ``BatchJob``; NotFound when there is none."""
    return as_job(registry.get_batch_job(job_id))


def _bundle(
    registry: JobQueue, job: BatchJob, folder: str, options: BatchOptions
) -> tuple[Path, BatchOptions]:
    """The bundle the job scores with, copied into ``folder`` and checked against its digest."""
    if job.bundle_digest is None or job.version is None:
        raise UsageError(f"batch job {job.id} names no bundle")
    bundle = Path(registry.fetch_bundle(job.project, job.model, job.version, folder))
    with bundle.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    if digest != job.bundle_digest:
        raise UsageError(
            f"batch job {job.id}: the registry sent a bundle whose sha256 is not the one "
            "the job was submitted with"
        )
    trusted = check_loadable(
        registry, job.project, job.environment, job.model, str(job.version), bundle, options
    )
    checked = {**(trusted.provenance or {}), "digest": digest}  # the run need not hash it again
    return bundle, replace(trusted, provenance=checked)


class _Heartbeat:
    """Records a running job's progress every ``every`` seconds from a thread."""

    def __init__(self, registry: JobQueue, job: BatchJob, worker: str, every: float) -> None:
        self.registry, self.job, self.worker, self.every = registry, job, worker, every
        self.rows = self.rejected = 0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                mine = self.registry.heartbeat_batch_job(
                    self.job.id, self.worker, self.rows, self.rejected
                )
            except Exception:  # noqa: BLE001 - a database or network hiccup: try next beat
                continue
            if not mine:
                self.lost.set()
                return

    def progress(self, progress: Progress) -> None:
        """The run's ``on_progress``: the next heartbeat sends these counts."""
        self.rows, self.rejected = progress.rows, progress.rejected

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def job_locations(job: BatchJob, roots: Roots) -> tuple[str, str]:
    """``(input, output)`` of ``job`` on this host, under ``roots``, resolved just before use.

    Relative locations go under the first root; symlinks and ``..`` are resolved, so a
    link inside a root cannot lead out. Raises PermissionDenied naming the location and
    the roots (the rejects file beside the output is checked too).
    """
    source = roots.locate(job.input, "the input location")
    target = roots.locate(job.output, "the output location")
    roots.locate(rejects_location(target), "the rejects location")
    return source, target


def run_job(
    registry: JobQueue,
    job: BatchJob,
    worker: str,
    heartbeat_every: float = 5.0,
    roots: Roots | None = None,
) -> BatchJob:
    """Run a job ``worker`` claimed with the local engine; record how it ended.

    Its files must lie under ``roots`` (default: this host's, ``batch_roots()``), checked
    before anything is read. Returns the job as stored afterwards. A failure of the run (a
    location outside the roots included) is the job's outcome (state failed, with the
    reason), not an exception; a cancelled or taken-over job is left as the registry says.
    """
    try:
        source, target = job_locations(job, roots or batch_roots())
        with tempfile.TemporaryDirectory(prefix="shipyard-job-") as folder:
            bundle, options = _bundle(registry, job, folder, BatchOptions(**job.options))
            with _Heartbeat(registry, job, worker, heartbeat_every) as beat:
                result = run_local(
                    bundle,
                    source,
                    target,
                    options,
                    on_progress=beat.progress,
                    should_stop=beat.lost.is_set,
                )
        return as_job(registry.finish_batch_job(job.id, worker, result=result.to_json()))
    except BatchStopped:
        pass  # cancelled (or taken over): the state already says so
    except Exception as exc:  # noqa: BLE001 - any failure is the job's outcome, with its reason
        error = f"{type(exc).__name__}: {exc}"
        return as_job(registry.finish_batch_job(job.id, worker, error=error))
    return get_job(registry, job.id)


class Worker:
    """Runs queued batch jobs one at a time, in this process; ``start`` runs it in a thread.

    ``registry``: a ``Registry``, or a ``RegistryClient`` whose token has the deployer role.
    Each poll first recovers jobs whose worker died (``recover_batch_jobs``), then claims
    and runs the oldest queued job. ``name`` identifies the worker in the job rows.
    ``roots``: where jobs may read and write (default: ``batch_roots()``, this host's
    $SHIPYARD_BATCH_ROOTS); a job outside them fails. Raises UsageError when
    ``stale_after`` is not longer than ``heartbeat_every`` or the roots are malformed.
    """

    def __init__(
        self,
        registry: JobQueue,
        name: str | None = None,
        *,
        poll_every: float = 2.0,
        heartbeat_every: float = 5.0,
        stale_after: float = 60.0,
        max_attempts: int = 3,
        roots: Roots | None = None,
    ) -> None:
        if stale_after <= heartbeat_every:
            raise UsageError("stale_after must be longer than heartbeat_every")
        self.registry = registry
        self.roots = roots or batch_roots()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll_every = poll_every
        self.heartbeat_every = heartbeat_every
        self.stale_after = stale_after
        self.max_attempts = max_attempts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> BatchJob | None:
        """Recover dead workers' jobs, then run one queued job; None when none was queued."""
        self.registry.recover_batch_jobs(self.stale_after, self.max_attempts)
        claimed = self.registry.claim_batch_job(self.name)
        if claimed is None:
            return None
        job = as_job(claimed)
        return run_job(self.registry, job, self.name, self.heartbeat_every, self.roots)

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


def wait_for(registry: JobQueue, job_id: int, timeout: float, every: float = 0.2) -> BatchJob:
    """The job once it has finished (or as it is after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    job = get_job(registry, job_id)
    while job.state not in FINISHED and time.monotonic() < deadline:
        time.sleep(every)
        job = get_job(registry, job_id)
    return job
