"""The flow as one GitHub Actions workflow, on the pull request's own events.

One ``pull_request`` workflow carries the pull request's number through every event, so
the merge knows its challenger: opened/synchronize/reopened run the challenger job; closed
runs integrate and production when it was merged, then close. Production waits in a
GitHub environment of that name, whose required reviewers are the approval.
"""

from __future__ import annotations

from typing import Any

from ._flow import COMPONENT_CONFIG, CIOptions, Flow, Step, header
from ._yaml import dump

PATH = ".github/workflows/shipyard.yml"
_PR = "github.event.pull_request.number"
_MERGED = "github.event.action == 'closed' && github.event.pull_request.merged == true"

NOTES = [
    "Set up once in the repository's settings:",
    "  - secrets SHIPYARD_URL (the registry server) and SHIPYARD_TOKEN (a deployer token:",
    "    shipyard token create ci --role deployer); pull requests from forks get no secrets",
    "    and fail at the credentials check;",
    "  - environment PRODUCTION with required reviewers: the production job waits for them.",
]
# After the secrets, when the workflow registers an app.
SIGN_NOTES = [
    "  - secret SHIPYARD_SIGN_KEY: the private key (PEM) that signs the app, whose public",
    "    key the registry trusts (shipyard key generate; shipyard key trust NAME.pub);",
]


def render(options: CIOptions) -> dict[str, str]:
    """The workflow file's path and text."""
    flow = Flow(options, "repository secret")
    o = options
    document: dict[str, Any] = {
        "name": "shipyard",
        "on": {
            "pull_request": {
                "types": ["opened", "synchronize", "reopened", "closed"],
                "branches": [o.main_branch],
            }
        },
        "permissions": {"contents": "read"},
        "env": {
            "SHIPYARD_PROJECT": o.project,
            "SHIPYARD_BUNDLE_DIR": o.bundle_dir,
            "SHIPYARD_URL": "${{ secrets.SHIPYARD_URL }}",
            "SHIPYARD_TOKEN": "${{ secrets.SHIPYARD_TOKEN }}",
            "CHALLENGER": f"pr-${{{{ {_PR} }}}}",
        },
        "defaults": {"run": {"shell": "bash"}},
        "jobs": {
            "challenger": _job(
                o,
                f"Challenger pr-${{{{ {_PR} }}}}: build, deploy, smoke-test",
                "github.event.action != 'closed'",
                [*flow.challenger(), _upload(f"component-config-pr-${{{{ {_PR} }}}}")],
                flow,
                concurrency=f"shipyard-pr-${{{{ {_PR} }}}}",
            ),
            "integrate": _job(
                o,
                f"Merge: {o.first} and on",
                _MERGED,
                [*flow.integrate(), _upload(f"component-config-{o.first}-pr-${{{{ {_PR} }}}}")],
                flow,
                concurrency=f"shipyard-{o.first}",
            ),
            "production": _job(
                o,
                f"Promote into {o.last} (approved)",
                _MERGED,
                flow.production(),
                flow,
                needs="integrate",
                environment=o.last,
                concurrency=f"shipyard-{o.last}",
            ),
            "close": _job(
                o,
                f"Delete challenger pr-${{{{ {_PR} }}}}",
                # After integrate when merged (which reads the challenger), at once when not;
                # kept when integrate failed, so a re-run finds it.
                "always() && github.event.action == 'closed' && "
                "needs.integrate.result != 'failure' && needs.integrate.result != 'cancelled'",
                flow.close(),
                flow,
                needs="integrate",
            ),
        },
    }
    lines = [*NOTES[:4], *(SIGN_NOTES if o.app_dir else []), *NOTES[4:]]
    notes = [line.replace("PRODUCTION", o.last) for line in lines]
    return {PATH: header(o, notes) + "\n" + dump(document, spaced="jobs")}


def _job(
    options: CIOptions,
    name: str,
    condition: str,
    steps: list[Any],
    flow: Flow,
    *,
    needs: str | None = None,
    environment: str | None = None,
    concurrency: str | None = None,
) -> dict[str, Any]:
    job: dict[str, Any] = {"name": name}
    if needs:
        job["needs"] = needs
    job["if"] = condition
    job["runs-on"] = "ubuntu-latest"
    if environment:
        job["environment"] = environment
    if concurrency:
        job["concurrency"] = {"group": concurrency, "cancel-in-progress": False}
    job["timeout-minutes"] = 30
    job["steps"] = [
        {"uses": "actions/checkout@v6"},
        {"uses": "actions/setup-python@v6", "with": {"python-version": options.python_version}},
        *(_step(s) for s in [*flow.setup(), *steps]),
    ]
    return job


def _step(step: Step | dict[str, Any]) -> dict[str, Any]:
    if isinstance(step, dict):
        return step
    rendered: dict[str, Any] = {"name": step.name}
    if step.secrets:  # this step's alone: no other step's environment holds them
        rendered["env"] = {name: f"${{{{ secrets.{name} }}}}" for name in step.secrets}
    rendered["run"] = step.run
    return rendered


def _upload(name: str) -> dict[str, Any]:
    return {
        "name": "Keep the component config",
        "if": "always()",  # what was saved, even when a later step failed
        "uses": "actions/upload-artifact@v6",
        "with": {"name": name, "path": COMPONENT_CONFIG},
    }
