"""Settings at global, project, environment and component level, with inheritance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import InvalidInput, NotFound
from . import _lookup, _settings, _state
from ._core import RegistryCore
from ._lookup import listing, now
from ._rows import (
    ComponentRow,
    EnvironmentRow,
    ProjectRow,
    RevisionRow,
    SettingRow,
    WorkerGroupRow,
)
from ._state import State
from ._types import (
    EffectiveSetting,
)


@dataclass(frozen=True)
class _Scope:
    """The level a setting is read or written at, with the rows that name it."""

    level: str
    project: ProjectRow | None
    env: EnvironmentRow | None
    component: ComponentRow | None

    @property
    def chain(self) -> list[tuple[str, str]]:
        """``(level, scope key)`` from this level up to global."""
        return _settings.chain(
            self.project.id if self.project else None,
            self.env.id if self.env else None,
            self.component.id if self.component else None,
        )


class SettingsMixin(RegistryCore):
    """Settings at global, project, environment and component level, with inheritance."""

    def _scope(
        self,
        session: Session,
        project: str | None,
        env: str | None,
        component: str | None,
    ) -> _Scope:
        """The level named by the most specific of ``project``, ``env``, ``component``."""
        if project is None and (env is not None or component is not None):
            raise InvalidInput("an environment or component setting needs its project")
        if component is not None and env is None:
            raise InvalidInput("a component setting needs its environment")
        if project is None:
            return _Scope("global", None, None, None)
        proj = _lookup.project(session, project)
        if env is None:
            return _Scope("project", proj, None, None)
        environment = _lookup.environment(session, proj, env)
        if component is None:
            return _Scope("environment", proj, environment, None)
        _, state = _state.read_revision(session, environment)
        if component not in state.entries:
            raise NotFound(
                f"environment '{env}' has no component '{component}' "
                f"(components: {listing(sorted(state.entries))})"
            )
        return _Scope("component", proj, environment, state.entries[component].component)

    def get_setting(
        self,
        key: str,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> EffectiveSetting:
        """A setting's effective value at a level, and the level it comes from.

        The level is the most specific one named: global (no project), project,
        environment, or component (a component deployed in ``env``).
        """
        _settings.check_key(key)
        with self._read() as session:
            scope = self._scope(session, project, env, component)
            values = _settings.values_at(session, [k for _, k in scope.chain])
            return _settings.effective(key, scope.chain, values)

    def get_settings(
        self, project: str | None = None, env: str | None = None, component: str | None = None
    ) -> list[EffectiveSetting]:
        """Every setting's effective value at a level (see ``get_setting``)."""
        with self._read() as session:
            scope = self._scope(session, project, env, component)
            values = _settings.values_at(session, [k for _, k in scope.chain])
            return [_settings.effective(k, scope.chain, values) for k in _settings.KEYS]

    def set_setting(
        self,
        key: str,
        value: Any,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> EffectiveSetting:
        """Set a setting at one level (see ``get_setting``); text values are parsed.

        Raises InvalidSetting with the reason for an unknown key or a bad value.
        Environment and component levels are part of the environment: setting them makes
        a new revision.
        """
        return self._put_setting(key, value, project, env, component)

    def inherit_setting(
        self,
        key: str,
        project: str | None = None,
        env: str | None = None,
        component: str | None = None,
    ) -> EffectiveSetting:
        """Clear a setting at one level so it inherits again; returns the value now in effect."""
        return self._put_setting(key, None, project, env, component, clear=True)

    def _put_setting(
        self,
        key: str,
        value: Any,
        project: str | None,
        env: str | None,
        component: str | None,
        clear: bool = False,
    ) -> EffectiveSetting:
        _settings.check_key(key)
        if key in _settings.POLICY_KEYS:
            self._require_role("admin", f"changing the policy setting '{key}'")
        with self._write() as session:
            scope = self._scope(session, project, env, component)
            if scope.level == "global":
                self._require_role("admin", "changing a global setting")
            if not clear:
                tags = (
                    [v.tag for v in _lookup.versions(session, scope.component) if v.tag]
                    if scope.component is not None
                    else []
                )
                value = _settings.validate(
                    key,
                    value,
                    level=scope.level,
                    worker_groups=set(session.execute(select(WorkerGroupRow.name)).scalars()),
                    tags=tags,
                )
            action = "setting.inherit" if clear else "setting.set"
            if scope.env is not None:
                self._put_environment_setting(session, scope, key, value, action)
            else:
                self._put_global_setting(session, scope, key, value, action)
            values = _settings.values_at(session, [k for _, k in scope.chain])
            return _settings.effective(key, scope.chain, values)

    def _put_environment_setting(
        self, session: Session, scope: _Scope, key: str, value: Any, action: str
    ) -> None:
        assert scope.project is not None and scope.env is not None
        name = scope.component.name if scope.component is not None else None

        def mutate(_: RevisionRow, state: State) -> tuple[State, str]:
            values = state.component_settings.setdefault(name, {}) if name else state.env_settings
            where = f"component {name}" if name else "environment"
            if action == "setting.inherit":
                values.pop(key, None)
                return state, f"{where}: {key} inherited"
            values[key] = value
            return state, f"{where}: {key} = {json.dumps(value)}"

        self._change(session, scope.project, scope.env, action, mutate)

    def _put_global_setting(
        self, session: Session, scope: _Scope, key: str, value: Any, action: str
    ) -> None:
        where = scope.chain[0][1]
        row = _lookup.one(
            session,
            select(SettingRow).where(SettingRow.scope_key == where, SettingRow.key == key),
            lock=True,
        )
        before = row.value if row is not None else None
        if action == "setting.inherit":
            if row is None:
                return
            session.delete(row)
        elif row is None:
            session.add(
                SettingRow(
                    scope=scope.level,
                    scope_key=where,
                    project_id=scope.project.id if scope.project else None,
                    key=key,
                    value=value,
                    updated_at=now(),
                    updated_by=self.actor,
                )
            )
        elif row.value == value:
            return
        else:
            row.value, row.updated_at, row.updated_by = value, now(), self.actor
        session.flush()
        obj = f"project/{scope.project.name}" if scope.project else "global"
        after = None if action == "setting.inherit" else value
        self._record(session, action, f"{obj}/setting/{key}", {key: before}, {key: after})
