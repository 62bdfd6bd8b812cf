"""Promotion, rollback, revision history, status and diffs of environments."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from ..errors import Conflict, InvalidInput
from . import _approvals, _audit, _lookup, _settings, _state
from ._approvals import ApprovalsMixin
from ._genai_diff import genai_changes
from ._rows import (
    EnvironmentRow,
    RevisionRow,
)
from ._types import (
    ComponentStatus,
    Diff,
    EnvironmentStatus,
    Revision,
)


class PromotionMixin(ApprovalsMixin):
    """Promotion, rollback, revision history, status and diffs of environments."""

    def promote(self, project: str, env: str) -> Revision:
        """Copy ``env``'s whole component set (versions and app config) into its ``promotes_to``.

        One transaction, one new revision of the target; the target keeps its own
        settings and environment config. Concurrent promotions into the same environment
        run one after the other. Raises Conflict when ``env`` promotes nowhere, promotes
        into a challenger, or holds no components, and ApprovalRequired when the target
        needs approvals (``approvals_required``): the promotion is then recorded as a
        pending change request, applied by ``approve_change``. With a witness configured,
        the audit head is anchored once the promotion has committed.
        """
        pending = None
        with self._write() as session:
            proj = _lookup.project(session, project)
            source = _lookup.environment(session, proj, env)
            if source.promotes_to_id is None:
                raise Conflict(f"environment '{env}' does not promote to another environment")
            target = session.get(EnvironmentRow, source.promotes_to_id)
            assert target is not None
            if target.is_challenger:  # refused when set; checked again for older databases
                raise Conflict(f"'{env}' cannot promote into challenger '{target.name}'")
            source_revision, source_state = _state.read_revision(session, source)
            if not source_state.entries:
                raise Conflict(f"nothing to promote: environment '{env}' holds no components")
            required = self._approvals_required(session, proj, target)
            if required:
                pending = self._ask(
                    session,
                    proj,
                    target,
                    "promote",
                    required,
                    source=env,
                    source_revision=source_revision.number,
                )
            else:
                change = _approvals.promotion(env, source_revision.number, source_state)
                revision = self._change(session, proj, target, "environment.promote", change)
        if pending is not None:
            raise pending
        self._anchor()
        return revision

    def rollback(
        self, project: str, env: str, to: int | None = None, allow_empty: bool = False
    ) -> Revision:
        """Make a new revision equal to revision ``to`` (default: the one before the current).

        Restores components, app config, environment- and component-level settings and
        environment config. Raises NotFound for an unknown revision, Conflict when there
        is no earlier revision, a restored setting names a deleted worker group, or the
        restored revision holds no components while the current one does (unless
        ``allow_empty``: a rollback that empties an environment takes its models offline),
        and ApprovalRequired when the environment needs approvals (as for ``promote``).
        """
        pending = None
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            change = _approvals.rollback(session, environment, to, allow_empty)
            required = self._approvals_required(session, proj, environment)
            if required:
                current, state = _state.read_revision(session, environment)
                change(current, state.copy())  # refuses now what the approval would refuse
                number = _approvals.rollback_target(session, environment, current, to)
                pending = self._ask(
                    session,
                    proj,
                    environment,
                    "rollback",
                    required,
                    to_revision=number,
                    allow_empty=allow_empty,
                )
            else:
                revision = self._change(session, proj, environment, "environment.rollback", change)
        if pending is not None:
            raise pending
        self._anchor()
        return revision

    def history(self, project: str, env: str) -> list[Revision]:
        """Every revision of an environment, newest first."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            revisions = (
                session.execute(
                    select(RevisionRow)
                    .where(RevisionRow.environment_id == environment.id)
                    .order_by(RevisionRow.number.desc())
                )
                .scalars()
                .all()
            )
            entries = _state.entries(session, [r.id for r in revisions])
            return [
                _state.revision_info(proj, environment, r, _state.state_of(r, entries[r.id]))
                for r in revisions
            ]

    def get_revision(self, project: str, env: str, number: int | None = None) -> Revision:
        """One revision of an environment (the current one when ``number`` is None)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            revision, state = _state.read_revision(session, environment, number)
            return _state.revision_info(proj, environment, revision, state)

    def status(self, project: str, env: str) -> EnvironmentStatus:
        """What an environment runs: revision, components with versions, effective settings."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            info = self._environment_info(session, proj, environment)
            revision, state = _state.read_revision(session, environment)
            env_chain = _settings.chain(proj.id, environment.id)
            chains = {
                name: _settings.chain(proj.id, environment.id, e.component.id)
                for name, e in state.entries.items()
            }
            values = _settings.values_at(
                session, [k for levels in [env_chain, *chains.values()] for _, k in levels]
            )
            components = [
                ComponentStatus(
                    **vars(entry.deployed()),
                    settings={
                        k: _settings.effective(k, chains[name], values) for k in _settings.KEYS
                    },
                )
                for name, entry in sorted(state.entries.items())
            ]
            return EnvironmentStatus(
                project=project,
                environment=env,
                promotes_to=info.promotes_to,
                challenger_of=info.challenger_of,
                revision=revision.number,
                updated_at=_audit.utc_text(revision.created_at),
                updated_by=revision.actor,
                components=components,
                settings={k: _settings.effective(k, env_chain, values) for k in _settings.KEYS},
                config=state.config,
            )

    def diff(self, project: str, a: str, b: str) -> Diff:
        """What putting ``a`` into ``b`` would change in ``b`` (each ``uat`` or ``uat@3``).

        Reads as the change itself: ``diff(uat, production)`` is what promoting uat would
        do to production's components, ``diff(production@3, production)`` what rolling
        production back to revision 3 would do. A component whose version changes lists
        the GenAI files (prompt templates, llm.json, knowledge documents, answer schemas)
        that differ between the two bundles as unified diffs (read from the artifact
        store; nothing in them runs). Raises StoreError when a bundle is missing from it.
        """
        with self._read() as session:
            proj = _lookup.project(session, project)
            states = []
            for ref in (a, b):
                name, _, number = ref.partition("@")
                if number and not number.isdigit():
                    raise InvalidInput(f"'{ref}' is neither ENVIRONMENT nor ENVIRONMENT@REVISION")
                environment = _lookup.environment(session, proj, name)
                _, state = _state.read_revision(
                    session, environment, int(number) if number else None
                )
                states.append(state)
            digests = {
                name: (states[1].entries[name].version.digest, entry.version.digest)
                for name, entry in states[0].entries.items()
                if name in states[1].entries
            }
        found = _state.diff(a, b, states[0], states[1])
        components = []
        for change in found.components:
            if "version" in change.change.split(", "):
                old, new = digests[change.name]
                files = genai_changes(
                    self.store,
                    old,
                    new,
                    f"{b} {change.b_version}",
                    f"{a} {change.a_version}",
                )
                change = dataclasses.replace(change, files=files)
            components.append(change)
        return dataclasses.replace(found, components=components)
