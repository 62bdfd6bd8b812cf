"""Finding registry rows by name, with errors that list what does exist.

Every function takes the caller's session; ``lock=True`` reads the row with
``SELECT … FOR UPDATE`` (PostgreSQL; SQLite's BEGIN IMMEDIATE already serializes writers).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ..errors import InvalidInput, NotFound
from ._rows import ComponentRow, ComponentVersionRow, DefaultVersionRow, EnvironmentRow, ProjectRow

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # used with fullmatch: no trailing \n
TAG = re.compile(r"^v([1-9][0-9]*)$")
T = TypeVar("T")


def now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


def check_name(kind: str, name: str) -> str:
    """``name``, or InvalidInput saying which characters a ``kind`` name may use."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(
            f"{kind} name {name!r} is not allowed: use letters, digits, '_', '.', '-' "
            "(at most 63, starting with a letter or digit)"
        )
    return name


# A pipeline version as ``Pipeline`` accepts it (1.2.0, 2.0rc1). A registered bundle's
# version reaches file names, so one from a hand-made metadata.json is checked again here.
BUNDLE_VERSION = re.compile(r"[0-9]+(\.[0-9]+){0,3}([a-z][a-z0-9]*)?")


def check_bundle_version(version: str) -> str:
    """``version``, or InvalidInput when it is not a pipeline version (such as ``1.2.0``)."""
    if not isinstance(version, str) or not BUNDLE_VERSION.fullmatch(version):
        raise InvalidInput(
            f"bundle version {version!r} is not allowed: use a pipeline version such as 1.2.0"
        )
    return version


def listing(names: Sequence[str]) -> str:
    """``a, b, c`` for an error message, or ``none``."""
    return ", ".join(names) if names else "none"


def a(kind: str) -> str:
    """``an app``, ``a model``: a component kind with its article, for messages."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind}"


def tag_number(tag: str | None) -> int:
    """N of a tag ``vN``; 0 for a candidate (no tag)."""
    match = TAG.match(tag or "")
    return int(match.group(1)) if match else 0


def one(session: Session, query: Select[T], lock: bool) -> T | None:
    """The single row ``query`` finds, or None; locked (and re-read) when ``lock``."""
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.execute(query).scalar_one_or_none()


def project(session: Session, name: str, lock: bool = False) -> ProjectRow:
    """A project by name; NotFound listing the projects."""
    found = one(session, select(ProjectRow).where(ProjectRow.name == name), lock)
    if found is None:
        names = session.execute(select(ProjectRow.name).order_by(ProjectRow.name)).scalars().all()
        raise NotFound(f"project '{name}' does not exist (projects: {listing(names)})")
    return found


def environment(
    session: Session, project: ProjectRow, name: str, lock: bool = False
) -> EnvironmentRow:
    """An environment of ``project`` by name; NotFound listing its environments."""
    query = select(EnvironmentRow).where(
        EnvironmentRow.project_id == project.id, EnvironmentRow.name == name
    )
    found = one(session, query, lock)
    if found is None:
        names = environment_names(session, project)
        raise NotFound(
            f"project '{project.name}' has no environment '{name}' (environments: {listing(names)})"
        )
    return found


def environment_names_by_id(session: Session, project: ProjectRow) -> dict[int, str]:
    """``{id: name}`` of the project's environments."""
    query = select(EnvironmentRow.id, EnvironmentRow.name).where(
        EnvironmentRow.project_id == project.id
    )
    return {row.id: row.name for row in session.execute(query)}


def environment_names(session: Session, project: ProjectRow) -> list[str]:
    """The project's environment names, in creation order."""
    query = select(EnvironmentRow.name).where(EnvironmentRow.project_id == project.id)
    return list(session.execute(query.order_by(EnvironmentRow.id)).scalars())


def component(session: Session, project: ProjectRow, name: str, lock: bool = False) -> ComponentRow:
    """A component (model or app) of ``project`` by name; NotFound listing what it has."""
    query = select(ComponentRow).where(
        ComponentRow.project_id == project.id, ComponentRow.name == name
    )
    found = one(session, query, lock)
    if found is None:
        rows = session.execute(
            select(ComponentRow.name, ComponentRow.kind)
            .where(ComponentRow.project_id == project.id)
            .order_by(ComponentRow.name)
        ).all()
        models = [row.name for row in rows if row.kind == "model"]
        apps = [row.name for row in rows if row.kind != "model"]
        if apps:
            raise NotFound(
                f"project '{project.name}' has no model or app '{name}' "
                f"(models: {listing(models)}; apps: {listing(apps)})"
            )
        raise NotFound(
            f"project '{project.name}' has no model '{name}' (models: {listing(models)})"
        )
    return found


def versions(session: Session, component: ComponentRow) -> list[ComponentVersionRow]:
    """Every version of a component, oldest first."""
    query = select(ComponentVersionRow).where(ComponentVersionRow.component_id == component.id)
    return list(session.execute(query.order_by(ComponentVersionRow.number)).scalars())


def version(
    session: Session, component: ComponentRow, ref: str | int | None
) -> ComponentVersionRow:
    """A version by tag (``v2``), by version id (``3`` or 3), or the default (None).

    Raises InvalidInput for anything else, NotFound listing the tags and candidates.
    """
    known = versions(session, component)
    if ref is None:
        default = default_version(session, component, known)
        if default is None:
            raise NotFound(
                f"{component.kind} '{component.name}' has no tagged version to use by default: "
                f"tag one (shipyard {component.kind} tag) or name a version"
            )
        return default
    if isinstance(ref, str) and ref.strip().isdigit():
        ref = int(ref)
    if isinstance(ref, bool) or not isinstance(ref, int | str):
        raise InvalidInput(f"version {ref!r} is neither a tag like v2 nor a version id")
    if isinstance(ref, str) and not TAG.match(ref):
        raise InvalidInput(f"version '{ref}' is neither a tag like v2 nor a version id")
    for candidate in known:
        if candidate.number == ref or (candidate.tag is not None and candidate.tag == ref):
            return candidate
    tags = [v.tag for v in known if v.tag]
    candidates = [str(v.number) for v in known if v.tag is None]
    raise NotFound(
        f"{component.kind} '{component.name}' has no version {ref} "
        f"(tags: {listing(tags)}; candidates: {listing(candidates)})"
    )


def default_version(
    session: Session, component: ComponentRow, known: Sequence[ComponentVersionRow]
) -> ComponentVersionRow | None:
    """The version chosen with set-default, else the newest tagged one, else None."""
    pinned = session.get(DefaultVersionRow, component.id)
    if pinned is not None:
        return next(v for v in known if v.id == pinned.component_version_id)
    tagged = [v for v in known if v.tag is not None]
    return max(tagged, key=lambda v: tag_number(v.tag)) if tagged else None
