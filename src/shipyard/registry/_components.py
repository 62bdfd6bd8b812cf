"""Components in an environment, component config files and environment config."""

from __future__ import annotations

import copy
from typing import Any

from ..errors import InvalidComponentConfig, InvalidInput, NotFound
from . import _audit, _component_config, _lookup, _state
from ._core import RegistryCore
from ._llm_config import check_llm_config
from ._lookup import listing
from ._roots import check_environment_config
from ._rows import (
    RevisionRow,
)
from ._state import Entry, State
from ._types import (
    DeployedComponent,
    Revision,
)


class ComponentsMixin(RegistryCore):
    """Components in an environment, component config files and environment config."""

    def add_component(
        self,
        project: str,
        env: str,
        name: str,
        version: str | int | None = None,
        app_config: dict[str, Any] | None = None,
    ) -> Revision:
        """Deploy a model or app version (default version when None) into an environment.

        Replaces the version already there. ``app_config`` defaults to the version's own.
        Returns the environment's new revision.
        """
        if app_config is not None and not isinstance(app_config, dict):
            raise InvalidInput("app config must be a mapping")
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            component = _lookup.component(session, proj, name)
            chosen = _lookup.version(session, component, version)

            def mutate(_: RevisionRow, state: State) -> tuple[State, str]:
                config = app_config if app_config is not None else chosen.app_config
                state.entries[name] = Entry(component, chosen, copy.deepcopy(config))
                label = chosen.tag or f"candidate {chosen.number}"
                return state, f"add {name} {label}"

            return self._change(session, proj, environment, "component.add", mutate)

    def remove_component(self, project: str, env: str, name: str) -> Revision:
        """Remove a component (and its component-level settings) from an environment."""
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)

            def mutate(_: RevisionRow, state: State) -> tuple[State, str]:
                if name not in state.entries:
                    raise NotFound(
                        f"environment '{env}' has no component '{name}' "
                        f"(components: {listing(sorted(state.entries))})"
                    )
                del state.entries[name]
                return state, f"remove {name}"

            return self._change(session, proj, environment, "component.remove", mutate)

    def list_components(self, project: str, env: str) -> list[DeployedComponent]:
        """The components an environment holds now, by name."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            _, state = _state.read_revision(session, _lookup.environment(session, proj, env))
            return [e.deployed() for _, e in sorted(state.entries.items())]

    def save_component_config(self, project: str, env: str) -> str:
        """The environment's component set as YAML text (see ``apply_component_config``)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            revision, state = _state.read_revision(session, _lookup.environment(session, proj, env))
            components = [e.deployed() for e in state.entries.values()]
            return _component_config.dump(project, env, revision.number, components)

    def apply_component_config(self, project: str, env: str, text: str) -> Revision:
        """Make an environment hold exactly the components of a component config, in one revision.

        Everything is checked first; InvalidComponentConfig lists every problem and nothing
        changes. Components not in the file are removed; settings and environment config
        stay. Applying what the environment already holds makes no new revision.
        """
        specs, problems = _component_config.parse(text)
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            entries: dict[str, Entry] = {}
            for spec in specs:
                try:
                    component = _lookup.component(session, proj, spec.name)
                    chosen = _lookup.version(session, component, spec.version)
                except (NotFound, InvalidInput) as exc:
                    problems.append(f"{spec.name}: {exc}")
                    continue
                if spec.kind is not None and spec.kind != component.kind:
                    problems.append(
                        f"{spec.name}: is {_lookup.a(component.kind)}, not {_lookup.a(spec.kind)}"
                    )
                if spec.digest is not None and spec.digest != chosen.digest:
                    problems.append(
                        f"{spec.name}: version {spec.version} here has digest "
                        f"{chosen.digest[:12]}…, the file says {spec.digest[:12]}…"
                    )
                config = spec.app_config if spec.app_config is not None else chosen.app_config
                entries[spec.name] = Entry(component, chosen, copy.deepcopy(config))
            if problems:
                raise InvalidComponentConfig(problems)

            def mutate(_: RevisionRow, state: State) -> tuple[State, str]:
                state.entries = entries
                return state, f"apply component config ({len(entries)} components)"

            return self._change(session, proj, environment, "component_config.apply", mutate)

    def get_environment_config(self, project: str, env: str) -> dict[str, Any]:
        """The environment config (free-form; bound to the environment, never promoted)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            _, state = _state.read_revision(session, _lookup.environment(session, proj, env))
            return state.config

    def set_environment_config(self, project: str, env: str, config: dict[str, Any]) -> Revision:
        """Replace the environment config with ``config`` (a JSON object); a new revision.

        Raises InvalidInput for a config that is not JSON data or an ``llm`` entry that is
        malformed or holds a key, PermissionDenied for a ``capture.folder`` (or an
        ``llm.api_key_file``) that leads out of the serving host's capture (secrets) root.
        """
        if not isinstance(config, dict):
            raise InvalidInput("environment config must be a mapping")
        try:
            config = _audit.as_json_data(config)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"environment config is not JSON data ({exc})") from None
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)

            def mutate(_: RevisionRow, state: State) -> tuple[State, str]:
                # Checked once the role is: a deployer refused the environment learns no more.
                check_environment_config(config)
                check_llm_config(config)  # names where the key is, never holds it
                state.config = config
                return state, "set environment config"

            return self._change(session, proj, environment, "environment_config.set", mutate)
