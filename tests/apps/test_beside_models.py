"""An app in an environment is no model: what serves, scores, renders and smoke-tests an
environment's models leaves the app to the parts that run apps."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shipyard.apps import build_app_bundle
from shipyard.batch import fetch_deployed
from shipyard.ci import register_candidates, tag_candidates
from shipyard.deploy import bake_environment, read_plan, render_environment
from shipyard.errors import NotFound
from shipyard.registry import Registry
from shipyard.serving import EnvironmentLoader
from tests.registry.conftest import bare_registry, demo, registry  # noqa: F401  (fixtures)

from ._folders import CREATED_AT, make_app

MODEL = "tumour_triage"
APP = "tumour_app"


@pytest.fixture()
def app_bundle(tmp_path: Path, key_pair: tuple[Path, Path]) -> Path:
    folder = make_app(tmp_path / "source" / APP)
    return build_app_bundle(folder, tmp_path / "dist", sign_key=key_pair[0], created_at=CREATED_AT)


@pytest.fixture()
def with_app(demo: Registry, app_bundle: Path) -> Registry:  # noqa: F811
    """demo's production runs tumour_triage v1 and tumour_app v1, promoted together."""
    version = demo.register_app("demo", app_bundle)
    demo.tag("demo", APP, version.version_id)
    demo.add_component("demo", "integration", MODEL, "v1")
    demo.add_component("demo", "integration", APP, "v1")
    demo.promote("demo", "integration")
    demo.promote("demo", "uat")
    return demo


def test_serving_loads_the_models_and_leaves_the_app(with_app: Registry) -> None:
    table = EnvironmentLoader(with_app, "demo", "production").load()
    assert sorted(table.models) == [MODEL]
    assert list(table.apps) == [APP]  # mounted apart, under /apps/tumour_app/


def test_batch_scores_with_a_model_and_never_with_an_app(
    with_app: Registry, tmp_path: Path
) -> None:
    path, _ = fetch_deployed(with_app, "demo", "production", MODEL, tmp_path)
    assert path.name == "tumour_triage-1.0.0.tar.gz"
    with pytest.raises(
        NotFound, match=r"does not run model 'tumour_app' \(it runs: tumour_triage\)"
    ):
        fetch_deployed(with_app, "demo", "production", APP, tmp_path)
    with pytest.raises(
        NotFound, match=r"does not run model 'tumour_app' \(it runs: tumour_triage\)"
    ):
        with_app.submit_batch_job("demo", "production", APP, "in.csv", "out.csv")


def test_the_deploy_plan_serves_the_models_and_names_the_apps_apart(
    with_app: Registry, tmp_path: Path
) -> None:
    plan = read_plan(with_app, "demo", "production")
    assert plan.components == {MODEL: "v1"}
    assert [(app.name, app.label) for app in plan.apps] == [(APP, "v1")]
    assert plan.pod_annotations()["shipyard.dev/components"] == f"{MODEL}=v1"
    for target in ("kubernetes", "compose"):
        render_environment(with_app, "demo", "production", target, tmp_path / target)
    baked = bake_environment(with_app, "demo", "production", tmp_path / "baked")
    assert {b.model for b in baked.bundles} == {MODEL, APP}
    # The app's requirements join the image's, beside the model's pins.
    model_pins = [line for b in baked.bundles if b.model == MODEL for line in b.requirements]
    assert baked.requirements() == sorted([*model_pins, "jinja2>=3"])


def test_ci_registers_and_tags_app_bundles_beside_model_bundles(
    demo: Registry,  # noqa: F811
    app_bundle: Path,
    bundles: list[Path],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "candidates"
    folder.mkdir()
    shutil.copy(app_bundle, folder)
    shutil.copy(bundles[2], folder)
    demo.create_challenger("demo", "pr-1", "integration")
    rows = register_candidates(demo, "demo", "pr-1", folder)
    assert [(r["model"], r["tag"]) for r in rows] == [(APP, None), (MODEL, "v3")]
    tagged = tag_candidates(demo, "demo", "pr-1")
    assert [(v["model"], v["kind"], v["tag"]) for v in tagged] == [(APP, "app", "v1")]
