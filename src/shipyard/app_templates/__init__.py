"""App templates: what ``shipyard app create`` scaffolds, and ``shipyard app templates`` lists.

    from shipyard.app_templates import CreateOptions, create_app
    create_app(CreateOptions("triage_web", "web", models=("tumour_triage",), project="demo"))

Each template writes an app folder ``shipyard app register`` reads (shipyard-app.toml,
app/, requirements.txt, tests marked unit, integration and smoke, README.md), with a
Containerfile from ``shipyard.deploy`` and CI workflows from ``shipyard.ci``. See
docs/apps.md.
"""

from ._scaffold import TEMPLATES, AppTemplate, CreatedApp, CreateOptions, create_app, templates

__all__ = ["TEMPLATES", "AppTemplate", "CreateOptions", "CreatedApp", "create_app", "templates"]
