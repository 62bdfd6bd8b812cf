"""Deployments: each render of manifests and each image build, recorded in the audit log.

A deployment record says what was made for an environment outside the registry (a
Kubernetes overlay, an InferenceService, a Compose file, a container image), from
which revision, naming which image, by whom and when. Records are audit events (action
``deployment.render`` or ``deployment.build``, object
``project/P/environment/E/deployment/TARGET``), so they sit in the hash chain with
every other change; ``list_deployments`` reads them back.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from ..errors import InvalidInput, NotFound
from . import _audit, _lookup
from ._core import RegistryCore
from ._rows import AuditEventRow, RevisionRow
from ._types import Deployment

ACTIONS = ("render", "build")
_TARGET = re.compile(r"[a-z][a-z0-9-]{0,31}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_IMAGE = 400  # an image reference: registry host, path, tag and digest


def _prefix(project: str, env: str) -> str:
    return f"project/{project}/environment/{env}/deployment/"


def _deployment(project: str, env: str, event: AuditEventRow) -> Deployment:
    after = event.after or {}
    return Deployment(
        project=project,
        environment=env,
        action=event.action.removeprefix("deployment."),
        target=str(after.get("target")),
        revision=int(after.get("revision", 0)),
        image=str(after.get("image")),
        digest=after.get("digest"),
        at=_audit.utc_text(event.at),
        actor=event.actor,
        audit_event=event.id,
    )


class DeploymentsMixin(RegistryCore):
    """Each render of manifests and each image build, recorded in the audit log."""

    def record_deployment(
        self,
        project: str,
        env: str,
        action: str,
        target: str,
        revision: int,
        image: str,
        digest: str | None = None,
    ) -> Deployment:
        """Record that ``target``'s deployment of ``env`` revision ``revision`` was made.

        ``action`` is ``render`` (manifests written; ``digest`` the sha256 of the files)
        or ``build`` (an image built; ``digest`` the image's). ``image`` is the image
        reference the deployment runs. Raises NotFound for an unknown project,
        environment or revision, InvalidInput naming a malformed field.
        """
        if action not in ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
        if not isinstance(target, str) or not _TARGET.fullmatch(target):
            raise InvalidInput(
                f"target {target!r} is not allowed: lower-case letters, digits and '-' "
                "(at most 32, starting with a letter)"
            )
        if not isinstance(image, str) or not image.strip() or len(image) > MAX_IMAGE:
            raise InvalidInput(f"image must be an image reference of 1 to {MAX_IMAGE} characters")
        if any(c.isspace() or not c.isprintable() for c in image):
            raise InvalidInput("image must not contain spaces or control characters")
        if digest is not None and (not isinstance(digest, str) or not _DIGEST.fullmatch(digest)):
            raise InvalidInput("digest must read sha256:<64 hex digits>")
        with self._write() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            found = session.execute(
                select(RevisionRow.id).where(
                    RevisionRow.environment_id == environment.id, RevisionRow.number == revision
                )
            ).first()
            if found is None:
                raise NotFound(f"environment '{env}' has no revision {revision}")
            after = {"target": target, "revision": revision, "image": image, "digest": digest}
            where = _prefix(project, env) + target
            event = _audit.append(session, self.actor, f"deployment.{action}", where, None, after)
            return _deployment(project, env, event)

    def list_deployments(self, project: str, env: str) -> list[Deployment]:
        """The newest render and build of each target for ``env``, by target then action.

        Only records made since the environment was created count (an environment of the
        same name deleted before leaves its records in the audit log, not here).
        Raises NotFound for an unknown project or environment.
        """
        with self._read() as session:
            proj = _lookup.project(session, project)
            environment = _lookup.environment(session, proj, env)
            events = session.execute(
                select(AuditEventRow)
                .where(
                    AuditEventRow.object.startswith(_prefix(project, env), autoescape=True),
                    AuditEventRow.action.in_([f"deployment.{a}" for a in ACTIONS]),
                )
                .order_by(AuditEventRow.id.desc())
            ).scalars()
            since = _audit.utc_text(environment.created_at)
            newest: dict[tuple[str, str], Deployment] = {}
            for event in events:
                if _audit.utc_text(event.at) < since:
                    break  # newest first: the rest are older still
                record = _deployment(project, env, event)
                newest.setdefault((record.target, record.action), record)
            return [newest[key] for key in sorted(newest)]
