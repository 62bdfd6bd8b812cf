"""``shipyard app templates`` and ``shipyard app create``: start an app from a template
(``_main`` adds them to ``_apps``' ``shipyard app`` group)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._backend import JSON, PROJECT
from ._output import emit


def list_templates(as_json: bool = JSON) -> None:
    """List the templates app create starts from."""
    from ..app_templates import templates

    rows = [{"name": t.name, "description": t.description} for t in templates()]
    width = max(len(r["name"]) for r in rows)
    emit(rows, as_json, lambda r: "\n".join(f"{x['name']:<{width}}  {x['description']}" for x in r))


def create(
    name: str = typer.Argument(..., help="The app's name (its component in the registry)."),
    template: str = typer.Option(
        "web", "--template", "-t", help="web, batch or blank (shipyard app templates)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="The app's folder (default: ./NAME); must be new or empty."
    ),
    models: list[str] = typer.Option(
        [],
        "--model",
        "-m",
        help="A model the app calls by name (repeat for more; the page uses the first).",
    ),
    project: str = PROJECT,
    environments: str = typer.Option(
        "integration,uat,production",
        "--environments",
        help="The promotion chain the CI workflows take, first to last.",
    ),
    main_branch: str = typer.Option("main", "--main-branch", help="The branch merges go to."),
    as_json: bool = JSON,
) -> None:
    """Scaffold an app: code, tests (unit, integration, smoke), Containerfile, CI workflows."""
    from ..app_templates import CreateOptions, create_app

    created = create_app(
        CreateOptions(
            name=name,
            template=template,
            folder=output,
            models=tuple(models),
            project=project,
            environments=tuple(e.strip() for e in environments.split(",") if e.strip()),
            main_branch=main_branch,
        )
    )
    emit(
        {"folder": str(created.folder), "template": created.template, "files": created.files},
        as_json,
        lambda d: (
            f"created {d['folder']} from the {d['template']} template "
            f"({len(d['files'])} files): cd {d['folder']} && pytest"
        ),
    )
