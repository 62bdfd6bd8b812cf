"""Models: bundles registered as candidate versions, tags, default versions, downloads."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..apps import AppBundle, bundle_kind
from ..errors import Conflict, InvalidInput, NotFound, UsageError
from ..runtime import Artifact, check_model_card, merge_model_cards, signature_key
from . import _audit, _lookup, _signing
from ._core import RegistryCore
from ._lookup import check_name, now, tag_number
from ._rows import (
    ComponentRow,
    ComponentVersionRow,
    DefaultVersionRow,
    ProjectRow,
)
from ._types import (
    Model,
    ModelVersion,
)


def _check_app_config(app_config: Any) -> None:
    if app_config is not None and not isinstance(app_config, dict):
        raise InvalidInput("app config must be a mapping")


def _check_kind(metadata: dict[str, Any], kind: str) -> None:
    """Refuse a bundle of another kind, saying which command registers it."""
    found = bundle_kind(metadata)
    if found != kind:
        what = f"{metadata.get('name')} {metadata.get('version')}"
        raise InvalidInput(
            f"{what} is {_lookup.a(found)} bundle, not {_lookup.a(kind)}: "
            f"use shipyard {found} register"
        )


class ModelsMixin(RegistryCore):
    """Models: bundles registered as candidate versions, tags, default versions, downloads."""

    def _model_version(
        self,
        project: ProjectRow,
        component: ComponentRow,
        version: ComponentVersionRow,
        default_id: int | None,
    ) -> ModelVersion:
        return ModelVersion(
            project=project.name,
            model=component.name,
            version_id=version.number,
            tag=version.tag,
            is_default=version.id == default_id,
            bundle_name=version.bundle_name,
            bundle_version=version.bundle_version,
            digest=version.digest,
            size=version.size,
            signed=version.signed,
            app_config=copy.deepcopy(version.app_config),
            created_at=_audit.utc_text(version.created_at),
            created_by=version.created_by,
            tagged_at=_audit.utc_text(version.tagged_at) if version.tagged_at else None,
            tagged_by=version.tagged_by,
            signer_key_id=version.signer_key_id,
            model_card=copy.deepcopy(version.model_card or {}),
            kind=component.kind,
        )

    def _version_info(
        self,
        session: Session,
        project: ProjectRow,
        component: ComponentRow,
        version: ComponentVersionRow,
    ) -> ModelVersion:
        default = _lookup.default_version(session, component, _lookup.versions(session, component))
        return self._model_version(project, component, version, default.id if default else None)

    def register_model(
        self,
        project: str,
        bundle_path: str | os.PathLike[str],
        app_config: dict[str, Any] | None = None,
        model_card: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Verify a bundle, store it, and add it to its model as a new candidate version.

        The model is named after the bundle's pipeline and created on first registration.
        Verification checks every file, and the signature when SHIPYARD_PUBLIC_KEY is set
        (raises the runtime's TamperedArtifact / SignatureError). Registering is allowed
        signed or not; the version records which trusted key signed it (``signed`` is
        true only for a signature that holds against a trusted or configured key), and
        the signature policy decides later where an unsigned version may go. Registering the same
        bundle again returns its existing version; a different bundle with an already
        registered pipeline version raises Conflict. ``app_config`` becomes the version's
        default app config; ``model_card`` completes the card the bundle carries (its fields
        win, approvals add up), and InvalidInput names a field that is wrong.
        """
        _check_app_config(app_config)
        try:
            given = check_model_card(model_card or {}, "the model card given")
        except UsageError as exc:
            raise InvalidInput(str(exc)) from None
        artifact = Artifact(bundle_path)
        _check_kind(artifact.metadata, "model")
        report = artifact.verify()
        metadata = artifact.metadata
        try:
            exported = check_model_card(metadata.get("model_card") or {}, "the bundle's model card")
        except UsageError as exc:
            raise InvalidInput(str(exc)) from None
        card = merge_model_cards(exported, given)
        name, version = metadata.get("name"), metadata.get("version")
        return self._add_version(
            project, "model", name, version, bundle_path, artifact, report, app_config, card
        )

    def register_app(
        self,
        project: str,
        bundle_path: str | os.PathLike[str],
        app_config: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Verify an app bundle, store it, and add it to its app as a new candidate version.

        What ``register_model`` does for a model bundle (``shipyard.apps.build_app_bundle``
        makes one): the app is named after the bundle, created on first registration;
        registering the same bundle again returns its existing version; a different bundle
        of an already registered app version raises Conflict. InvalidInput for a model
        bundle, or a name a model already has in the project; the runtime's
        TamperedArtifact / SignatureError for a bundle that fails verification.
        """
        _check_app_config(app_config)
        bundle = AppBundle(bundle_path)
        _check_kind(bundle.metadata, "app")
        report = bundle.verify()
        spec = bundle.spec  # TamperedArtifact when its shipyard-app.toml and metadata differ
        return self._add_version(
            project, "app", spec.name, spec.version, bundle_path, bundle, report, app_config, {}
        )

    def _add_version(
        self,
        project: str,
        kind: str,
        name: Any,
        bundle_version: Any,
        bundle_path: str | os.PathLike[str],
        bundle: Artifact | AppBundle,
        report: dict[str, Any],
        app_config: dict[str, Any] | None,
        card: dict[str, Any],
    ) -> ModelVersion:
        """Store a verified bundle and add it to its ``kind`` component as a candidate.

        ``name`` and ``bundle_version`` are what the bundle says (checked here); the
        component is named after it and created on first registration; the rules are
        ``register_model``'s.
        """
        check_name(kind, name)
        _lookup.check_bundle_version(bundle_version)
        # Store first: a blob without a version is harmless (content-addressed, reused on
        # retry); a version without its blob would not be.
        digest = self.store.put(bundle_path)
        size = Path(bundle_path).stat().st_size
        with self._write() as session:
            signer = signature_key(bundle.files, _signing.trusted_keys(session)[0])
            proj = _lookup.project(session, project)
            component = _lookup.one(
                session,
                select(ComponentRow).where(
                    ComponentRow.project_id == proj.id, ComponentRow.name == name
                ),
                lock=True,
            )
            if component is None:
                component = ComponentRow(project_id=proj.id, name=name, kind=kind, created_at=now())
                session.add(component)
                session.flush()
            elif component.kind != kind:
                raise Conflict(
                    f"'{name}' in project '{project}' is {_lookup.a(component.kind)}, "
                    f"not {_lookup.a(kind)}: give the {kind} another name"
                )
            versions = _lookup.versions(session, component)
            for version in versions:
                if version.digest == digest:
                    return self._version_info(session, proj, component, version)
                if version.bundle_version == bundle_version:
                    source = "pipeline" if kind == "model" else "app (in shipyard-app.toml)"
                    raise Conflict(
                        f"{name} {bundle_version} is already registered as version "
                        f"{version.tag or version.number} with different content; "
                        f"give the {source} a new version"
                    )
            version = ComponentVersionRow(
                component_id=component.id,
                number=max((v.number for v in versions), default=0) + 1,
                tag=None,
                digest=digest,
                size=size,
                bundle_name=name,
                bundle_version=bundle_version,
                signed=signer is not None or bool(report.get("signature_checked")),
                signer_key_id=signer,
                app_config=copy.deepcopy(app_config or {}),
                created_at=now(),
                created_by=self.actor,
                model_card=card,
            )
            session.add(version)
            session.flush()
            info = self._version_info(session, proj, component, version)
            after = {
                "bundle": f"{name}-{bundle_version}",
                "digest": digest,
                "signed": version.signed,
                "signer_key_id": signer,
                "signature_checked": bool(report.get("signature_checked")),
            }
            if kind == "app":
                after["build"] = bundle.metadata.get("build")
            self._record(
                session,
                f"{kind}.register",
                f"project/{project}/{kind}/{name}/version/{version.number}",
                None,
                after,
            )
            return info

    def tag(self, project: str, model: str, version_id: int | str) -> ModelVersion:
        """Tag a candidate version with the model's next ``vN``; returns the tagged version.

        Raises Conflict when the version is already tagged, NotFound when it does not exist.
        """
        with self._write() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model, lock=True)
            version = _lookup.version(session, component, version_id)
            if version.tag is not None:
                raise Conflict(
                    f"version {version.number} of '{model}' is already tagged {version.tag}"
                )
            kind = component.kind
            taken = [tag_number(v.tag) for v in _lookup.versions(session, component)]
            version.tag = f"v{max(taken, default=0) + 1}"
            version.tagged_at = now()
            version.tagged_by = self.actor
            session.flush()
            self._record(
                session,
                f"{kind}.tag",
                f"project/{project}/{kind}/{model}/version/{version.number}",
                {"tag": None},
                {"tag": version.tag},
            )
            return self._version_info(session, proj, component, version)

    def set_default(self, project: str, model: str, version: str | int | None) -> ModelVersion:
        """Make a tagged version the model's default; None returns to "the newest tag".

        Raises Conflict for a candidate (only tagged versions can be the default).
        """
        with self._write() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model, lock=True)
            versions = _lookup.versions(session, component)
            before = _lookup.default_version(session, component, versions)
            pinned_before = session.get(DefaultVersionRow, component.id) is not None
            session.execute(
                delete(DefaultVersionRow).where(DefaultVersionRow.component_id == component.id)
            )
            if version is not None:
                chosen = _lookup.version(session, component, version)
                if chosen.tag is None:
                    raise Conflict(
                        f"version {chosen.number} of '{model}' is a candidate; tag it before "
                        "making it the default"
                    )
                session.add(
                    DefaultVersionRow(
                        component_id=component.id,
                        component_version_id=chosen.id,
                        set_at=now(),
                        set_by=self.actor,
                    )
                )
            session.flush()
            after = _lookup.default_version(session, component, versions)
            if after is None:
                raise NotFound(
                    f"{component.kind} '{model}' has no tagged version to be its default"
                )
            self._record(
                session,
                f"{component.kind}.set_default",
                f"project/{project}/{component.kind}/{model}",
                {"default": before.tag if before else None, "pinned": pinned_before},
                {"default": after.tag, "pinned": version is not None},
            )
            return self._model_version(proj, component, after, after.id)

    def list_models(self, project: str) -> list[Model]:
        """The project's models with their default version and version counts."""
        return self._list_components(project, "model")

    def list_apps(self, project: str) -> list[Model]:
        """The project's apps with their default version and version counts."""
        return self._list_components(project, "app")

    def _list_components(self, project: str, kind: str) -> list[Model]:
        with self._read() as session:
            proj = _lookup.project(session, project)
            components = session.execute(
                select(ComponentRow)
                .where(ComponentRow.project_id == proj.id, ComponentRow.kind == kind)
                .order_by(ComponentRow.name)
            ).scalars()
            found = []
            for component in components:
                versions = _lookup.versions(session, component)
                default = _lookup.default_version(session, component, versions)
                found.append(
                    Model(
                        project=project,
                        name=component.name,
                        kind=component.kind,
                        default_version=default.tag if default else None,
                        versions=len(versions),
                        candidates=sum(v.tag is None for v in versions),
                        latest_bundle_version=versions[-1].bundle_version if versions else None,
                    )
                )
            return found

    def versions(self, project: str, model: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model)
            versions = _lookup.versions(session, component)
            default = _lookup.default_version(session, component, versions)
            default_id = default.id if default else None
            return [self._model_version(proj, component, v, default_id) for v in versions]

    def get_version(
        self, project: str, model: str, version: str | int | None = None
    ) -> ModelVersion:
        """One version by tag or version id (the default version when None)."""
        with self._read() as session:
            proj = _lookup.project(session, project)
            component = _lookup.component(session, proj, model)
            return self._version_info(
                session, proj, component, _lookup.version(session, component, version)
            )

    def fetch_bundle(
        self,
        project: str,
        model: str,
        version: str | int | None,
        folder: str | os.PathLike[str],
    ) -> Path:
        """Copy a version's bundle from the store into ``folder`` as ``NAME-VERSION.tar.gz``.

        The copy is verified against the stored sha256 (StoreError otherwise).
        """
        found = self.get_version(project, model, version)
        target = Path(folder) / f"{found.bundle_name}-{found.bundle_version}.tar.gz"
        return self.store.fetch(found.digest, target)
