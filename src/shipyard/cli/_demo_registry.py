"""The registry half of ``shipyard demo``: register, promote, release again, roll back, audit.

It runs on a fresh embedded registry in ``<workdir>/.shipyard`` (never on the registry the
environment points at), and prints, before each step, the command that does the same.
"""

from __future__ import annotations

import getpass
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..demo_pipeline import decision, reference
from ..errors import ShipyardError
from ..pipeline import Pipeline, rule
from ..registry import AuditBroken, LocalStore, Registry, create_engine, migrate
from ._output import console, plain
from ._views import (
    diff_view,
    history_view,
    revision_line,
    setting_line,
    status_view,
    version_line,
)

PROJECT = "demo"
CHAIN = ("integration", "uat", "production")


@contextmanager
def _public_key(path: Path) -> Iterator[None]:
    """Make registration require the demo key's signature (SHIPYARD_PUBLIC_KEY), then restore."""
    before = os.environ.get("SHIPYARD_PUBLIC_KEY")
    os.environ["SHIPYARD_PUBLIC_KEY"] = str(path.resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SHIPYARD_PUBLIC_KEY", None)
        else:
            os.environ["SHIPYARD_PUBLIC_KEY"] = before


def _step(title: str) -> None:
    console.rule(f"[bold]{title}")


def _line(text: str) -> None:
    """One line of output, never wrapped (it may be a command to copy)."""
    console.print(text, soft_wrap=True)


def _command(text: str) -> None:
    _line(f"[dim]$ shipyard {text}[/]")


def second_version(pipeline: Pipeline) -> Pipeline:
    """The same pipeline as 1.1.0, referring tumours from a lower probability (0.4, not 0.5)."""
    lower = rule(params={**decision.params, "refer_above": 0.4})(decision.function)
    nodes = [lower if n.name == "decision" else n for n in pipeline.nodes.values()]
    return Pipeline(
        pipeline.name,
        "1.1.0",
        inputs=pipeline.inputs,
        nodes=nodes,
        outputs=pipeline.outputs,
        target=pipeline.target,
        description=pipeline.description,
        groups=pipeline.groups,
        permissible_purpose=pipeline.permissible_purpose,
        tags=pipeline.tags,
    )


def _registry(home: Path) -> Registry:
    """A fresh embedded registry in ``home`` (whatever was there is removed first)."""
    shutil.rmtree(home, ignore_errors=True)
    engine = create_engine(f"sqlite:///{(home / 'registry.db').resolve()}")
    migrate(engine)
    actor = os.environ.get("SHIPYARD_USER") or getpass.getuser()
    return Registry(engine, LocalStore(home / "artifacts"), actor)


def _promote(registry: Registry, env: str) -> Any:
    """Promote ``env``; returns the new revision of the environment it promotes to."""
    _command(f"env promote {env} --project {PROJECT} --yes")
    revision = plain(registry.promote(PROJECT, env))
    _line(f"promoted {env} -> {revision_line(revision)}")
    return revision


def _release(registry: Registry, bundle: Path) -> Any:
    """Register, tag and deploy a bundle to integration; returns the tagged version."""
    _command(f"model register {bundle} --project {PROJECT}")
    version = plain(registry.register_model(PROJECT, bundle))
    _line(f"registered {version_line(version)}")
    _command(f"model tag {version['model']} {version['version_id']} --project {PROJECT}")
    tagged = plain(registry.tag(PROJECT, version["model"], version["version_id"]))
    _line(f"tagged {version_line(tagged)}")
    _command(f"component add {version['model']} --env integration --project {PROJECT}")
    added = registry.add_component(PROJECT, "integration", version["model"])
    _line(f"added: {revision_line(plain(added))}")
    return tagged


def run(workdir: Path, pipeline: Pipeline, bundle: Path, sign_key: Path, public: Path) -> None:
    """Steps 5 to 9 of the demo, on a fresh registry in ``workdir/.shipyard``."""
    home = workdir / ".shipyard"
    _step("5. register the bundle and deploy it to integration")
    _line(f"embedded registry: {home} (SQLite + local artifact store, made fresh)")
    with _registry(home) as registry, _public_key(public):
        _command(f"project create {PROJECT}")
        project = plain(registry.create_project(PROJECT, CHAIN))
        _line(f"created project {PROJECT}: {' -> '.join(project['environments'])}")
        first = _release(registry, bundle)
        _command(f"env challenger create integration-pr-1 --from integration -p {PROJECT}")
        challenger = plain(registry.create_challenger(PROJECT, "integration-pr-1", "integration"))
        _line(
            f"created challenger {challenger['name']}: a full copy of integration to try a "
            f"change on, which promotes back into {challenger['promotes_to']}"
        )

        _step("6. promote integration -> uat -> production")
        _command(f"env settings set replicas 3 --project {PROJECT} --env production")
        setting = registry.set_setting("replicas", "3", PROJECT, "production")
        _line(f"set {setting_line(plain(setting))}: production's own, kept on promotion")
        _promote(registry, "integration")
        released = _promote(registry, "uat")["number"]
        for env in CHAIN:
            _command(f"env status {env} --project {PROJECT}")
            console.print(status_view(plain(registry.status(PROJECT, env))))

        _step("7. release 1.1.0 (refer from p > 0.4) and promote it")
        bundle_2 = second_version(pipeline).export(
            bundle.parent, reference=reference(), sign_key=sign_key
        )
        second = _release(registry, bundle_2)
        _promote(registry, "integration")
        _promote(registry, "uat")
        before = f"production@{released}"
        _command(f"env diff {before} production --project {PROJECT}")
        console.print(diff_view(plain(registry.diff(PROJECT, before, "production"))))

        _step(f"8. roll production back from {second['tag']} to {first['tag']}")
        _command(f"env rollback production --project {PROJECT} --yes")
        rolled = plain(registry.rollback(PROJECT, "production"))
        _line(f"rolled back: {revision_line(rolled)}")
        _command(f"env history production --project {PROJECT}")
        console.print(history_view(plain(registry.history(PROJECT, "production"))))

        _step("9. verify the audit log, then tamper with a copy of it")
        _command("audit verify")
        report = plain(registry.audit_verify())
        _line(
            f"[green]audit log OK[/]: {report['events']} events, hash chain intact, "
            f"head {report['head_hash'][:16]}…"
        )
    _tamper_with_a_copy(home)


def _tamper_with_a_copy(home: Path) -> None:
    """Edit one audit event in a copy of the database and show that verification names it."""
    copy = home / "tampered-copy.db"
    with sqlite3.connect(home / "registry.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)
        target.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = 7")
    _line(f"edited event 7 (its actor) in {copy} with plain SQL")
    engine = create_engine(f"sqlite:///{copy.resolve()}")
    try:
        Registry(engine, LocalStore(home / "artifacts"), "demo").audit_verify()
    except AuditBroken as exc:
        _line(f"[red]audit verify on the copy fails[/]: {exc}")
    else:
        raise ShipyardError("the audit log did not notice an edited event")
    finally:
        engine.dispose()
        copy.unlink()
