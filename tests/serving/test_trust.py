"""A serve process following an environment loads only what the registry's trust allows.

Whatever the host's SHIPYARD_PUBLIC_KEY says, a bundle is checked against the registry's
trusted keys before any of its files is deserialised; a plain pickle needs allow_pickle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shipyard import Pipeline, Table
from shipyard.errors import ModelError, SignatureRequired
from shipyard.pipeline import Column, model
from shipyard.registry import Registry
from shipyard.serving import EnvironmentLoader, Follower, RouteTable
from tests.pipeline._pickle_model import WeightedSum

from ..registry.conftest import MODEL


def follower_of(loader: EnvironmentLoader) -> tuple[Follower, dict[str, object]]:
    """A follower whose swaps and failures land in a dict the test reads."""
    state: dict[str, object] = {"table": loader.load(), "failures": []}

    def swap(table: RouteTable) -> None:
        state["table"] = table

    def failed(revision: int, exc: Exception) -> None:
        state["failures"].append((revision, exc))  # type: ignore[attr-defined]

    follower = Follower(loader, lambda: state["table"], swap, lambda ring: None, on_failure=failed)  # type: ignore[arg-type]
    return follower, state


def test_a_revoked_key_stops_new_revisions_loading_and_the_old_one_keeps_serving(
    demo: Registry,
) -> None:
    demo.add_component("demo", "production", MODEL, "v1")
    follower, state = follower_of(EnvironmentLoader(demo, "demo", "production"))
    assert list(state["table"].models[MODEL].versions) == ["v1"]  # type: ignore[attr-defined]
    demo.add_component("demo", "production", MODEL, "v2")  # accepted while the key is trusted
    demo.revoke_trusted_key("test-key")
    assert follower.poll() is False
    ((revision, error),) = state["failures"]  # type: ignore[misc]
    assert revision == demo.get_environment("demo", "production").revision
    assert isinstance(error, SignatureRequired)
    assert f"{MODEL} v2: refused to load" in str(error) and "trusted, unrevoked key" in str(error)
    assert list(state["table"].models[MODEL].versions) == ["v1"]  # type: ignore[attr-defined]


def test_a_local_public_key_does_not_replace_the_registrys_trust(
    demo: Registry, key_pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.add_component("demo", "production", MODEL, "v1")
    demo.revoke_trusted_key("test-key")
    # The host still holds the (now revoked) key that signed the bundle.
    monkeypatch.setenv("SHIPYARD_PUBLIC_KEY", str(key_pair[1]))
    loader = EnvironmentLoader(demo, "demo", "production", public_key=str(key_pair[1]))
    with pytest.raises(SignatureRequired, match="refused to load"):
        loader.load()


def pickle_bundle(folder: Path, sign_key: Path) -> Path:
    weighted = WeightedSum(np.array([1.0, 2.0]), bias=0.5)
    pipeline = Pipeline(
        "pickled",
        "1.0.0",
        inputs=[Table("rows", [Column("a", "float64"), Column("b", "float64")])],
        nodes=[model("weighted", weighted, features=["a", "b"])],
    )
    with pytest.warns(UserWarning, match="stored as a pickle"):
        return pipeline.export(
            folder, reference={"rows": {"a": [1.0], "b": [2.0]}}, sign_key=sign_key
        )


def test_a_pickle_loads_only_where_an_admin_allowed_it(
    registry: Registry,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "unpickled"

    def setstate(self: WeightedSum, state: dict[str, object]) -> None:
        marker.write_text("unpickled in the serving process")  # what a hostile pickle could do
        self.__dict__.update(state)

    bundle = pickle_bundle(tmp_path, key_pair[0])  # the export loads it back once, itself
    monkeypatch.setattr(WeightedSum, "__setstate__", setstate, raising=False)
    registry.create_project("demo")
    version = registry.register_model("demo", bundle)
    registry.tag("demo", "pickled", version.version_id)
    registry.add_component("demo", "production", "pickled")  # signed: the registry takes it
    loader = EnvironmentLoader(registry, "demo", "production")
    with pytest.raises(ModelError, match=r"node\(s\) weighted are plain pickles"):
        loader.load()
    assert not marker.exists()  # refused before unpickling anything
    registry.set_setting("allow_pickle", "true", "demo", "production")
    table = loader.load()
    assert list(table.models["pickled"].versions) == ["v1"]
    assert marker.exists()
