"""``shipyard ci``: render the CI/CD workflows, and the steps of them that are ours.

``render`` writes the files; ``candidates``, ``tag`` and ``smoke`` are what the rendered
jobs run besides the plain registry commands (see docs/ci.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._backend import ENV, JSON, PROJECT, open_backend
from ._output import emit, listing

app = typer.Typer(
    help="CI/CD: workflows taking a pull request through a challenger to production.",
    no_args_is_help=True,
)


@app.command("render")
def render(
    provider: str = typer.Option(..., "--provider", help="github or gitlab."),
    output: Path = typer.Option(
        Path("."), "--output", "-o", help="The repository's root (default: here)."
    ),
    project: str = PROJECT,
    environments: str = typer.Option(
        "integration,uat,production",
        "--environments",
        help="The promotion chain, first to last: challengers come from the first, the "
        "last waits for approval.",
    ),
    main_branch: str = typer.Option("main", "--main-branch", help="The branch merges go to."),
    bundle_command: str = typer.Option(
        "make bundle",
        "--bundle-command",
        help="The repository's export step: writes NAME-VERSION.tar.gz into $SHIPYARD_BUNDLE_DIR.",
    ),
    bundle_dir: str = typer.Option("dist/bundles", "--bundle-dir", help="Where bundles land."),
    no_bundles: bool = typer.Option(
        False, "--no-bundles", help="The repository builds no model bundle (an app's own)."
    ),
    app_dir: str | None = typer.Option(
        None,
        "--app",
        help="The repository's app folder (its shipyard-app.toml): registered with "
        "shipyard app register and deployed to the challenger beside the bundles.",
    ),
    smoke_command: str | None = typer.Option(
        None,
        "--smoke-command",
        help="Your smoke test, run against the served challenger ($SHIPYARD_SMOKE_URL, "
        "$SHIPYARD_SMOKE_API_KEY); default: each model's example input.",
    ),
    install: str | None = typer.Option(
        None, "--install", help="How a job installs shipyard (default: pip install shipyard==ours)."
    ),
    python: str = typer.Option("3.11", "--python", help="The jobs' Python version."),
    force: bool = typer.Option(False, "--force", help="Replace files that exist."),
    as_json: bool = JSON,
) -> None:
    """Write the workflows: challenger per pull request, merge through the chain, approval
    before the last environment, challenger deleted when the pull request closes."""
    from ..ci import CIOptions, render_ci

    options = CIOptions(
        provider=provider,
        project=project,
        environments=tuple(e.strip() for e in environments.split(",") if e.strip()),
        main_branch=main_branch,
        bundle_command=None if no_bundles else bundle_command,
        bundle_dir=bundle_dir,
        app_dir=app_dir,
        smoke_command=smoke_command,
        python_version=python,
        **({"install_command": install} if install else {}),
    )
    written = render_ci(options, output, force)
    emit(
        {"provider": provider, "files": [str(p) for p in written]},
        as_json,
        lambda d: "\n".join(f"wrote {f}" for f in d["files"]),
    )


@app.command("candidates")
def candidates(
    folder: Path = typer.Argument(..., help="The folder the bundle step wrote bundles into."),
    env: str = ENV,
    project: str = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Register every bundle in FOLDER as a candidate and deploy it into the environment."""
    from ..ci import register_candidates

    with open_backend() as backend:
        rows = register_candidates(backend, project, env, folder)
    emit(rows, as_json, lambda r: "\n".join(_candidate_line(row, env) for row in r))


@app.command("tag")
def tag(env: str = ENV, project: str = PROJECT, as_json: bool = JSON) -> None:
    """Tag every candidate the environment holds as its model's next version (vN)."""
    from ..ci import tag_candidates

    with open_backend() as backend:
        tagged = tag_candidates(backend, project, env)
    emit(
        tagged,
        as_json,
        lambda rows: (
            "\n".join(f"tagged {r['model']} {r['version_id']} as {r['tag']}" for r in rows)
            or f"no candidates in {env}: nothing to tag"
        ),
    )


@app.command("smoke")
def smoke(
    env: str = ENV,
    project: str = PROJECT,
    command: str | None = typer.Option(
        None,
        "--command",
        help="Run this against the server instead ($SHIPYARD_SMOKE_URL, $SHIPYARD_SMOKE_API_KEY).",
    ),
    timeout: float = typer.Option(
        180.0, "--timeout", help="Seconds for the environment to be served and answer."
    ),
    as_json: bool = JSON,
) -> None:
    """Serve the environment on loopback and check each model answers its example input."""
    from ..ci import SmokeOptions, smoke

    with open_backend() as backend:
        result = smoke(backend, SmokeOptions(project, env, command, timeout))
    emit(result, as_json, _smoke_view)


def _candidate_line(row: dict[str, Any], env: str) -> str:
    label = row["tag"] or f"candidate {row['version_id']}"
    return (
        f"{row['bundle']}: {row['model']} {label} (bundle {row['bundle_version']}) "
        f"in {env}, revision {row['revision']}"
    )


def _smoke_view(result: dict[str, Any]) -> Any:
    where = f"{result['project']}/{result['environment']} revision {result['revision']}"
    if "command" in result:
        return f"smoke test passed: {result['command']['command']} against {where}"
    rows = listing("model", "version", "status", "ms", title=f"smoke test passed: {where}")
    return rows(result["models"])
