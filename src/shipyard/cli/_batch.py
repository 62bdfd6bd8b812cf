"""``shipyard batch``: score files with a bundle (locally or on Spark) and manage batch jobs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..errors import UsageError
from ._backend import JSON, PROJECT_ENV, open_backend
from ._output import console, emit, fields, listing, print_json

if TYPE_CHECKING:
    from ..batch import BatchOptions, BatchResult

app = typer.Typer(
    help="Score CSV, Parquet and JSON Lines files with a bundle, and run batch jobs.",
    no_args_is_help=True,
)

JOB_COLUMNS = (
    *("id", "project", "environment", "model", "version", "state"),
    *("rows_done", "rows_rejected", "output", "error"),
)


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _options(
    format: str | None,
    input_format: str | None,
    id_column: str | None,
    outputs: str | None,
    chunk_rows: int | None,
    workers: int | None,
) -> dict[str, Any]:
    found = {
        "format": format,
        "input_format": input_format,
        "id_column": id_column,
        "outputs": _names(outputs),
        "chunk_rows": chunk_rows,
        "workers": workers,
    }
    return {k: v for k, v in found.items() if v is not None}


FORMAT = typer.Option(
    None, "--format", help="Output format: csv, parquet or jsonl (default: the suffix)."
)
INPUT_FORMAT = typer.Option(None, "--input-format", help="Input format (default: the suffix).")
ID_COLUMN = typer.Option(
    None, "--id-column", help="Input column copied to the output and rejects (default: _row)."
)
OUTPUTS = typer.Option(None, "--outputs", help="Comma-separated nodes to write (default: outputs).")
CHUNK_ROWS = typer.Option(None, "--chunk-rows", help="Rows scored at a time (default 50,000).")
WORKERS = typer.Option(None, "--workers", help="Processes scoring chunks (default 1).")


@app.command("run")
def run(
    bundle: Path | None = typer.Argument(
        None, help="The bundle (NAME-VERSION.tar.gz); or name it with --project/--env/--model."
    ),
    input: str = typer.Option(..., "--input", "-i", help="Input file: a path or s3:// URI."),
    output: str = typer.Option(..., "--output", "-o", help="Output file (rejects go beside it)."),
    project: str | None = typer.Option(
        None, "--project", "-p", envvar=PROJECT_ENV, help="Score with the model this project…"
    ),
    env: str | None = typer.Option(None, "--env", "-e", help="…runs in this environment…"),
    model: str | None = typer.Option(None, "--model", "-m", help="…under this name."),
    format: str | None = FORMAT,
    input_format: str | None = INPUT_FORMAT,
    id_column: str | None = ID_COLUMN,
    outputs: str | None = OUTPUTS,
    chunk_rows: int | None = CHUNK_ROWS,
    workers: int | None = WORKERS,
    engine: str = typer.Option("local", "--engine", help="local, or spark."),
    master: str = typer.Option(
        "local[*]", "--master", help="Spark master: local[*], spark://host:7077, yarn."
    ),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="Ed25519 public key to check the bundle's signature."
    ),
    allow_pickle: bool = typer.Option(
        False,
        "--allow-pickle",
        help="With a bundle file: let plain pickles load (loading one runs its code).",
    ),
    as_json: bool = JSON,
) -> None:
    """Score a file: output and NAME.rejects.jsonl appear only when the run is complete."""
    from ..batch import BatchOptions

    if engine not in ("local", "spark"):
        raise UsageError(f"unknown engine '{engine}' (engines: local, spark)")
    if engine == "spark" and (chunk_rows is not None or workers is not None):
        raise UsageError("--chunk-rows and --workers are for the local engine")
    if bundle is not None and (env is not None or model is not None):
        raise UsageError("give a bundle file or --project/--env/--model, not both")
    if bundle is None and (project is None or env is None or model is None):
        raise UsageError("give a bundle file, or --project, --env and --model")
    if allow_pickle and bundle is None:
        raise UsageError(
            "--allow-pickle is for a bundle file; a deployed version loads pickles where "
            "its environment's allow_pickle setting allows them"
        )
    options = BatchOptions(
        **_options(format, input_format, id_column, outputs, chunk_rows, workers),
        master=master,
        public_key=public_key,
        allow_unsafe=allow_pickle,
    )
    with tempfile.TemporaryDirectory(prefix="shipyard-batch-") as folder:
        if bundle is None:
            from ..batch import fetch_deployed
            from ._backend import open_backend

            assert project is not None and env is not None and model is not None
            with open_backend() as backend:
                bundle, options = fetch_deployed(backend, project, env, model, folder, options)
        result = _score(bundle, input, output, options, engine, quiet=as_json)
    if as_json:
        print_json(result.to_json())
    else:
        console.print(result.summary(), soft_wrap=True)


def _score(
    bundle: Path, input: str, output: str, options: BatchOptions, engine: str, quiet: bool
) -> BatchResult:
    """Score with ``engine``; the local engine draws a progress bar unless ``quiet``."""
    if engine == "spark":
        from ..batch import run_spark

        return run_spark(bundle, input, output, options)
    from ..batch import run_local

    if quiet:
        return run_local(bundle, input, output, options)
    from ._progress import progress_bar

    with progress_bar(console, f"scoring {Path(input).name}") as update:
        return run_local(bundle, input, output, options, on_progress=update)


@app.command("submit")
def submit(
    project: str = typer.Option(..., "--project", "-p", envvar=PROJECT_ENV, help="Project."),
    env: str = typer.Option(..., "--env", "-e", help="Environment whose model version scores."),
    model: str = typer.Option(..., "--model", "-m", help="Model name."),
    input: str = typer.Option(
        ..., "--input", "-i", help="Input under the batch roots (relative: under the first)."
    ),
    output: str = typer.Option(
        ..., "--output", "-o", help="Output under the batch roots (relative: under the first)."
    ),
    format: str | None = FORMAT,
    input_format: str | None = INPUT_FORMAT,
    id_column: str | None = ID_COLUMN,
    outputs: str | None = OUTPUTS,
    chunk_rows: int | None = CHUNK_ROWS,
    workers: int | None = WORKERS,
    as_json: bool = JSON,
) -> None:
    """Queue a batch job for the workers (see `shipyard batch worker`).

    Locations are paths under the batch roots ($SHIPYARD_BATCH_ROOTS of the registry and
    the workers) or s3:// URIs under their prefixes; a relative path is under the first root.
    """
    options = _options(format, input_format, id_column, outputs, chunk_rows, workers)
    with open_backend() as backend:
        job = backend.submit_batch_job(project, env, model, input, output, options)
    emit(job, as_json, lambda j: f"queued batch job {j['id']} ({j['model']} {j['version']})")


@app.command("status")
def status(job_id: int = typer.Argument(..., help="Job id."), as_json: bool = JSON) -> None:
    """A job's state, progress and result."""
    with open_backend() as backend:
        job = backend.get_batch_job(job_id)
    columns = (*JOB_COLUMNS, "rejects", "created_at", "finished_at")
    emit(job, as_json, lambda j: fields(j, columns))


@app.command("list")
def list_(
    project: str | None = typer.Option(None, "--project", "-p", help="Only this project's jobs."),
    env: str | None = typer.Option(None, "--env", "-e", help="Only this environment's jobs."),
    state: str | None = typer.Option(None, "--state", help="queued, running, succeeded, …"),
    limit: int = typer.Option(50, "--limit", help="At most this many, newest first."),
    as_json: bool = JSON,
) -> None:
    """Batch jobs, newest first."""
    with open_backend() as backend:
        found = backend.list_batch_jobs(project, env, state, limit)
    emit(found, as_json, listing(*JOB_COLUMNS, title="batch jobs"))


@app.command("cancel")
def cancel(job_id: int = typer.Argument(..., help="Job id."), as_json: bool = JSON) -> None:
    """Cancel a queued or running job (nothing is written under its output name)."""
    with open_backend() as backend:
        job = backend.cancel_batch_job(job_id)
    emit(job, as_json, lambda j: f"batch job {j['id']}: {j['state']}")


@app.command("worker")
def worker(
    once: bool = typer.Option(False, "--once", help="Exit when no job is queued."),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between looks for queued jobs."),
    heartbeat: float = typer.Option(5.0, "--heartbeat", help="Seconds between heartbeats."),
    stale_after: float = typer.Option(
        60.0, "--stale-after", help="A running job without a heartbeat this long is recovered."
    ),
    max_attempts: int = typer.Option(3, "--max-attempts", help="Tries before a job fails."),
) -> None:
    """Run queued batch jobs, one at a time, until stopped ($SHIPYARD_URL or the database).

    Jobs read and write only under this host's batch roots ($SHIPYARD_BATCH_ROOTS, default
    $SHIPYARD_HOME/batch); a job outside them fails with the reason.
    """
    from ..batch import Worker

    with open_backend() as backend:
        runner = Worker(
            backend,
            poll_every=poll,
            heartbeat_every=heartbeat,
            stale_after=stale_after,
            max_attempts=max_attempts,
        )
        console.print(
            f"batch worker {runner.name} on {backend!r}, batch roots: {runner.roots}",
            soft_wrap=True,
        )
        runner.run(until_idle=once)
