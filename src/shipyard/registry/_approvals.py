"""Four-eyes changes: a promotion or rollback into an environment that needs approval.

An environment whose ``approvals_required`` setting (admin only, inherited) is above 0
takes no promotion or rollback directly. The request is recorded as a pending change
request instead. It applies, in one transaction with the approval that completes it,
once that many people other than the requester, each with the deployer role, have
approved it. A request applies only onto the revision it was asked against: if the
environment changed in between, it is marked stale and nothing is applied, so what
people approved is what happens. Every request, approval and rejection is audited.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import ApprovalRequired, Conflict, NotFound, PermissionDenied
from . import _audit, _lookup, _settings, _state
from ._core import RegistryCore
from ._lookup import now
from ._rows import ChangeApprovalRow, ChangeRequestRow, EnvironmentRow, ProjectRow, RevisionRow
from ._state import State
from ._types import Approval, ChangeRequest

Mutation = Callable[[RevisionRow, State], tuple[State, str]]


def promotion(source: str, number: int, source_state: State, note: str = "") -> Mutation:
    """The change a promotion makes: the target takes the source's components."""

    def mutate(_: RevisionRow, state: State) -> tuple[State, str]:
        state.entries = source_state.copy().entries
        return state, f"promote from {source} (its revision {number}){note}"

    return mutate


def rollback_target(
    session: Session, environment: EnvironmentRow, current: RevisionRow, to: int | None
) -> int:
    """The revision a rollback restores (default: the one before ``current``)."""
    number = current.number - 1 if to is None else to
    if number < 1:
        raise Conflict(f"environment '{environment.name}' has no revision before {current.number}")
    _state.read_revision(session, environment, number)  # NotFound for an unknown one
    return number


def rollback(
    session: Session,
    environment: EnvironmentRow,
    to: int | None,
    allow_empty: bool,
    note: str = "",
) -> Mutation:
    """The change a rollback makes: the environment takes revision ``to`` again."""

    def mutate(current: RevisionRow, current_state: State) -> tuple[State, str]:
        number = rollback_target(session, environment, current, to)
        restored = _state.read_revision(session, environment, number)[1]
        if not restored.entries and current_state.entries and not allow_empty:
            held = ", ".join(sorted(current_state.entries))
            raise Conflict(
                f"rolling '{environment.name}' back to revision {number} would remove every "
                f"component ({held}): revision {number} held none. Give --to an "
                "earlier revision, or allow_empty (--allow-empty) to take them offline"
            )
        return restored, f"rollback to revision {number}{note}"

    return mutate


class ApprovalsMixin(RegistryCore):
    """Change requests: asked for by promote and rollback, approved or rejected by others."""

    def _approvals_required(self, session: Session, proj: ProjectRow, env: EnvironmentRow) -> int:
        levels = _settings.chain(proj.id, env.id)
        values = _settings.values_at(session, [key for _, key in levels])
        return int(_settings.effective("approvals_required", levels, values).value)

    def _ask(
        self,
        session: Session,
        proj: ProjectRow,
        env: EnvironmentRow,
        action: str,
        required: int,
        *,
        source: str | None = None,
        source_revision: int | None = None,
        to_revision: int | None = None,
        allow_empty: bool = False,
    ) -> ApprovalRequired:
        """Record a pending change request; the error that tells the caller about it."""
        base = _state.read_revision(session, env)[0].number
        row = ChangeRequestRow(
            environment_id=env.id,
            action=action,
            source_environment=source,
            source_revision=source_revision,
            to_revision=to_revision,
            allow_empty=allow_empty,
            base_revision=base,
            approvals_required=required,
            state="pending",
            requested_at=now(),
            requested_by=self.actor,
            note="",
        )
        session.add(row)
        session.flush()
        what = (
            f"promote {source} (revision {source_revision}) into {env.name}"
            if action == "promote"
            else f"roll {env.name} back to revision {to_revision}"
        )
        self._record(
            session,
            "change.request",
            f"project/{proj.name}/environment/{env.name}/change/{row.id}",
            None,
            {"change": what, "base_revision": base, "approvals_required": required},
        )
        one = required == 1
        approvals = "approval" if one else "approvals"
        who = "person other than {} approves" if one else "people other than {} approve"
        return ApprovalRequired(
            f"environment '{env.name}' needs {required} {approvals} for every change: "
            f"change request {row.id} ({what}) is pending until {required} "
            f"{who.format(self.actor)} it (shipyard env approve {row.id})",
            row.id,
            env.name,
        )

    def _request_row(
        self, session: Session, proj: ProjectRow, request_id: int, lock: bool = False
    ) -> tuple[ChangeRequestRow, EnvironmentRow]:
        query = (
            select(ChangeRequestRow, EnvironmentRow)
            .join(EnvironmentRow, EnvironmentRow.id == ChangeRequestRow.environment_id)
            .where(ChangeRequestRow.id == request_id, EnvironmentRow.project_id == proj.id)
        )
        if lock:
            query = query.with_for_update(of=ChangeRequestRow)
        found = session.execute(query).first()
        if found is None:
            raise NotFound(f"project '{proj.name}' has no change request {request_id}")
        return found[0], found[1]

    def _request_info(
        self, session: Session, proj: ProjectRow, row: ChangeRequestRow, env: EnvironmentRow
    ) -> ChangeRequest:
        approvals = session.execute(
            select(ChangeApprovalRow)
            .where(ChangeApprovalRow.request_id == row.id)
            .order_by(ChangeApprovalRow.id)
        ).scalars()
        return ChangeRequest(
            id=row.id,
            project=proj.name,
            environment=env.name,
            action=row.action,
            source=row.source_environment,
            source_revision=row.source_revision,
            to_revision=row.to_revision,
            allow_empty=row.allow_empty,
            base_revision=row.base_revision,
            state=row.state,
            approvals_required=row.approvals_required,
            approvals=[Approval(a.actor, _audit.utc_text(a.at)) for a in approvals],
            requested_by=row.requested_by,
            requested_at=_audit.utc_text(row.requested_at),
            decided_by=row.decided_by,
            decided_at=_audit.utc_text(row.decided_at) if row.decided_at else None,
            note=row.note,
            result_revision=row.result_revision,
        )

    def list_change_requests(
        self, project: str, env: str | None = None, state: str | None = None
    ) -> list[ChangeRequest]:
        """The project's change requests (of one environment, in one state), newest first."""
        if state is not None and state not in ("pending", "applied", "rejected", "stale"):
            raise Conflict(f"unknown state {state!r} (pending, applied, rejected, stale)")
        with self._read() as session:
            proj = _lookup.project(session, project)
            query = (
                select(ChangeRequestRow, EnvironmentRow)
                .join(EnvironmentRow, EnvironmentRow.id == ChangeRequestRow.environment_id)
                .where(EnvironmentRow.project_id == proj.id)
                .order_by(ChangeRequestRow.id.desc())
            )
            if env is not None:
                query = query.where(EnvironmentRow.id == _lookup.environment(session, proj, env).id)
            if state is not None:
                query = query.where(ChangeRequestRow.state == state)
            return [self._request_info(session, proj, r, e) for r, e in session.execute(query)]

    def get_change_request(self, project: str, request_id: int) -> ChangeRequest:
        """One change request with its approvals."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            return self._request_info(session, proj, *self._request_row(session, proj, request_id))

    def approve_change(self, project: str, request_id: int) -> ChangeRequest:
        """Approve a pending change request; the last approval needed applies it.

        Needs the deployer role, and a person other than the requester (each approves
        once). The change applies in this transaction; if the environment changed since
        the request, the request becomes ``stale`` and nothing is applied. Raises
        Conflict for a request that is not pending, PermissionDenied for one's own
        request, and the change's own errors (the signature policy, say), which leave
        the request pending and the approval unrecorded.
        """
        self._require_role("deployer", "approving a change request")
        applied = False
        with self._write() as session:
            proj = _lookup.project(session, project)
            row, env = self._request_row(session, proj, request_id, lock=True)
            if row.state != "pending":
                raise Conflict(f"change request {request_id} is {row.state}, not pending")
            if row.requested_by == self.actor:
                raise PermissionDenied(
                    f"{self.actor} asked for change request {request_id} and cannot approve it: "
                    "another person must"
                )
            approvers = list(
                session.execute(
                    select(ChangeApprovalRow.actor).where(ChangeApprovalRow.request_id == row.id)
                ).scalars()
            )
            if self.actor in approvers:
                raise Conflict(f"{self.actor} has already approved change request {request_id}")
            session.add(ChangeApprovalRow(request_id=row.id, actor=self.actor, at=now()))
            where = f"project/{proj.name}/environment/{env.name}/change/{row.id}"
            self._record(session, "change.approve", where, None, {"by": self.actor})
            approvers.append(self.actor)
            if len(approvers) >= row.approvals_required:
                current = _state.read_revision(session, env)[0].number
                if current != row.base_revision:
                    row.state, row.decided_at, row.decided_by = "stale", now(), self.actor
                    row.note = (
                        f"{env.name} is at revision {current}, not {row.base_revision} as when "
                        "it was asked for: nothing applied; ask again"
                    )
                    self._record(session, "change.stale", where, None, {"note": row.note})
                else:
                    note = (
                        f"; change request {row.id} by {row.requested_by}, "
                        f"approved by {', '.join(approvers)}"
                    )
                    revision = self._change(
                        session,
                        proj,
                        env,
                        f"environment.{row.action}",
                        self._mutation(session, proj, row, env, note),
                    )
                    row.state, row.decided_at, row.decided_by = "applied", now(), self.actor
                    row.result_revision = revision.number
                    applied = True
            session.flush()
            info = self._request_info(session, proj, row, env)
        if applied:
            self._anchor()
        return info

    def _mutation(
        self,
        session: Session,
        proj: ProjectRow,
        row: ChangeRequestRow,
        env: EnvironmentRow,
        note: str,
    ) -> Mutation:
        if row.action == "rollback":
            return rollback(session, env, row.to_revision, row.allow_empty, note)
        assert row.source_environment is not None and row.source_revision is not None
        source = _lookup.environment(session, proj, row.source_environment)
        state = _state.read_revision(session, source, row.source_revision)[1]
        return promotion(row.source_environment, row.source_revision, state, note)

    def reject_change(self, project: str, request_id: int, reason: str = "") -> ChangeRequest:
        """Reject (or, as its requester, withdraw) a pending change request; nothing applies."""
        self._require_role("deployer", "rejecting a change request")
        with self._write() as session:
            proj = _lookup.project(session, project)
            row, env = self._request_row(session, proj, request_id, lock=True)
            if row.state != "pending":
                raise Conflict(f"change request {request_id} is {row.state}, not pending")
            row.state, row.decided_at, row.decided_by = "rejected", now(), self.actor
            row.note = reason
            self._record(
                session,
                "change.reject",
                f"project/{proj.name}/environment/{env.name}/change/{row.id}",
                {"state": "pending"},
                {"state": "rejected", "reason": reason},
            )
            session.flush()
            return self._request_info(session, proj, row, env)
