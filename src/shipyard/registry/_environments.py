"""Environments: the promotion chain, creating and deleting, challengers."""

from __future__ import annotations

import copy

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import Conflict
from . import _lookup, _state
from ._core import RegistryCore
from ._lookup import check_name
from ._rows import (
    EnvironmentRow,
    ProjectRow,
)
from ._state import State
from ._types import (
    Environment,
)


class EnvironmentsMixin(RegistryCore):
    """Environments: the promotion chain, creating and deleting, challengers."""

    def list_environments(self, project: str) -> list[Environment]:
        """The project's environments, in creation order."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            envs = session.execute(
                select(EnvironmentRow)
                .where(EnvironmentRow.project_id == proj.id)
                .order_by(EnvironmentRow.id)
            ).scalars()
            return [self._environment_info(session, proj, e) for e in envs]

    def get_environment(self, project: str, name: str) -> Environment:
        """One environment; NotFound when it does not exist."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            return self._environment_info(session, proj, _lookup.environment(session, proj, name))

    def _promotion_target(
        self, session: Session, project: ProjectRow, env_name: str, target_name: str | None
    ) -> EnvironmentRow | None:
        """The environment ``env_name`` may promote to; refuses challengers and cycles."""
        if target_name is None:
            return None
        target = _lookup.environment(session, project, target_name)
        if target.is_challenger:
            raise Conflict(
                f"'{env_name}' cannot promote to '{target_name}': nothing may promote into a "
                "challenger"
            )
        if target.name == env_name:
            raise Conflict(f"refused: {env_name} -> {env_name} would be a cycle")
        chain = [env_name, target.name]
        step: EnvironmentRow | None = target
        while step is not None and step.promotes_to_id is not None:
            step = session.get(EnvironmentRow, step.promotes_to_id)
            assert step is not None
            chain.append(step.name)
            if step.name == env_name:
                raise Conflict(f"refused: {' -> '.join(chain)} would be a cycle")
        return target

    def create_environment(
        self, project: str, name: str, promotes_to: str | None = None
    ) -> Environment:
        """Add an empty environment (revision 1) that promotes to ``promotes_to`` (or nowhere).

        Raises Conflict when the name is taken or ``promotes_to`` is a challenger.
        """
        check_name("environment", name)
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            if name in _lookup.environment_names(session, proj):
                raise Conflict(f"project '{project}' already has an environment '{name}'")
            target = self._promotion_target(session, proj, name, promotes_to)
            env = self._new_environment(
                session, proj, name, target, None, State(), "create environment"
            )
            self._record(
                session,
                "environment.create",
                f"project/{project}/environment/{name}",
                None,
                {"promotes_to": promotes_to},
            )
            return self._environment_info(session, proj, env)

    def set_promotes_to(self, project: str, name: str, promotes_to: str | None) -> Environment:
        """Point an environment at another one to promote to (None: the end of the chain).

        Raises Conflict for a cycle, a challenger target, or when ``name`` is a challenger
        (a challenger always promotes into the environment it was cloned from).
        """
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            env = _lookup.environment(session, proj, name, lock=True)
            if env.is_challenger:
                raise Conflict(f"'{name}' is a challenger: it always promotes into its source")
            names = _lookup.environment_names_by_id(session, proj)
            before = names.get(env.promotes_to_id) if env.promotes_to_id else None
            target = self._promotion_target(session, proj, name, promotes_to)
            env.promotes_to_id = target.id if target else None
            session.flush()
            self._record(
                session,
                "environment.set_promotes_to",
                f"project/{project}/environment/{name}",
                {"promotes_to": before},
                {"promotes_to": promotes_to},
            )
            return self._environment_info(session, proj, env)

    def delete_environment(self, project: str, name: str) -> None:
        """Delete an environment and its revisions.

        A challenger is a deployer's to delete (CI deletes a pull request's when it
        closes); any other environment needs the admin role (PermissionDenied). Raises
        Conflict listing the environments that promote to it or are its challengers.
        """
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            env = _lookup.environment(session, proj, name, lock=True)
            if env.challenger_of_id is None:
                self._require_role("admin", f"deleting environment '{name}' (not a challenger)")
            dependants = (
                session.execute(
                    select(EnvironmentRow)
                    .where(
                        (EnvironmentRow.promotes_to_id == env.id)
                        | (EnvironmentRow.challenger_of_id == env.id)
                    )
                    .order_by(EnvironmentRow.id)
                )
                .scalars()
                .all()
            )
            if dependants:
                listed = ", ".join(
                    f"{d.name} (challenger of it)"
                    if d.challenger_of_id == env.id
                    else f"{d.name} (promotes to it)"
                    for d in dependants
                )
                raise Conflict(
                    f"environment '{name}' is needed by: {listed}; delete or re-point those first"
                )
            revision, state = _state.read_revision(session, env)
            before = state.summary(revision.number)
            session.delete(env)
            session.flush()
            self._record(
                session, "environment.delete", f"project/{project}/environment/{name}", before, None
            )

    def create_challenger(self, project: str, name: str, from_env: str) -> Environment:
        """Clone ``from_env``'s components and environment config into a new challenger.

        The challenger promotes back into ``from_env``; its settings start inherited.
        Raises Conflict when the name is taken.
        """
        check_name("environment", name)
        with self._write() as session:
            proj = _lookup.project(session, project, lock=True)
            if name in _lookup.environment_names(session, proj):
                raise Conflict(f"project '{project}' already has an environment '{name}'")
            source = _lookup.environment(session, proj, from_env)
            if source.is_challenger:
                raise Conflict(
                    f"'{from_env}' is a challenger: a challenger of it would promote into a "
                    "challenger, which nothing may do"
                )
            revision, state = _state.read_revision(session, source)
            clone = State(entries=state.copy().entries, config=copy.deepcopy(state.config))
            env = self._new_environment(
                session,
                proj,
                name,
                source,
                source,
                clone,
                f"challenger of {from_env} (its revision {revision.number})",
            )
            self._record(
                session,
                "challenger.create",
                f"project/{project}/environment/{name}",
                None,
                clone.summary(1) | {"challenger_of": from_env},
            )
            return self._environment_info(session, proj, env)
