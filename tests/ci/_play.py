"""Play rendered CI files here, as their provider would: which jobs an event starts, in what
order, with which variables, and each job's shell steps run with bash.

Only what the rendered files use is understood (a file using more fails the test rather
than being half-played): GitHub's ``pull_request`` trigger, ``if`` expressions over
``github``, ``needs`` and ``secrets`` with ``always()``/``success()``/``failure()``,
environments that wait for approval, ``env`` at three levels, and the actions checkout
(the workspace is the checkout), setup-python (this interpreter is on PATH) and
upload-artifact (copied to a folder); GitLab's workflow and job rules, stages, ``needs``,
variables with ``$VAR`` expansion, manual jobs, environments with a stop job, and
artifacts. Steps run as ``bash --noprofile --norc -eo pipefail``, like both providers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import shipyard

STEP_TIMEOUT = 300  # seconds for one step; every step here talks to loopback only

Approve = Callable[[str, str], bool]  # (job, environment) -> approved?


@dataclass
class JobRun:
    """One job's outcome: success, failure, skipped, or waiting (approval not given)."""

    name: str
    result: str
    log: str = ""
    steps: list[str] = field(default_factory=list)


# --- expressions: GitHub's ${{ }} and if:, GitLab's rules: if -------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|!|\(|\))|'(?P<sq>(?:[^']|'')*)'|\"(?P<dq>[^\"]*)\""
    r"|(?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<call>[A-Za-z_][A-Za-z0-9_]*)\(\)|(?P<path>[A-Za-z_][A-Za-z0-9_.-]*))"
)


def evaluate(text: str, lookup: Callable[[str], Any], call: Callable[[str], Any]) -> Any:
    """The value of ``text``: ``lookup`` resolves names (a.b.c, $VAR), ``call`` functions."""
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise AssertionError(f"cannot play the expression {text!r} (at {text[position:]!r})")
        kind = match.lastgroup
        value = match.group(kind) if kind else None
        if kind == "sq":
            tokens.append(("lit", (value or "").replace("''", "'")))
        elif kind == "dq":
            tokens.append(("lit", value))
        elif kind == "num":
            tokens.append(("lit", float(value or 0)))
        elif kind == "path" and value in ("true", "false", "null"):
            tokens.append(("lit", {"true": True, "false": False, "null": None}[value]))
        elif kind == "var":
            tokens.append(("name", (value or "").strip("${}")))
        else:
            tokens.append((kind or "", value))
        position = match.end()
    parser = _Parser(tokens, lookup, call)
    result = parser.either()
    assert parser.at == len(tokens), f"cannot play the expression {text!r}"
    return result


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, 0.0, "")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()  # GitHub compares text ignoring case
    return bool(a == b)


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], lookup: Any, call: Any) -> None:
        self.tokens, self.lookup, self.call, self.at = tokens, lookup, call, 0

    def _peek(self) -> tuple[str, Any]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", None)

    def either(self) -> Any:
        value = self.both()
        while self._peek() == ("op", "||"):
            self.at += 1
            right = self.both()
            value = value if _truthy(value) else right
        return value

    def both(self) -> Any:
        value = self.negation()
        while self._peek() == ("op", "&&"):
            self.at += 1
            right = self.negation()
            value = right if _truthy(value) else value
        return value

    def negation(self) -> Any:
        if self._peek() == ("op", "!"):
            self.at += 1
            return not _truthy(self.negation())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.primary()
        kind, op = self._peek()
        if kind == "op" and op in ("==", "!="):
            self.at += 1
            right = self.primary()
            return _equal(left, right) == (op == "==")
        return left

    def primary(self) -> Any:
        kind, value = self._peek()
        self.at += 1
        if (kind, value) == ("op", "("):
            inner = self.either()
            assert self._peek() == ("op", ")"), "unbalanced parentheses"
            self.at += 1
            return inner
        if kind == "lit":
            return value
        if kind in ("name", "path"):
            return self.lookup(value)
        if kind == "call":
            return self.call(value)
        raise AssertionError(f"unexpected {value!r} in an expression")


def _run_script(script: str, env: dict[str, str], cwd: Path, name: str) -> tuple[int, str]:
    """Run one step's script as the providers do; (exit code, output)."""
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=STEP_TIMEOUT,
    )
    return done.returncode, f"--- {name}\n{done.stdout}"


# --- GitHub Actions --------------------------------------------------------------------

_STATUS_CALLS = re.compile(r"\b(always|success|failure|cancelled)\(\)")


class GitHubWorkflow:
    """One workflow file, played event by event in ``workspace`` (the checkout)."""

    def __init__(
        self,
        path: Path,
        workspace: Path,
        runner_env: dict[str, str],
        secrets: dict[str, str],
        artifacts: Path,
    ) -> None:
        self.document = yaml.safe_load(path.read_text())
        self.workspace, self.runner_env = workspace, runner_env
        self.secrets, self.artifacts = secrets, artifacts

    def triggered(self, event: str, payload: dict[str, Any]) -> bool:
        """Whether ``event`` with ``payload`` starts this workflow."""
        trigger = self.document["on"].get(event)
        if trigger is None:
            return False
        types = trigger.get("types")
        branches = trigger.get("branches")
        action = payload.get("action")
        base = payload.get("pull_request", {}).get("base", {}).get("ref")
        return (types is None or action in types) and (branches is None or base in branches)

    def play(self, event: str, payload: dict[str, Any], approve: Approve) -> dict[str, JobRun]:
        """Every job the event runs, in order; a job in an environment runs only if approved."""
        if not self.triggered(event, payload):
            return {}
        jobs: dict[str, Any] = self.document["jobs"]
        runs: dict[str, JobRun] = {}
        number = payload["pull_request"]["number"]
        github = {
            "event_name": event,
            "event": payload,
            "ref": f"refs/pull/{number}/merge",
            "head_ref": payload["pull_request"]["head"]["ref"],
            "base_ref": payload["pull_request"]["base"]["ref"],
            "actor": "octocat",
            "repository": "acme/models",
        }
        for job_id in self._order(jobs):
            job = jobs[job_id]
            needs = _listed(job.get("needs"))
            context = {
                "github": github,
                "secrets": self.secrets,
                "needs": {n: {"result": runs[n].result} for n in needs},
            }
            condition = str(job.get("if", "success()"))
            if not _STATUS_CALLS.search(condition):
                condition = f"success() && ({condition})"
            status = self._status([runs[n].result for n in needs])
            if not _truthy(self._evaluate(condition, context, status)):
                runs[job_id] = JobRun(job_id, "skipped")
                continue
            environment = job.get("environment")
            if isinstance(environment, dict):
                environment = environment["name"]
            if environment and not approve(job_id, str(environment)):
                runs[job_id] = JobRun(job_id, "waiting")
                continue
            runs[job_id] = self._run_job(job_id, job, context, github)
        return runs

    def _order(self, jobs: dict[str, Any]) -> list[str]:
        ordered: list[str] = []
        while len(ordered) < len(jobs):
            ready = [
                j
                for j in jobs
                if j not in ordered and set(_listed(jobs[j].get("needs"))) <= set(ordered)
            ]
            assert ready, "the jobs' needs form a cycle"
            ordered.append(ready[0])
        return ordered

    def _evaluate(self, text: str, context: dict[str, Any], status: dict[str, bool]) -> Any:
        """``text``'s value: names from ``context`` (an unknown context fails; a missing
        field is null, as on GitHub), status functions from ``status``."""

        def lookup(path: str) -> Any:
            top, *rest = path.split(".")
            assert top in context, f"cannot play {text!r}: no context {top} here"
            value: Any = context[top]
            for part in rest:
                value = value.get(part) if isinstance(value, dict) else None
            return value

        return evaluate(text, lookup, lambda name: status[name])

    @staticmethod
    def _status(results: list[str]) -> dict[str, bool]:
        return {
            "always": True,
            "success": all(r == "success" for r in results),
            "failure": any(r == "failure" for r in results),
            "cancelled": False,
        }

    def _expand(self, text: str, context: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            value = self._evaluate(match.group(1), context, self._status([]))
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return "" if value is None else str(value)

        return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", one, text)

    def _run_job(
        self, job_id: str, job: dict[str, Any], context: dict[str, Any], github: dict[str, Any]
    ) -> JobRun:
        event_path = self.artifacts.parent / f"event-{job_id}.json"
        event_path.write_text(json.dumps(github["event"]))
        env = {
            **self.runner_env,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": github["event_name"],
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_REF": github["ref"],
            "GITHUB_HEAD_REF": github["head_ref"],
            "GITHUB_BASE_REF": github["base_ref"],
            "GITHUB_REPOSITORY": github["repository"],
            "GITHUB_ACTOR": github["actor"],
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_JOB": job_id,
        }
        for level in (self.document.get("env", {}), job.get("env", {})):
            env.update({k: self._expand(str(v), context) for k, v in level.items()})
        shell = self.document.get("defaults", {}).get("run", {}).get("shell", "bash")
        assert shell == "bash", f"cannot play shell {shell}"
        run = JobRun(job_id, "success")
        failed = False
        for index, step in enumerate(job["steps"]):
            name = step.get("name") or step.get("uses") or f"step {index}"
            condition = str(step.get("if", "success()"))
            if not _STATUS_CALLS.search(condition):
                condition = f"success() && ({condition})"
            status = self._status(["failure" if failed else "success"])
            if not _truthy(self._evaluate(condition, context, status)):
                continue
            run.steps.append(name)
            if "uses" in step:
                self._use(step, context)
                continue
            step_env = {
                **env,
                **{k: self._expand(str(v), context) for k, v in step.get("env", {}).items()},
            }
            code, output = _run_script(
                self._expand(step["run"], context), step_env, self.workspace, name
            )
            run.log += output
            if code != 0:
                run.log += f"--- {name} failed with exit code {code}\n"
                failed = True
        run.result = "failure" if failed else "success"
        return run

    def _use(self, step: dict[str, Any], context: dict[str, Any]) -> None:
        action = str(step["uses"]).split("@")[0]
        if action in ("actions/checkout", "actions/setup-python"):
            return  # the workspace is the checkout; this interpreter's venv is on PATH
        if action == "actions/upload-artifact":
            name = self._expand(step["with"]["name"], context)
            source = self.workspace / step["with"]["path"]
            if source.exists():
                target = self.artifacts / name
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / source.name)
            return
        raise AssertionError(f"cannot play the action {step['uses']}")


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


# --- GitLab CI -------------------------------------------------------------------------

_RESERVED = {
    "stages",
    "workflow",
    "default",
    "variables",
    "include",
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
}


class GitLabFile:
    """A ``.gitlab-ci.yml``, played pipeline by pipeline in ``workspace`` (the clone)."""

    def __init__(
        self,
        path: Path,
        workspace: Path,
        runner_env: dict[str, str],
        project_variables: dict[str, str],
        artifacts: Path,
    ) -> None:
        self.document = yaml.safe_load(path.read_text())
        self.workspace, self.runner_env = workspace, runner_env
        self.project_variables, self.artifacts = project_variables, artifacts
        self.jobs = {
            k: v for k, v in self.document.items() if k not in _RESERVED and not k.startswith(".")
        }

    def _matches(
        self, rules: list[dict[str, Any]], variables: dict[str, str]
    ) -> dict[str, Any] | None:
        for rule in rules:
            if "if" not in rule or _truthy(
                evaluate(rule["if"], lambda name: variables.get(name), _no_calls)
            ):
                return rule
        return None

    def play(self, predefined: dict[str, str], approve: Approve) -> dict[str, JobRun]:
        """The pipeline ``predefined`` (CI_PIPELINE_SOURCE, …) makes: every job its rules
        put in it, stage by stage. A manual job runs when ``approve`` says so; stop jobs
        wait for ``stop``. No pipeline at all: {}."""
        variables = {**predefined, **self.project_variables}
        if self._matches(self.document.get("workflow", {}).get("rules", [{}]), variables) is None:
            return {}
        stages = self.document.get("stages", ["build", "test", "deploy"])
        ordered = sorted(self.jobs, key=lambda j: stages.index(self.jobs[j].get("stage", "test")))
        runs: dict[str, JobRun] = {}
        for job_id in ordered:
            job = self.jobs[job_id]
            rule = self._matches(job.get("rules", [{}]), variables)
            if rule is None:
                continue
            if any(
                runs.get(n, JobRun(n, "missing")).result != "success" for n in job.get("needs", [])
            ):
                runs[job_id] = JobRun(job_id, "skipped")
                continue
            if rule.get("when") == "manual":
                environment = job.get("environment", {})
                if environment.get("action") == "stop":
                    runs[job_id] = JobRun(job_id, "manual")
                    continue
                if not approve(job_id, environment.get("name", "")):
                    runs[job_id] = JobRun(job_id, "waiting")
                    continue
            runs[job_id] = self._run_job(job_id, job, predefined)
        return runs

    def stop(self, predefined: dict[str, str], started_by: str) -> JobRun:
        """Stop the environment job ``started_by`` started, as GitLab does when its merge
        request is merged or closed: run its ``on_stop`` job."""
        stop_job = self.jobs[started_by]["environment"]["on_stop"]
        assert self.jobs[stop_job]["environment"]["action"] == "stop"
        return self._run_job(stop_job, self.jobs[stop_job], predefined)

    def _run_job(self, job_id: str, job: dict[str, Any], predefined: dict[str, str]) -> JobRun:
        variables = {**self.runner_env, "CI": "true", "GITLAB_CI": "true", **predefined}
        variables.update(self.project_variables)
        for level in (self.document.get("variables", {}), job.get("variables", {})):
            for key, value in level.items():
                variables[key] = _expand_gitlab(str(value), variables)
        variables["CI_JOB_NAME"] = job_id
        if "environment" in job:
            variables["CI_ENVIRONMENT_NAME"] = _expand_gitlab(job["environment"]["name"], variables)
        lines = [*self.document.get("default", {}).get("before_script", []), *job["script"]]
        run = JobRun(job_id, "success")
        code, run.log = _run_script("\n".join(lines), variables, self.workspace, job_id)
        if code != 0:
            run.result = "failure"
            run.log += f"--- {job_id} failed with exit code {code}\n"
        for path in job.get("artifacts", {}).get("paths", []):
            source = self.workspace / path
            if source.exists() and code == 0:
                target = self.artifacts / job_id
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / source.name)
        return run


def _no_calls(name: str) -> Any:
    raise AssertionError(f"GitLab rules have no function {name}()")


def _expand_gitlab(text: str, variables: dict[str, str]) -> str:
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: variables.get(m.group(1), ""), text
    )


def runner_environment(home: Path) -> dict[str, str]:
    """What a fresh runner's shell has: this venv's tools first, with the shipyard under
    test (the tree this test imports, not whatever the venv installed), a home of its own,
    no Shipyard variables from the test process, and pip kept off the network."""
    tools = Path(sys.executable).parent
    source = Path(shipyard.__file__).resolve().parents[1]
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.pathsep.join([str(tools), "/usr/local/bin", "/usr/bin", "/bin"]),
        "PYTHONPATH": str(source),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PIP_NO_INDEX": "1",  # the runner's pip finds shipyard installed; never the network
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # Where an embedded registry would go, were SHIPYARD_URL missing: empty, so a
        # step that fell back to it would fail instead of passing on the wrong registry.
        "SHIPYARD_HOME": str(home / "no-registry-here"),
    }


def job_results(runs: dict[str, JobRun]) -> dict[str, str]:
    """Each played job's result (success, failure, skipped), by job name."""
    return {name: run.result for name, run in runs.items()}


def job_logs(runs: dict[str, JobRun]) -> str:
    """The played jobs' output, one after another."""
    return "".join(run.log for run in runs.values())


def pull_request(action: str, number: int, merged: bool = False) -> dict[str, Any]:
    """The event payload a provider gives a job for pull request ``number`` into main."""
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "merged": merged,
            "head": {"ref": f"feature-{number}"},
            "base": {"ref": "main"},
        },
    }


def refuse_approval(job: str, environment: str) -> bool:
    """An approval hook for a play in which no job may wait for a person."""
    raise AssertionError(f"{job} asked for approval ({environment}) where none is due")
