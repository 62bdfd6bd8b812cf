"""An environment's contents, read from and written to revisions.

A revision holds components (version and app config), the environment- and
component-level settings, and the environment config. ``State`` is a working copy that
a change edits; ``write_revision`` stores it as the next revision and mirrors its
settings into the ``settings`` table (the only code that writes those rows).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..errors import NotFound
from . import _audit
from ._lookup import now
from ._rows import (
    ComponentRow,
    ComponentVersionRow,
    EnvironmentRow,
    ProjectRow,
    RevisionEntryRow,
    RevisionRow,
    SettingRow,
)
from ._settings import scope_key
from ._types import ComponentDiff, DeployedComponent, Diff, Revision, ValueDiff


@dataclass
class Entry:
    """A component version in an environment state, with its app config."""

    component: ComponentRow
    version: ComponentVersionRow
    app_config: dict[str, Any]

    def deployed(self) -> DeployedComponent:
        """The public form of this entry."""
        return DeployedComponent(
            name=self.component.name,
            kind=self.component.kind,
            version_id=self.version.number,
            tag=self.version.tag,
            bundle_name=self.version.bundle_name,
            bundle_version=self.version.bundle_version,
            digest=self.version.digest,
            app_config=copy.deepcopy(self.app_config),
        )


@dataclass
class State:
    """What an environment holds: the contents of one revision, as a mutable working copy."""

    entries: dict[str, Entry] = field(default_factory=dict)
    env_settings: dict[str, Any] = field(default_factory=dict)
    component_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> State:
        return State(
            entries={
                n: Entry(e.component, e.version, copy.deepcopy(e.app_config))
                for n, e in self.entries.items()
            },
            env_settings=copy.deepcopy(self.env_settings),
            component_settings=copy.deepcopy(self.component_settings),
            config=copy.deepcopy(self.config),
        )

    def settings_document(self) -> dict[str, Any]:
        """Settings as stored in a revision (component settings only for present components)."""
        components = {
            name: dict(values)
            for name, values in sorted(self.component_settings.items())
            if name in self.entries and values
        }
        return {"environment": dict(self.env_settings), "components": components}

    def identity(self) -> str:
        """Canonical text of the contents: equal for two states that hold the same."""
        return json.dumps(
            {
                "components": {
                    n: [e.version.id, e.app_config] for n, e in sorted(self.entries.items())
                },
                "settings": self.settings_document(),
                "config": self.config,
            },
            sort_keys=True,
        )

    def summary(self, revision: int) -> dict[str, Any]:
        """The readable form kept in audit events."""
        return {
            "revision": revision,
            "components": {
                n: {"version": e.version.tag or e.version.number, "app_config": e.app_config}
                for n, e in sorted(self.entries.items())
            },
            "settings": self.settings_document(),
            "config": self.config,
        }


def entries(session: Session, revision_ids: Sequence[int]) -> dict[int, dict[str, Entry]]:
    """The components of each revision: ``{revision id: {component name: Entry}}``."""
    found: dict[int, dict[str, Entry]] = {rid: {} for rid in revision_ids}
    if not revision_ids:
        return found
    rows = session.execute(
        select(RevisionEntryRow, ComponentRow, ComponentVersionRow)
        .join(ComponentRow, RevisionEntryRow.component_id == ComponentRow.id)
        .join(ComponentVersionRow, RevisionEntryRow.component_version_id == ComponentVersionRow.id)
        .where(RevisionEntryRow.revision_id.in_(revision_ids))
    ).all()
    for entry, component, version in rows:
        found[entry.revision_id][component.name] = Entry(component, version, dict(entry.app_config))
    return found


def state_of(revision: RevisionRow, entries: dict[str, Entry]) -> State:
    """The state a revision holds, given its entries."""
    settings = revision.settings or {}
    return State(
        entries=entries,
        env_settings=dict(settings.get("environment", {})),
        component_settings={k: dict(v) for k, v in settings.get("components", {}).items()},
        config=dict(revision.config or {}),
    )


def read_revision(
    session: Session, env: EnvironmentRow, number: int | None = None
) -> tuple[RevisionRow, State]:
    """A revision of ``env`` (the latest when ``number`` is None) and its state."""
    query = select(RevisionRow).where(RevisionRow.environment_id == env.id)
    if number is None:
        query = query.order_by(RevisionRow.number.desc()).limit(1)
    else:
        query = query.where(RevisionRow.number == number)
    revision = session.execute(query).scalar_one_or_none()
    if revision is None:
        latest = session.execute(
            select(func.max(RevisionRow.number)).where(RevisionRow.environment_id == env.id)
        ).scalar()
        raise NotFound(
            f"environment '{env.name}' has no revision {number} (revisions: 1 to {latest})"
        )
    return revision, state_of(revision, entries(session, [revision.id])[revision.id])


def revision_info(
    project: ProjectRow, env: EnvironmentRow, revision: RevisionRow, state: State
) -> Revision:
    """The public form of a revision."""
    return Revision(
        project=project.name,
        environment=env.name,
        number=revision.number,
        created_at=_audit.utc_text(revision.created_at),
        actor=revision.actor,
        action=revision.action,
        reason=revision.reason,
        components=[e.deployed() for _, e in sorted(state.entries.items())],
        settings=state.settings_document(),
        config=copy.deepcopy(state.config),
    )


def write_revision(
    session: Session,
    env: EnvironmentRow,
    number: int,
    state: State,
    action: str,
    reason: str,
    actor: str,
) -> RevisionRow:
    """Insert revision ``number`` holding ``state``; mirror its settings into ``settings``."""
    revision = RevisionRow(
        environment_id=env.id,
        number=number,
        created_at=now(),
        actor=actor,
        action=action,
        reason=reason,
        settings=state.settings_document(),
        config=copy.deepcopy(state.config),
    )
    session.add(revision)
    session.flush()
    for entry in state.entries.values():
        session.add(
            RevisionEntryRow(
                revision_id=revision.id,
                component_id=entry.component.id,
                component_version_id=entry.version.id,
                app_config=copy.deepcopy(entry.app_config),
            )
        )
    _mirror_settings(session, env, state, actor)
    session.flush()
    return revision


def _mirror_settings(session: Session, env: EnvironmentRow, state: State, actor: str) -> None:
    """Make the settings table's rows for ``env`` and its components match ``state``."""
    session.execute(delete(SettingRow).where(SettingRow.environment_id == env.id))
    levels = [("environment", None, state.env_settings)] + [
        ("component", state.entries[name].component.id, values)
        for name, values in state.settings_document()["components"].items()
    ]
    moment = now()
    for level, component_id, values in levels:
        for key, value in values.items():
            session.add(
                SettingRow(
                    scope=level,
                    scope_key=scope_key(env.project_id, env.id, component_id),
                    project_id=env.project_id,
                    environment_id=env.id,
                    component_id=component_id,
                    key=key,
                    value=value,
                    updated_at=moment,
                    updated_by=actor,
                )
            )


def _label(entry: Entry | None) -> str | None:
    if entry is None:
        return None
    return entry.version.tag or str(entry.version.number)


def _flatten(settings: dict[str, Any]) -> dict[str, Any]:
    flat = dict(settings.get("environment", {}))
    for name, values in settings.get("components", {}).items():
        flat.update({f"{name}.{k}": v for k, v in values.items()})
    return flat


def _value_diffs(a: dict[str, Any], b: dict[str, Any]) -> list[ValueDiff]:
    return [
        ValueDiff(key, a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def diff(a_label: str, b_label: str, a: State, b: State) -> Diff:
    """What putting ``a`` into ``b`` would change in ``b``: components ("added" to ``b`` when
    only ``a`` holds one, "removed" when only ``b`` does), settings (``name.key`` for a
    component's) and environment config. Each entry carries both sides' values."""
    components = []
    for name in sorted(set(a.entries) | set(b.entries)):
        new, old = a.entries.get(name), b.entries.get(name)
        if old is None or new is None:
            change = "added" if old is None else "removed"
        else:
            changed = [
                what
                for what, differs in (
                    ("version", old.version.id != new.version.id),
                    ("app_config", old.app_config != new.app_config),
                )
                if differs
            ]
            if not changed:
                continue
            change = ", ".join(changed)
        components.append(
            ComponentDiff(
                name=name,
                change=change,
                a_version=_label(new),
                b_version=_label(old),
                a_app_config=new.app_config if new else None,
                b_app_config=old.app_config if old else None,
            )
        )
    settings = _value_diffs(_flatten(a.settings_document()), _flatten(b.settings_document()))
    config = _value_diffs(a.config, b.config)
    return Diff(
        a=a_label,
        b=b_label,
        same=not (components or settings or config),
        components=components,
        settings=settings,
        config=config,
    )
