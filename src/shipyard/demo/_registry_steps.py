"""The registry half of ``shipyard demo``: register, promote, release again, roll back, audit.

It runs on a fresh embedded registry in ``<workdir>/.shipyard`` (never on the registry the
environment points at), and prints, before each step, the command that does the same.
Production needs one approval (``approvals_required`` 1): each promotion or rollback into
it is a change request, which a second person, the reviewer, approves.
"""

from __future__ import annotations

import getpass
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ApprovalRequired, PermissionDenied, ShipyardError, SignatureRequired
from ..pipeline import Pipeline, rule
from ..registry import (
    AuditBroken,
    FolderWitness,
    LocalStore,
    Registry,
    create_engine,
    migrate,
    open_witness,
    to_json,
)
from ._display import Display
from ._pipeline import decision, reference

PROJECT = "demo"
CHAIN = ("integration", "uat", "production")
REVIEWER = "reviewer"  # the second person, who approves what reaches production


def second_version(pipeline: Pipeline, version: str = "1.1.0") -> Pipeline:
    """The same pipeline as ``version``, referring tumours from a lower probability (0.4)."""
    lower = rule(params={**decision.params, "refer_above": 0.4})(decision.function)
    nodes = [lower if n.name == "decision" else n for n in pipeline.nodes.values()]
    return Pipeline(
        pipeline.name,
        version,
        inputs=pipeline.inputs,
        nodes=nodes,
        outputs=pipeline.outputs,
        target=pipeline.target,
        description=pipeline.description,
        groups=pipeline.groups,
        permissible_purpose=pipeline.permissible_purpose,
        tags=pipeline.tags,
    )


def demo_registry(home: Path, fresh: bool = False) -> Registry:
    """The demo's embedded registry in ``home``, acting as you (``$SHIPYARD_USER`` or your
    login), anchoring the audit head in ``home/anchors``; ``fresh``: whatever was in
    ``home`` is removed first and the registry made anew."""
    if fresh:
        shutil.rmtree(home, ignore_errors=True)
    engine = create_engine(f"sqlite:///{(home / 'registry.db').resolve()}")
    migrate(engine)
    actor = os.environ.get("SHIPYARD_USER") or getpass.getuser()
    witness = FolderWitness(home / "anchors")
    return Registry(engine, LocalStore(home / "artifacts"), actor, witness=witness)


class Narrator:
    """Prints each step, and the command a user would type before each registry operation."""

    def __init__(self, display: Display) -> None:
        self.console = display.console
        self.views = display.views

    def step(self, title: str) -> None:
        self.console.rule(f"[bold]{title}")

    def line(self, text: str) -> None:
        """One line of output, never wrapped (it may be a command to copy)."""
        self.console.print(text, soft_wrap=True)

    def command(self, text: str, actor: str | None = None) -> None:
        """``$ shipyard TEXT``; ``actor``: typed as that person (``SHIPYARD_USER=actor``)."""
        who = f"SHIPYARD_USER={actor} " if actor else ""
        self.line(f"[dim]$ {who}shipyard {text}[/]")

    def promote(self, registry: Registry, env: str, own_approval: bool = False) -> Any:
        """Promote ``env``; returns the new revision of the environment it promotes to.

        Into an environment that needs approval, the promotion is a change request that
        the reviewer approves (see ``approve``; ``own_approval`` as there).
        """
        self.command(f"env promote {env} --project {PROJECT} --yes")
        try:
            revision = to_json(registry.promote(PROJECT, env))
        except ApprovalRequired as pending:
            self.line(f"pending: {pending}")
            return self.approve(registry, pending, own_approval)
        self.line(f"promoted {env} -> {self.views.revision(revision)}")
        return revision

    def rollback(self, registry: Registry, env: str) -> Any:
        """Roll ``env`` back one revision (through the reviewer's approval where it needs
        one); returns the new revision."""
        self.command(f"env rollback {env} --project {PROJECT} --yes")
        try:
            revision = to_json(registry.rollback(PROJECT, env))
        except ApprovalRequired as pending:
            self.line(f"pending: {pending}")
            return self.approve(registry, pending)
        self.line(f"rolled back: {self.views.revision(revision)}")
        return revision

    def reviewer(self, registry: Registry) -> Registry:
        """The same registry (same database) acting as the reviewer, a deployer who is
        not the requester."""
        name = REVIEWER if registry.actor != REVIEWER else f"{REVIEWER}-2"
        return registry.with_actor(name, "deployer")

    def approve(self, registry: Registry, pending: ApprovalRequired, own: bool = False) -> Any:
        """Have the reviewer approve change request ``pending``; returns the revision it made.

        ``own``: first show that the requester (``registry``'s actor) cannot approve it.
        Raises the change's own errors (SignatureRequired, say), which leave the request
        pending, and ShipyardError when the approval did not apply it (more approvals
        needed, or the target changed since the request).
        """
        request = pending.change_request
        if own:
            self.command(f"env approve {request} --project {PROJECT}")
            try:
                registry.approve_change(PROJECT, request)
            except PermissionDenied as exc:
                self.line(f"[red]refused[/]: {exc}")
            else:
                raise ShipyardError(f"{registry.actor} approved their own change request")
        reviewer = self.reviewer(registry)
        self.command(f"env approve {request} --project {PROJECT}", reviewer.actor)
        decided = to_json(reviewer.approve_change(PROJECT, request))
        self.line(self.views.change(decided))
        if decided["state"] != "applied":
            raise ShipyardError(
                f"change request {request} is {decided['state']} after {reviewer.actor}'s "
                f"approval, not applied: {pending.environment} did not change"
            )
        number = decided["result_revision"]
        return to_json(registry.get_revision(PROJECT, pending.environment, number))

    def release(self, registry: Registry, bundle: Path) -> Any:
        """Register, tag and deploy a bundle to integration; returns the tagged version."""
        views = self.views
        self.command(f"model register {bundle} --project {PROJECT}")
        version = to_json(registry.register_model(PROJECT, bundle))
        self.line(f"registered {views.version(version)}")
        self.command(f"model tag {version['model']} {version['version_id']} --project {PROJECT}")
        tagged = to_json(registry.tag(PROJECT, version["model"], version["version_id"]))
        self.line(f"tagged {views.version(tagged)}")
        self.command(f"component add {version['model']} --env integration --project {PROJECT}")
        added = registry.add_component(PROJECT, "integration", version["model"])
        self.line(f"added: {views.revision(to_json(added))}")
        return tagged


def run(
    workdir: Path, pipeline: Pipeline, bundle: Path, keys: tuple[Path, Path], display: Display
) -> None:
    """Steps 5 to 10 of the demo, on a fresh registry in ``workdir/.shipyard``.

    ``keys`` is the (private, public) key pair: the registry trusts the public key, so
    production (which requires signatures) takes what the private key signed, and refuses
    an unsigned bundle. Production needs one approval: each promotion or rollback into it
    waits as a change request until the reviewer (a second registry object on the same
    database, acting as another person) approves it. Promotions, rollbacks and the
    approvals that apply them anchor the audit head in ``.shipyard/anchors``.
    """
    sign_key, public = keys
    home = workdir / ".shipyard"
    say, views = Narrator(display), display.views
    say.step("5. register the bundle and deploy it to integration")
    say.line(f"embedded registry: {home} (SQLite + local artifact store, made fresh)")
    with demo_registry(home, fresh=True) as registry:
        say.command(f"key trust {public} --name demo-release")
        trusted = to_json(registry.trust_key("demo-release", public.read_text()))
        say.line(
            f"trusted key demo-release ({trusted['key_id']}): production takes only bundles "
            "a trusted key signed (setting require_signature)"
        )
        say.command(f"project create {PROJECT}")
        project = to_json(registry.create_project(PROJECT, CHAIN))
        say.line(f"created project {PROJECT}: {' -> '.join(project['environments'])}")
        say.command(f"env settings set approvals_required 1 --project {PROJECT} --env production")
        approvals = registry.set_setting("approvals_required", "1", PROJECT, "production")
        say.line(
            f"set {views.setting(to_json(approvals))}: every promotion or rollback into "
            f"production waits for a second person's approval (here: {REVIEWER})"
        )
        first = say.release(registry, bundle)
        say.command(f"env challenger create integration-pr-1 --from integration -p {PROJECT}")
        challenger = to_json(registry.create_challenger(PROJECT, "integration-pr-1", "integration"))
        say.line(
            f"created challenger {challenger['name']}: a full copy of integration to try a "
            f"change on, which promotes back into {challenger['promotes_to']}"
        )

        say.step("6. promote integration -> uat -> production")
        say.command(f"env settings set replicas 3 --project {PROJECT} --env production")
        setting = registry.set_setting("replicas", "3", PROJECT, "production")
        say.line(f"set {views.setting(to_json(setting))}: production's own, kept on promotion")
        say.promote(registry, "integration")
        released = say.promote(registry, "uat", own_approval=True)["number"]
        for env in CHAIN:
            say.command(f"env status {env} --project {PROJECT}")
            say.console.print(views.status(to_json(registry.status(PROJECT, env))))

        say.step("7. release 1.1.0 (refer from p > 0.4) and promote it")
        bundle_2 = second_version(pipeline).export(
            bundle.parent, reference=reference(), sign_key=sign_key
        )
        second = say.release(registry, bundle_2)
        say.promote(registry, "integration")
        say.promote(registry, "uat")
        before = f"production@{released}"
        say.command(f"env diff {before} production --project {PROJECT}")
        say.console.print(views.diff(to_json(registry.diff(PROJECT, before, "production"))))

        say.step("8. an unsigned 1.2.0 reaches uat, and production refuses it")
        unsigned = second_version(pipeline, "1.2.0").export(bundle.parent, reference=reference())
        say.release(registry, unsigned)
        say.promote(registry, "integration")
        say.command(f"env promote uat --project {PROJECT} --yes")
        try:
            registry.promote(PROJECT, "uat")
        except ApprovalRequired as pending:
            # The request is recorded; the signature policy is checked when it would apply.
            say.line(f"pending: {pending}")
            try:
                say.approve(registry, pending)
            except SignatureRequired as exc:
                say.line(f"[red]refused[/] at approval: {exc}")
            else:
                raise ShipyardError("production took an unsigned bundle") from None
            reviewer = say.reviewer(registry)
            reason = "unsigned: production takes only signed versions"
            request = pending.change_request
            say.command(
                f'env reject {request} --reason "{reason}" --project {PROJECT}', reviewer.actor
            )
            say.line(views.change(to_json(reviewer.reject_change(PROJECT, request, reason))))
        else:
            raise ShipyardError("production took a promotion without approval")

        say.step(f"9. roll production back from {second['tag']} to {first['tag']}")
        say.rollback(registry, "production")
        say.command(f"env history production --project {PROJECT}")
        say.console.print(views.history(to_json(registry.history(PROJECT, "production"))))

        say.step("10. verify the audit log against its anchors, then tamper with a copy")
        anchors = home / "anchors"
        say.command(f"audit verify --anchors {anchors}")
        recorded = {str(a.sequence): a.hash for a in open_witness(str(anchors)).read_all()}
        report = to_json(registry.audit_verify(anchors=recorded))
        say.line(
            f"[green]audit log OK[/]: {report['events']} events, hash chain intact, "
            f"head {report['head_hash'][:16]}…, and it matches the {len(recorded)} anchors "
            "each applied promotion and rollback wrote outside the database"
        )
    _tamper_with_a_copy(home, say.line)


def _tamper_with_a_copy(home: Path, line: Callable[[str], None]) -> None:
    """Edit one audit event in a copy of the database and show that verification names it."""
    copy = home / "tampered-copy.db"
    with sqlite3.connect(home / "registry.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)
        target.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = 7")
    line(f"edited event 7 (its actor) in {copy} with plain SQL")
    engine = create_engine(f"sqlite:///{copy.resolve()}")
    try:
        Registry(engine, LocalStore(home / "artifacts"), "demo").audit_verify()
    except AuditBroken as exc:
        line(f"[red]audit verify on the copy fails[/]: {exc}")
    else:
        raise ShipyardError("the audit log did not notice an edited event")
    finally:
        engine.dispose()
        copy.unlink()
