"""Apps in the registry: versioned components registered, tagged, deployed, promoted with
their models in one transaction, rolled back and diffed like models; never confused with them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard import Pipeline
from shipyard.apps import build_app_bundle
from shipyard.errors import (
    Conflict,
    InvalidComponentConfig,
    InvalidInput,
    NotFound,
    SignatureRequired,
    TamperedArtifact,
)
from shipyard.registry import Registry, _audit, to_json

from .._hostile_bundles import one_byte_changed, rewrite
from ..apps._folders import CREATED_AT, app_config, make_app
from .conftest import MODEL

APP = "tumour_app"
SECOND = "tumour_second"  # a second model the app calls


@pytest.fixture(scope="module")
def second_model(
    tmp_path_factory: pytest.TempPathFactory,
    demo_pipeline: Pipeline,
    demo_reference: dict[str, Any],
    key_pair: tuple[Path, Path],
) -> Path:
    """The demo pipeline under another name: a second signed model bundle."""
    copy = Pipeline(
        SECOND,
        "1.0.0",
        inputs=demo_pipeline.inputs,
        nodes=demo_pipeline.nodes.values(),
        outputs=demo_pipeline.outputs,
    )
    folder = tmp_path_factory.mktemp("second-model")
    return copy.export(folder, reference=demo_reference, sign_key=key_pair[0], backend="native")


@pytest.fixture(scope="module")
def app_bundles(
    tmp_path_factory: pytest.TempPathFactory, key_pair: tuple[Path, Path]
) -> list[Path]:
    """Two signed versions of the app (0.1.0 and 0.2.0) and an unsigned 0.3.0."""
    root = tmp_path_factory.mktemp("apps")
    made = []
    for version, key in (("0.1.0", key_pair[0]), ("0.2.0", key_pair[0]), ("0.3.0", None)):
        folder = make_app(root / version, version=version)
        made.append(build_app_bundle(folder, root / "dist", sign_key=key, created_at=CREATED_AT))
    return made


@pytest.fixture()
def shop(demo: Registry, second_model: Path, app_bundles: list[Path]) -> Registry:
    """Project demo with models tumour_triage v1-v3 and tumour_second v1, and the app at v1, v2."""
    second = demo.register_model("demo", second_model)
    demo.tag("demo", SECOND, second.version_id)
    for bundle in app_bundles[:2]:
        version = demo.register_app("demo", bundle)
        demo.tag("demo", APP, version.version_id)
    return demo


def _held(registry: Registry, env: str) -> dict[str, tuple[str, str | None]]:
    """What ``env`` holds: ``{name: (kind, tag)}``."""
    return {c.name: (c.kind, c.tag) for c in registry.list_components("demo", env)}


def _snapshot(registry: Registry, env: str) -> Any:
    """Everything a reader can see of an environment (status, every revision, its audit)."""
    return (
        to_json(registry.status("demo", env)),
        to_json(registry.history("demo", env)),
        to_json(registry.audit_list(object_prefix=f"project/demo/environment/{env}")),
    )


def test_an_app_bundle_becomes_a_candidate_then_a_tagged_version(
    registry: Registry, app_bundles: list[Path]
) -> None:
    registry.create_project("demo")
    version = registry.register_app("demo", app_bundles[0], app_config={"title": "Triage"})
    assert (version.kind, version.model, version.version_id, version.tag) == ("app", APP, 1, None)
    assert (version.bundle_name, version.bundle_version) == (APP, "0.1.0")
    assert version.signed and version.signer_key_id is not None
    assert version.app_config == {"title": "Triage"}
    # The same bundle again changes nothing; the same version with other content is refused.
    assert registry.register_app("demo", app_bundles[0]) == version
    tagged = registry.tag("demo", APP, 1)
    assert (tagged.tag, tagged.kind, tagged.is_default) == ("v1", "app", True)
    assert [v.tag for v in registry.versions("demo", APP)] == ["v1"]
    events = registry.audit_list(object_prefix="project/demo/app/")
    assert [(e.action, e.object) for e in events] == [
        ("app.tag", f"project/demo/app/{APP}/version/1"),
        ("app.register", f"project/demo/app/{APP}/version/1"),
    ]
    assert events[1].after["build"] == {"git_commit": None, "git_branch": None, "git_dirty": None}
    assert registry.list_models("demo") == []  # models are models; the app is listed as an app
    assert [(a.name, a.kind, a.default_version) for a in registry.list_apps("demo")] == [
        (APP, "app", "v1")
    ]


def test_another_bundle_under_a_registered_app_version_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    registry.create_project("demo")
    folder = make_app(tmp_path / "app")
    registry.register_app("demo", build_app_bundle(folder, tmp_path / "a", created_at=CREATED_AT))
    (folder / "app" / "main.py").write_text("app = None\n")
    changed = build_app_bundle(folder, tmp_path / "b", created_at=CREATED_AT)
    with pytest.raises(Conflict, match=r"tumour_app 0\.1\.0 is already registered .* new version"):
        registry.register_app("demo", changed)


def test_model_and_app_bundles_are_never_confused(
    registry: Registry, app_bundles: list[Path], signed_bundle: Path
) -> None:
    registry.create_project("demo")
    with pytest.raises(
        InvalidInput,
        match="tumour_app 0.1.0 is an app bundle, not a model: use shipyard app register",
    ):
        registry.register_model("demo", app_bundles[0])
    with pytest.raises(
        InvalidInput,
        match="tumour_triage 1.0.0 is a model bundle, not an app: use shipyard model register",
    ):
        registry.register_app("demo", signed_bundle)
    assert registry.audit_list(object_prefix="project/demo/") == []
    with pytest.raises(NotFound):
        registry.versions("demo", APP)


def test_an_app_cannot_take_a_models_name(
    registry: Registry, signed_bundle: Path, tmp_path: Path
) -> None:
    registry.create_project("demo")
    registry.register_model("demo", signed_bundle)
    folder = make_app(tmp_path / "app")
    (folder / "shipyard-app.toml").write_text(app_config(name=MODEL))
    bundle = build_app_bundle(folder, tmp_path / "dist", created_at=CREATED_AT)
    with pytest.raises(Conflict, match=f"'{MODEL}' in project 'demo' is a model, not an app"):
        registry.register_app("demo", bundle)


def test_a_tampered_app_bundle_is_refused_and_nothing_is_stored(
    registry: Registry, app_bundles: list[Path], tmp_path: Path
) -> None:
    registry.create_project("demo")
    tampered = rewrite(app_bundles[0], tmp_path / "t.tar.gz", one_byte_changed("app/app/main.py"))
    with pytest.raises(TamperedArtifact, match="app/app/main.py"):
        registry.register_app("demo", tampered)
    with pytest.raises(NotFound, match="has no model 'tumour_app'"):
        registry.versions("demo", APP)


def test_status_lists_each_component_with_its_kind(shop: Registry) -> None:
    shop.add_component("demo", "integration", MODEL, "v1")
    shop.add_component("demo", "integration", APP, app_config={"title": "Triage"})
    status = shop.status("demo", "integration")
    assert [(c.name, c.kind, c.tag, c.app_config) for c in status.components] == [
        (APP, "app", "v2", {"title": "Triage"}),
        (MODEL, "model", "v1", {}),
    ]
    with pytest.raises(
        NotFound, match=r"has no model or app 'nope' \(models: .*; apps: tumour_app\)"
    ):
        shop.add_component("demo", "integration", "nope")


def _full_set(registry: Registry) -> None:
    """integration holds one app and two models; uat and production hold the first versions."""
    for name, tag in ((MODEL, "v1"), (SECOND, "v1"), (APP, "v1")):
        registry.add_component("demo", "integration", name, tag)
    registry.promote("demo", "integration")
    registry.promote("demo", "uat")
    registry.add_component("demo", "integration", MODEL, "v2")
    registry.add_component("demo", "integration", APP, "v2", app_config={"title": "New"})


def test_an_app_and_two_models_promote_together_in_one_revision(shop: Registry) -> None:
    _full_set(shop)
    expected_first = {MODEL: ("model", "v1"), SECOND: ("model", "v1"), APP: ("app", "v1")}
    assert _held(shop, "production") == expected_first
    before = len(shop.history("demo", "uat"))
    revision = shop.promote("demo", "integration")
    assert len(shop.history("demo", "uat")) == before + 1  # one revision for all three
    assert {c.name: (c.kind, c.tag) for c in revision.components} == {
        MODEL: ("model", "v2"),
        SECOND: ("model", "v1"),
        APP: ("app", "v2"),
    }
    assert next(c for c in revision.components if c.name == APP).app_config == {"title": "New"}
    assert shop.diff("demo", "integration", "uat").same


def _fail_on_second_entry(engine: Engine) -> None:
    """Make the database refuse the second component row of any revision being written.

    A promotion writes the new revision, then one row per component: the first goes in,
    the second fails in the database itself, halfway through the set.
    """
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql(
                "CREATE TRIGGER fail_second_entry BEFORE INSERT ON revision_entries "
                "WHEN (SELECT count(*) FROM revision_entries "
                "      WHERE revision_id = NEW.revision_id) >= 1 "
                "BEGIN SELECT RAISE(ABORT, 'injected failure: second component'); END"
            )
        else:
            connection.exec_driver_sql(
                "CREATE FUNCTION fail_second_entry() RETURNS trigger LANGUAGE plpgsql "
                "VOLATILE AS $$ BEGIN "
                "IF (SELECT count(*) FROM revision_entries "
                "    WHERE revision_id = NEW.revision_id) >= 1 THEN "
                "RAISE EXCEPTION 'injected failure: second component'; END IF; "
                "RETURN NEW; END $$"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER fail_second_entry BEFORE INSERT ON revision_entries "
                "FOR EACH ROW EXECUTE FUNCTION fail_second_entry()"
            )


def _mend(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "DROP TRIGGER fail_second_entry"
            + ("" if engine.dialect.name == "sqlite" else " ON revision_entries")
        )
        if engine.dialect.name != "sqlite":
            connection.exec_driver_sql("DROP FUNCTION fail_second_entry()")


def test_a_failure_halfway_through_the_set_leaves_the_target_exactly_as_it_was(
    shop: Registry, engine: Engine
) -> None:
    _full_set(shop)
    before = _snapshot(shop, "uat")
    _fail_on_second_entry(engine)
    with pytest.raises(Exception, match="injected failure: second component"):
        shop.promote("demo", "integration")
    assert _snapshot(shop, "uat") == before  # no revision, no component, no audit event
    with engine.connect() as connection:  # and no orphan row left behind, in any table
        orphans = connection.execute(
            sa.text(
                "SELECT count(*) FROM revisions r WHERE NOT EXISTS "
                "(SELECT 1 FROM revision_entries e WHERE e.revision_id = r.id) "
                "AND r.action = 'environment.promote'"
            )
        ).scalar()
    assert orphans == 0
    assert shop.audit_verify().ok
    _mend(engine)
    shop.promote("demo", "integration")
    assert _held(shop, "uat") == {
        MODEL: ("model", "v2"),
        SECOND: ("model", "v1"),
        APP: ("app", "v2"),
    }


def test_a_failure_after_the_set_is_written_undoes_all_of_it(
    shop: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_set(shop)
    before = _snapshot(shop, "uat")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit disk full")

    monkeypatch.setattr(_audit, "append", broken)  # the last write of the transaction
    with pytest.raises(RuntimeError, match="audit disk full"):
        shop.promote("demo", "integration")
    monkeypatch.undo()
    assert _snapshot(shop, "uat") == before


def test_rollback_restores_the_app_and_its_models_together(shop: Registry) -> None:
    _full_set(shop)
    shop.promote("demo", "integration")
    shop.promote("demo", "uat")
    assert _held(shop, "production")[APP] == ("app", "v2")
    shop.rollback("demo", "production")
    assert _held(shop, "production") == {
        MODEL: ("model", "v1"),
        SECOND: ("model", "v1"),
        APP: ("app", "v1"),
    }


def test_diff_shows_the_app_beside_the_models(shop: Registry) -> None:
    _full_set(shop)
    diff = shop.diff("demo", "integration", "uat")
    assert [(c.name, c.change, c.b_version, c.a_version) for c in diff.components] == [
        (APP, "version, app_config", "v1", "v2"),
        (MODEL, "version", "v1", "v2"),
    ]
    shop.remove_component("demo", "integration", APP)
    assert [(c.name, c.change) for c in shop.diff("demo", "integration", "uat").components] == [
        (APP, "removed"),
        (MODEL, "version"),
    ]


def test_component_config_and_challengers_carry_the_app(shop: Registry) -> None:
    _full_set(shop)
    text = shop.save_component_config("demo", "integration")
    assert "kind: app" in text and "kind: model" in text
    shop.create_challenger("demo", "pr-7", "integration")
    assert _held(shop, "pr-7") == _held(shop, "integration")
    shop.apply_component_config("demo", "uat", text)
    assert _held(shop, "uat") == _held(shop, "integration")
    wrong = text.replace("kind: app", "kind: model")
    with pytest.raises(InvalidComponentConfig, match="tumour_app: is an app, not a model"):
        shop.apply_component_config("demo", "uat", wrong)


def test_production_takes_only_a_signed_app(shop: Registry, app_bundles: list[Path]) -> None:
    unsigned = shop.register_app("demo", app_bundles[2])
    assert not unsigned.signed
    shop.tag("demo", APP, unsigned.version_id)
    shop.add_component("demo", "uat", APP, "v3")
    with pytest.raises(SignatureRequired, match="tumour_app v3: it is unsigned"):
        shop.promote("demo", "uat")
