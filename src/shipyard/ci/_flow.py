"""The CI/CD flow both providers run, as shell steps; ``_github`` and ``_gitlab`` only place them.

    pull request opened or pushed   challenger job: build the bundles, create challenger
                                    pr-N from the first environment, register the bundles as
                                    candidates and deploy them to it, smoke-test it, save its
                                    component config (an artifact)
    pull request merged             integrate job: apply pr-N's component config to the first
                                    environment, tag its candidates vN, promote along the
                                    chain up to the one before the last
                                    production job (after a person approves): promote into
                                    the last environment
    pull request closed             close job: delete pr-N

Every step is a command of ours; the values interpolated into a script are checked
names or quoted with ``shlex.quote``. Credentials come from the provider's secrets as
$SHIPYARD_URL and $SHIPYARD_TOKEN and are never echoed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from .._version import __version__
from ..errors import UsageError

PROVIDERS = ("github", "gitlab")
COMPONENT_CONFIG = "component-config.yaml"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,199}")


@dataclass(frozen=True)
class CIOptions:
    """What ``shipyard ci render`` writes into the workflows.

    ``bundle_command`` is the repository's own export step: it must write one
    ``NAME-VERSION.tar.gz`` per model into ``$SHIPYARD_BUNDLE_DIR`` (None: the repository
    builds no model, as an app's own repository). ``app_dir`` is the folder of the
    repository's app (its shipyard-app.toml), registered with ``shipyard app register``
    beside the bundles, signed with the key in $SHIPYARD_SIGN_KEY (None: no app).
    ``smoke_command``, when given, replaces the default smoke test (each model's example
    input) and runs with $SHIPYARD_SMOKE_URL and $SHIPYARD_SMOKE_API_KEY set.
    """

    provider: str
    project: str
    environments: tuple[str, ...] = ("integration", "uat", "production")
    main_branch: str = "main"
    bundle_command: str | None = "make bundle"
    bundle_dir: str = "dist/bundles"
    smoke_command: str | None = None
    app_dir: str | None = None
    install_command: str = (
        f"python -m pip install --disable-pip-version-check 'shipyard=={__version__}'"
    )
    python_version: str = "3.11"

    def check(self) -> CIOptions:
        """These options, or UsageError naming the one that cannot go into a workflow."""
        if self.provider not in PROVIDERS:
            raise UsageError(f"--provider must be one of {', '.join(PROVIDERS)}")
        for flag, name in (
            ("--project", self.project),
            *(("--environments", e) for e in self.environments),
        ):
            if not _NAME.fullmatch(name):
                raise UsageError(f"{flag}: {name!r} is not a registry name")
        if len(self.environments) < 2 or len(set(self.environments)) != len(self.environments):
            raise UsageError(
                "--environments needs two or more different environments, first to last"
            )
        if not _BRANCH.fullmatch(self.main_branch):
            raise UsageError(f"--main-branch: {self.main_branch!r} is not a branch name")
        for flag, folder in (("--bundle-dir", self.bundle_dir), ("--app", self.app_dir or ".")):
            if not re.fullmatch(r"[A-Za-z0-9_./-]+", folder) or folder.startswith(("/", "-")):
                raise UsageError(
                    f"{flag} must be a relative path of letters, digits, '_', '.', '/', '-'"
                )
        if self.bundle_command is None and self.app_dir is None:
            raise UsageError("nothing to deploy: give a bundle command, an app folder, or both")
        for flag, command in (
            ("--bundle-command", self.bundle_command or "-"),
            ("--install", self.install_command),
            ("--smoke-command", self.smoke_command or "-"),
        ):
            if not command.strip() or "${{" in command:
                raise UsageError(f"{flag} must be a shell command (and no ${{{{ }}}} expression)")
        if not re.fullmatch(r"3\.[0-9]{1,2}", self.python_version):
            raise UsageError("--python must be a Python version such as 3.11")
        return self

    @property
    def first(self) -> str:
        """The environment challengers come from and merges land in."""
        return self.environments[0]

    @property
    def last(self) -> str:
        """The environment behind the manual approval."""
        return self.environments[-1]


SIGN_KEY = "SHIPYARD_SIGN_KEY"


@dataclass(frozen=True)
class Step:
    """One shell step: a name people read in the CI log, and its script. ``secrets`` are
    the secrets only this step gets (GitHub gives them to the step alone; on GitLab every
    variable is the job's, so the script unsets them once used)."""

    name: str
    run: str
    secrets: tuple[str, ...] = ()


class Flow:
    """The steps of each job, the same for every provider (``secret_kind`` names where the
    provider keeps credentials, for the error a missing one gives)."""

    def __init__(self, options: CIOptions, secret_kind: str) -> None:
        self.options = options
        self.secret_kind = secret_kind

    def setup(self) -> list[Step]:
        """Install shipyard, then check the credentials are there and work."""
        o = self.options
        check = "\n".join(
            [
                f': "${{SHIPYARD_URL:?is empty: set the {self.secret_kind} SHIPYARD_URL to the '
                'address of the registry server}"',
                f': "${{SHIPYARD_TOKEN:?is empty: set the {self.secret_kind} SHIPYARD_TOKEN to a '
                'deployer token (shipyard token create ci --role deployer)}"',
                "shipyard env list",
            ]
        )
        return [
            Step("Install shipyard", o.install_command),
            Step("Check the registry and its credentials", check),
        ]

    def challenger(self) -> list[Step]:
        """Pull request: build, challenger, candidates, smoke test, component config."""
        o = self.options
        smoke = 'shipyard ci smoke --env "$CHALLENGER"'
        if o.smoke_command:
            smoke += f" --command {shlex.quote(o.smoke_command)}"
        create = "\n".join(
            [
                'if shipyard env status "$CHALLENGER" --json > /dev/null 2>&1; then',
                '  echo "challenger $CHALLENGER exists: this push updates it"',
                "else",
                f'  shipyard env challenger create "$CHALLENGER" --from {o.first}',
                "fi",
            ]
        )
        register, what = [], []
        if o.bundle_command:
            register.append('shipyard ci candidates "$SHIPYARD_BUNDLE_DIR" --env "$CHALLENGER"')
            what.append("the bundles")
        if o.app_dir:
            # The app folder locked as an app bundle, signed (the last environment takes
            # only signed versions): a candidate, added to the challenger.
            register.append(self._register_app(o.app_dir))
            what.append("the app")
        save = "\n".join(
            [
                f'shipyard component-config save {COMPONENT_CONFIG} --env "$CHALLENGER"',
                f"cat {COMPONENT_CONFIG}",
            ]
        )
        build = (
            [Step("Build the bundles (the repository's export step)", o.bundle_command)]
            if o.bundle_command
            else []
        )
        name = (
            "Register the app as a candidate and deploy it to the challenger"
            if what == ["the app"]
            else f"Register {' and '.join(what)} as candidates and deploy them to the challenger"
        )
        return [
            *build,
            Step(f"Create the challenger from {o.first}", create),
            Step(name, "\n".join(register), (SIGN_KEY,) if o.app_dir else ()),
            Step("Smoke-test the challenger", smoke),
            Step("Save the challenger's component config", save),
        ]

    def _register_app(self, folder: str) -> str:
        """``shipyard app register FOLDER`` signed with $SHIPYARD_SIGN_KEY: the private key
        (PEM) itself (a GitHub secret, a GitLab variable), or the path of a file holding it
        (a GitLab variable of type File). It goes into a file of mode 0600 that is removed
        after, and out of the environment of every later command (the smoke test runs the
        repository's code)."""
        return "\n".join(
            [
                f': "${{{SIGN_KEY}:?is empty: set the {self.secret_kind} {SIGN_KEY} to the '
                "private key (PEM) that signs the app, one the registry trusts (shipyard key "
                'generate; shipyard key trust)}"',
                'sign_key="$(mktemp)"',
                f'if [ -f "${SIGN_KEY}" ]; then cat "${SIGN_KEY}" > "$sign_key"; '
                f'else printf \'%s\\n\' "${SIGN_KEY}" > "$sign_key"; fi',
                f"unset {SIGN_KEY}",
                "registered=0",
                f'shipyard app register {shlex.quote(folder)} --env "$CHALLENGER" '
                '--sign-key "$sign_key" || registered=$?',
                'rm -f "$sign_key"',
                '[ "$registered" -eq 0 ]',
            ]
        )

    def integrate(self) -> list[Step]:
        """Merge: the challenger's component config into the first environment, tags, and
        promotions up to the environment before the last."""
        o = self.options
        apply = "\n".join(
            [
                f'shipyard component-config save {COMPONENT_CONFIG} --env "$CHALLENGER"',
                f"shipyard component-config apply {COMPONENT_CONFIG} --env {o.first} --yes",
            ]
        )
        steps = [
            Step(f"Apply the challenger's component config to {o.first}", apply),
            Step("Tag the candidates as versions", f"shipyard ci tag --env {o.first}"),
        ]
        chain = o.environments
        for source, target in zip(chain[:-2], chain[1:-1], strict=True):
            steps.append(
                Step(f"Promote {source} to {target}", f"shipyard env promote {source} --yes")
            )
        before_last = chain[-2]
        steps.append(
            Step(
                f"Show what promoting {before_last} to {o.last} would change",
                f"shipyard env promote {before_last} --dry-run",
            )
        )
        return steps

    def production(self) -> list[Step]:
        """After approval: promote into the last environment."""
        o = self.options
        before_last = o.environments[-2]
        return [
            Step(f"Promote {before_last} to {o.last}", f"shipyard env promote {before_last} --yes"),
            Step(f"Show {o.last}", f"shipyard env status {o.last}"),
        ]

    def close(self) -> list[Step]:
        """Pull request closed: delete the challenger (gone already is fine)."""
        script = "\n".join(
            [
                'if shipyard env status "$CHALLENGER" --json > /dev/null 2>&1; then',
                '  shipyard env delete "$CHALLENGER" --yes',
                "else",
                '  echo "no challenger $CHALLENGER: nothing to delete"',
                "fi",
            ]
        )
        return [Step("Delete the challenger", script)]


def header(options: CIOptions, notes: list[str]) -> str:
    """The comment block at the top of a rendered file."""
    command = f"shipyard ci render --provider {options.provider}"
    lines = [
        f"Generated by `{command}` (shipyard {__version__}); see docs/ci.md.",
        f"Project {options.project}: {' -> '.join(options.environments)}; a pull request",
        f"into {options.main_branch} gets challenger pr-N of {options.first}, and a merge goes",
        f"to {options.last} after a person approves.",
        "",
        *notes,
    ]
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)
