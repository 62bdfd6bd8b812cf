"""A batch run of an environment's deployed version loads only what the registry's trust allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.batch import BatchOptions, fetch_deployed, run_local
from shipyard.errors import ModelError
from shipyard.registry import Registry
from tests.serving.test_trust import pickle_bundle


def test_a_deployed_pickle_runs_only_where_an_admin_allowed_it(
    registry: Registry, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle = pickle_bundle(tmp_path / "dist", key_pair[0])
    registry.create_project("demo")
    version = registry.register_model("demo", bundle)
    registry.tag("demo", "pickled", version.version_id)
    registry.add_component("demo", "production", "pickled")
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1.0,2.0\n3.0,4.0\n")
    with pytest.raises(ModelError, match=r"weighted are plain pickles"):
        fetch_deployed(registry, "demo", "production", "pickled", tmp_path / "f1")
    registry.set_setting("allow_pickle", "true", "demo", "production")
    path, options = fetch_deployed(
        registry, "demo", "production", "pickled", tmp_path / "f2", BatchOptions(chunk_rows=1)
    )
    # The trust travels with the options: the key that signed it, and the allowance.
    assert options.allow_unsafe is True and isinstance(options.public_key, bytes)
    assert options.chunk_rows == 1
    result = run_local(path, str(rows), str(tmp_path / "out.csv"), options)
    assert (result.rows, result.rejected) == (2, 0)


def test_without_the_allowance_the_loader_refuses_a_pickle_itself(
    key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    bundle = pickle_bundle(tmp_path / "dist", key_pair[0])
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b\n1.0,2.0\n")
    with pytest.raises(ModelError, match="allow_pickle"):
        run_local(bundle, str(rows), str(tmp_path / "out.csv"), BatchOptions(allow_unsafe=False))
