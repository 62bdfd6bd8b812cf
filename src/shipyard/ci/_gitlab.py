"""The flow as a GitLab CI file: merge request pipelines, the default branch's pipeline,
and a stop job for the challenger's review environment.

GitLab has no pipeline for a merge request being merged or closed; what it has is the
stop job of the merge request's environment, which it runs when the merge request is
merged or closed. So:

* the merge request pipeline runs the challenger job in environment
  ``challenger/pr-IID``, whose stop job is ``close-challenger``;
* the main branch's pipeline finds the merge request's number in the merge commit's
  message (GitLab's default template ends with ``See merge request GROUP/PROJECT!IID``;
  ``$SHIPYARD_PR`` overrides it), applies the challenger's component config and deletes
  the challenger; production is a manual job in a protected environment;
* the stop job deletes the challenger only when the merge request was closed without
  merging (no such line on the main branch): after a merge, the main branch's pipeline
  still needs it, and GitLab may run the stop job first.
"""

from __future__ import annotations

import shlex
from typing import Any

from ._flow import COMPONENT_CONFIG, CIOptions, Flow, Step, header
from ._yaml import dump

PATH = ".gitlab-ci.yml"
_PR_ENVIRONMENT = "challenger/pr-$CI_MERGE_REQUEST_IID"
# One line of a merge commit's message: GitLab's "See merge request group/project!12".
_MERGE_LINE = "^See merge request .*!"

NOTES = [
    "Set up once in the project's settings (CI/CD):",
    "  - variables SHIPYARD_URL and SHIPYARD_TOKEN (a deployer token: shipyard token create",
    "    ci --role deployer), masked and not protected: merge request pipelines need them;",
    "  - protected environment PRODUCTION with required approvals: its job is manual;",
    "  - merges make merge commits (GitLab's default method and message template): the",
    "    main branch's pipeline reads the merge request's number from that message.",
]
# After the variables, when the pipeline registers an app.
SIGN_NOTES = [
    "  - variable SHIPYARD_SIGN_KEY, of type File (GitLab cannot mask a value of several",
    "    lines) and not protected: the private key (PEM) that signs the app, whose public",
    "    key the registry trusts (shipyard key generate; shipyard key trust NAME.pub);",
]


def render(options: CIOptions) -> dict[str, str]:
    """The CI file's path and text."""
    flow = Flow(options, "CI/CD variable")
    o = options
    target = shlex.quote(o.main_branch)
    merge_request = (
        '$CI_PIPELINE_SOURCE == "merge_request_event" && '
        f'$CI_MERGE_REQUEST_TARGET_BRANCH_NAME == "{o.main_branch}"'
    )
    main = f'$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == "{o.main_branch}"'
    find_pr = "\n".join(
        [
            'PR="${SHIPYARD_PR:-}"',
            'if [ -z "$PR" ]; then',
            "  PR=$(printf '%s\\n' \"$CI_COMMIT_MESSAGE\" "
            f"| sed -n 's/{_MERGE_LINE}\\([0-9][0-9]*\\)$/\\1/p' | tail -n 1)",
            "fi",
            'if [ -z "$PR" ]; then',
            "  echo \"no 'See merge request ...!N' line in the commit message: not a merge "
            "commit (set SHIPYARD_PR to the merge request's number to run this by hand)\" >&2",
            "  exit 1",
            "fi",
            'export CHALLENGER="pr-$PR"',
            'echo "merge request !$PR: challenger $CHALLENGER"',
        ]
    )
    # grep reads the whole log (no -q): quitting at the first match would end git log
    # with SIGPIPE, which pipefail (GitLab's bash runs with it) turns into "not merged".
    was_merged = "\n".join(
        [
            f"git fetch --quiet --depth=200 origin {target}",
            "if git log --format=%B FETCH_HEAD | "
            f'grep -E "{_MERGE_LINE}$CI_MERGE_REQUEST_IID\\$" > /dev/null; then',
            '  echo "merge request !$CI_MERGE_REQUEST_IID was merged: the '
            f'{o.main_branch} pipeline takes $CHALLENGER into {o.first} and deletes it"',
            "  exit 0",
            "fi",
        ]
    )
    document: dict[str, Any] = {
        "stages": ["challenger", "integrate", "production", "close"],
        "workflow": {"rules": [{"if": merge_request}, {"if": main}]},
        "default": {"image": f"python:{o.python_version}"},
        "variables": {"SHIPYARD_PROJECT": o.project, "SHIPYARD_BUNDLE_DIR": o.bundle_dir},
        "challenger": {
            "stage": "challenger",
            "rules": [{"if": merge_request}],
            "variables": {"CHALLENGER": "pr-$CI_MERGE_REQUEST_IID"},
            "environment": {"name": _PR_ENVIRONMENT, "on_stop": "close-challenger"},
            "resource_group": "shipyard-pr-$CI_MERGE_REQUEST_IID",
            "script": _script([*flow.setup(), *flow.challenger()]),
            "artifacts": {"paths": [COMPONENT_CONFIG], "expire_in": "30 days"},
        },
        "integrate": {
            "stage": "integrate",
            "rules": [{"if": main}],
            "resource_group": f"shipyard-{o.first}",
            "script": _script(
                [
                    *flow.setup(),
                    Step("Find the merge request", find_pr),
                    *flow.integrate(),
                    *flow.close(),
                ]
            ),
            "artifacts": {"paths": [COMPONENT_CONFIG], "expire_in": "90 days"},
        },
        "production": {
            "stage": "production",
            "needs": ["integrate"],
            "rules": [{"if": main, "when": "manual"}],
            "allow_failure": False,
            "environment": {"name": o.last, "deployment_tier": "production"},
            "resource_group": f"shipyard-{o.last}",
            "script": _script([*flow.setup(), *flow.production()]),
        },
        "close-challenger": {
            "stage": "close",
            "rules": [{"if": merge_request, "when": "manual"}],
            "allow_failure": True,
            "variables": {"CHALLENGER": "pr-$CI_MERGE_REQUEST_IID"},
            "environment": {"name": _PR_ENVIRONMENT, "action": "stop"},
            "script": _script(
                [
                    Step("Leave a merged challenger to the main pipeline", was_merged),
                    *flow.setup(),
                    *flow.close(),
                ]
            ),
        },
    }
    lines = [*NOTES[:3], *(SIGN_NOTES if o.app_dir else []), *NOTES[3:]]
    notes = [line.replace("PRODUCTION", o.last) for line in lines]
    return {PATH: header(o, notes) + "\n" + dump(document)}


def _script(steps: list[Step]) -> list[str]:
    """A job's script: one item per step, its name as the first line (a comment: GitLab's
    log shows each item's first line as the item runs)."""
    return [f"# {step.name}\n{step.run}" for step in steps]
