"""How registry results read for people (the CLI and the demo); ``--json`` bypasses these.

Each view takes the plain JSON data of a result (``_output.plain``) and returns a line
or a rich renderable.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.text import Text

from ._output import cell, table


def label(version: dict[str, Any]) -> str:
    """``v2`` for a tagged version, ``candidate 3`` otherwise."""
    return str(version.get("tag") or f"candidate {version['version_id']}")


def card_lines(card: dict[str, Any]) -> list[str]:
    """A model card as ``field: value`` lines (metrics as ``name = value``)."""
    lines = []
    for field, value in card.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} = {v:g}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(value)
        lines.append(f"  {field}: {value}")
    return lines


def card_view(version: dict[str, Any]) -> str:
    """The model card of one version, or a line saying it has none."""
    heading = f"model card of {version['model']} {label(version)} ({version['bundle_version']})"
    lines = card_lines(version.get("model_card") or {})
    return escape("\n".join([heading + ":", *lines]) if lines else f"{heading}: none given")


def components_line(components: list[dict[str, Any]]) -> str:
    """``tumour_triage v2, fraud v1`` (or 'no components')."""
    return ", ".join(f"{c['name']} {label(c)}" for c in components) or "no components"


def version_line(version: dict[str, Any]) -> str:
    """One model or app version: name, tag, bundle, digest, signature, default."""
    signed = "signed" if version["signed"] else "unsigned"
    default = ", the default" if version["is_default"] else ""
    return (
        f"{version['model']} {label(version)}: bundle {version['bundle_name']} "
        f"{version['bundle_version']}, sha256 {version['digest'][:12]}…, {signed}{default}"
    )


def revision_line(revision: dict[str, Any]) -> str:
    """What a change made: ``uat revision 3: promote from integration … — tumour_triage v1``."""
    return (
        f"{revision['environment']} revision {revision['number']}: {revision['reason']} "
        f"[dim]({components_line(revision['components'])})[/]"
    )


def setting_line(setting: dict[str, Any]) -> str:
    """``replicas = 3 (from project, inherited)``."""
    inherited = ", inherited" if setting["inherited"] else ""
    return f"{setting['key']} = {json.dumps(setting['value'])} (from {setting['level']}{inherited})"


CHANGE_COLUMNS = ("id", "environment", "change", "state", "approvals", "requested_by", "note")


def change_row(request: dict[str, Any]) -> dict[str, Any]:
    """A change request as a row of ``env changes``: its change and approvals in words."""
    change = (
        f"promote {request['source']}@{request['source_revision']}"
        if request["action"] == "promote"
        else f"rollback to {request['to_revision']}"
    )
    approvals = f"{len(request['approvals'])}/{request['approvals_required']}"
    return dict(request, change=change, approvals=approvals)


def change_line(request: dict[str, Any]) -> str:
    """Where a change request stands after an approval or rejection, in one line."""
    row = change_row(request)
    what = f"change request {request['id']} ({row['change']} into {request['environment']})"
    if request["state"] == "applied":
        return f"applied: {what} is revision {request['result_revision']}"
    if request["state"] == "pending":
        return f"approved: {what} has {row['approvals']} approvals; it applies at the last"
    return f"{request['state']}: {what}" + (f": {request['note']}" if request["note"] else "")


def settings_table(settings: list[dict[str, Any]], title: str | None = None) -> RenderableType:
    """Effective settings: value, the level each came from, whether it is inherited."""
    rows = [dict(s, value=json.dumps(s["value"])) for s in settings]
    return table(rows, ("key", "value", "level", "inherited"), title)


def status_view(status: dict[str, Any]) -> RenderableType:
    """An environment's revision, components with their settings, and its own settings."""
    where = f"promotes to {status['promotes_to'] or '-'}"
    if status["challenger_of"]:
        where += f"; challenger of {status['challenger_of']}"
    header = (
        f"[bold]{status['environment']}[/] (project {status['project']}): revision "
        f"{status['revision']}, updated {cell(status['updated_at'], 'updated_at')} by "
        f"{status['updated_by']}; {where}"
    )
    components = status["components"]
    rows = [
        {
            "component": c["name"],
            "kind": c.get("kind", "model"),
            "version": label(c),
            "bundle": f"{c['bundle_name']} {c['bundle_version']}",
            "digest": c["digest"],
            "app_config": c["app_config"] or None,
        }
        for c in components
    ]
    # One row per setting: its value for the environment and for each component.
    scopes = [("environment", status["settings"])] + [
        (c["name"], c["settings"]) for c in components
    ]
    settings = [
        {name: _effective(values[key]) for name, values in scopes} | {"setting": key}
        for key in status["settings"]
    ]
    parts: list[RenderableType] = [
        header,
        table(
            rows,
            ("component", "kind", "version", "bundle", "digest", "app_config"),
            "components",
        ),
        table(settings, ("setting", *(name for name, _ in scopes)), "settings"),
    ]
    if status["config"]:
        parts.append(f"environment config: {cell(status['config'])}")
    if status.get("deployments"):
        columns = ("target", "action", "revision", "image", "digest", "at", "actor")
        parts.append(table(status["deployments"], columns, "deployments (last of each)"))
    return Group(*parts)


def _effective(setting: dict[str, Any]) -> str:
    """``3 (project)``: a setting's value and the level it comes from."""
    return f"{json.dumps(setting['value'])} ({setting['level']})"


def history_view(revisions: list[dict[str, Any]]) -> RenderableType:
    """An environment's revisions, newest first."""
    rows = [dict(r, components=components_line(r["components"])) for r in revisions]
    return table(rows, ("number", "created_at", "actor", "reason", "components"))


def change_lines(diff: dict[str, Any]) -> str:
    """What putting ``a`` into ``b`` changes in ``b``, a line per change (for confirmations)."""
    lines = []
    for c in diff["components"]:
        if c["change"] == "added":
            lines.append(f"  add     {c['name']} {c['a_version']}")
        elif c["change"] == "removed":
            lines.append(f"  remove  {c['name']} {c['b_version']}")
        else:
            lines.append(
                f"  change  {c['name']} {c['b_version']} -> {c['a_version']} ({c['change']})"
            )
            for f in c.get("files", []):
                lines.append(f"          {f['path']} {f['change']} (+{f['added']} -{f['removed']})")
    for part, word in (("settings", "setting"), ("config", "config ")):
        for value in diff[part]:
            before, after = (cell(value[side]) for side in ("b", "a"))
            lines.append(f"  {word} {value['key']}: {before} -> {after}")
    return escape("\n".join(lines) or "  nothing: it already holds the same")


def diff_view(diff: dict[str, Any]) -> RenderableType:
    """What putting ``a`` into ``b`` would change in ``b``: components, settings, config."""
    if diff["same"]:
        return f"{diff['a']} and {diff['b']} hold the same components, settings and config"
    a, b = diff["a"], diff["b"]
    components = [
        {"component": c["name"], "change": c["change"], a: c["a_version"], b: c["b_version"]}
        for c in diff["components"]
    ]
    parts: list[RenderableType] = [f"putting [bold]{a}[/] into [bold]{b}[/] would change:"]
    if components:
        parts.append(table(components, ("component", "change", a, b), "components"))
    for c in diff["components"]:
        for f in c.get("files", []):
            parts.append(file_diff_view(c["name"], f))
    for part in ("settings", "config"):
        if diff[part]:
            rows = [{"key": v["key"], a: v["a"], b: v["b"]} for v in diff[part]]
            parts.append(table(rows, ("key", a, b), part))
    return Group(*parts)


_DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "cyan"), ("+", "green"), ("-", "red"))


def file_diff_view(component: str, file: dict[str, Any]) -> RenderableType:
    """A GenAI file's unified diff under a heading, additions green and removals red."""
    heading = (
        f"{component}: {file['path']} ({file['kind']} {file['node']}): "
        f"{file['change']}, +{file['added']} -{file['removed']}"
    )
    text = Text(heading + "\n", style="bold")
    for line in file["diff"].splitlines(keepends=True):
        style = next((s for prefix, s in _DIFF_STYLES if line.startswith(prefix)), "")
        text.append(line, style=style)
    return text
