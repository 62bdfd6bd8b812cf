"""``shipyard artifact`` on an app bundle: inspect and verify check it; what runs a pipeline
refuses it in one line instead of failing on what it lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.apps import build_app_bundle
from shipyard.errors import UsageError
from shipyard.runtime import Artifact

from ..cli.test_cli import run_cli
from ._folders import CREATED_AT, make_app


@pytest.fixture()
def app_bundle(tmp_path: Path) -> Path:
    return build_app_bundle(make_app(tmp_path / "tumour_app"), tmp_path, created_at=CREATED_AT)


def test_inspect_and_verify_read_an_app_bundle(
    app_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "artifact", "inspect", str(app_bundle), "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["kind"], info["entry"], info["verification"]["ok"]) == (
        "app",
        "app.main:app",
        True,
    )
    code, out, _ = run_cli(capsys, "artifact", "inspect", str(app_bundle))
    assert code == 0 and "(app bundle, tumour_app_0_1_0)" in out and "entry app.main:app" in out
    code, out, _ = run_cli(capsys, "artifact", "verify", str(app_bundle))
    assert code == 0 and "match MANIFEST.json" in out


@pytest.mark.parametrize(
    "command",
    [["lineage"], ["extract", "node", "-o", "out"], ["run", "--input", "rows.json"]],
)
def test_pipeline_commands_refuse_an_app_bundle_in_one_line(
    app_bundle: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _, err = run_cli(capsys, "artifact", command[0], str(app_bundle), *command[1:])
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: {app_bundle} is an app bundle (tumour_app 0.1.0): it holds no pipeline; "
        "'artifact inspect' and 'artifact verify' check it, 'shipyard app' registers it"
    ]


def test_the_runtime_will_not_run_an_app_bundle(app_bundle: Path) -> None:
    with pytest.raises(UsageError, match="this is an app bundle, not a model's"):
        Artifact(app_bundle).executor()
