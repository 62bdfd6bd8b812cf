"""Entry point: the verb tree, and the mapping of errors to one line and an exit code."""

from __future__ import annotations

import sys
import traceback

import typer

from ..errors import ShipyardError
from . import (
    _admin,
    _apikey,
    _app_templates,
    _apps,
    _artifact,
    _batch,
    _ci,
    _components,
    _config,
    _demo,
    _deploy,
    _environments,
    _keys,
    _monitor,
    _projects,
    _serve,
)
from ._output import error_line

app = typer.Typer(
    name="shipyard",
    help="Shipyard: locked, signed production bundles from data scientists' pipelines, "
    "and a registry that promotes them from integration to production.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(_artifact.app, name="artifact")
app.add_typer(_batch.app, name="batch")
app.add_typer(_keys.app, name="key")
app.add_typer(_projects.projects, name="project")
app.add_typer(_projects.models, name="model")
app.add_typer(_apps.app, name="app")
app.add_typer(_environments.app, name="env")
app.add_typer(_components.components, name="component")
app.add_typer(_components.component_config, name="component-config")
app.add_typer(_admin.worker_groups, name="worker-group")
app.add_typer(_admin.audit, name="audit")
app.add_typer(_admin.tokens, name="token")
app.command("server")(_admin.server)
app.command("serve")(_serve.serve)
app.add_typer(_apikey.app, name="apikey")
app.command("demo")(_demo.demo)
app.add_typer(_deploy.app, name="deploy")
app.add_typer(_monitor.app, name="monitor")
app.add_typer(_config.config, name="config")
_projects.projects.command("select")(_config.select_project)
_environments.app.command("select")(_config.select_environment)
app.add_typer(_ci.app, name="ci")
_apps.app.command("templates")(_app_templates.list_templates)
_apps.app.command("create")(_app_templates.create)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Print a traceback when a command fails."),
) -> None:
    """Shipyard command line (every data-printing command also takes --json).

    Registry commands use the registry server at $SHIPYARD_URL (with $SHIPYARD_TOKEN) when
    it is set, else the embedded registry ($SHIPYARD_HOME or $SHIPYARD_DATABASE_URL).
    """


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a ShipyardError prints one line and exits with its code.

    An OSError (a file that cannot be read or written) prints one line and exits with 1.
    A traceback is printed only with --debug.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        app(args=args, prog_name="shipyard", standalone_mode=True)
    except ShipyardError as exc:
        if debug:
            traceback.print_exc()
        error_line(str(exc))
        sys.exit(exc.exit_code)
    except OSError as exc:
        # A file or folder the command was given (a registry's store names itself instead):
        # the operating system's reason, not a traceback.
        if debug:
            traceback.print_exc()
        error_line(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        error_line("interrupted")
        sys.exit(130)
