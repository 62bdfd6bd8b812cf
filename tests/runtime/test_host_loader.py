"""The production loader: the host's installed runtime checks a bundle before using any of it.

A bundle's entry points check the bundle with the bundle's own ``_runtime``; whoever can
change the bundle can change that check. ``load_verified`` and ``python -m
shipyard.runtime`` check with the host's code and never import the bundle, so a
tampered ``_runtime`` does not run. The subprocess tests run on a host holding only the
bundle's requirements and a copy of Shipyard's source as the installed loader.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.artifact import generate_key_pair, sign_files
from shipyard.runtime import (
    ArtifactError,
    SignatureError,
    TamperedArtifact,
    load_verified,
    read_folder,
)

from ._hosts import run_on_host

PACKAGE = "tumour_triage_1_0_0"
SRC = Path(shipyard.__file__).resolve().parent

# Appended to a module of the bundle's _runtime: importing it leaves a mark.
PAYLOAD = "\nimport os as _os\nopen(_os.environ['MARKER'], 'w').write(str(_os.getpid()))\n"


def _extract(bundle: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "xzf", str(bundle), "-C", str(folder)], check=True)
    return folder / PACKAGE


def _tamper_runtime(root: Path, sign_with: Path | None = None) -> None:
    """Add PAYLOAD to the bundle's _runtime, re-hash the manifest, re-sign or drop the signature."""
    with (root / "_runtime" / "_loading.py").open("a") as handle:
        handle.write(PAYLOAD)
    files = read_folder(root)
    for name in ("MANIFEST.json", "MANIFEST.sig"):
        files.pop(name, None)
        (root / name).unlink()
    for name, data in sign_files(files, sign_with).items():
        if name.startswith("MANIFEST"):
            (root / name).write_bytes(data)


@pytest.fixture(scope="module")
def loader_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shipyard's source copied to a folder: the loader 'installed' on the host."""
    source = tmp_path_factory.mktemp("loader")
    shutil.copytree(SRC, source / "shipyard", ignore=shutil.ignore_patterns("__pycache__"))
    return source


# --- in this process ---


def test_load_verified_scores_a_signed_bundle_without_importing_it(
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    demo_pipeline: shipyard.Pipeline,
    demo_rows: dict[str, Any],
    tmp_path: Path,
) -> None:
    import sys

    expected = json.loads(json.dumps(demo_pipeline.run(demo_rows)))
    from_archive = load_verified(signed_bundle, key_pair[1])
    from_folder = load_verified(_extract(signed_bundle, tmp_path), key_pair[1])
    for executor in (from_archive, from_folder):
        assert json.loads(json.dumps(executor.run_dict(demo_rows))) == expected
    assert not [name for name in sys.modules if name.startswith(PACKAGE)]


def test_load_verified_needs_a_key_unless_unsigned_loading_is_asked_for(
    signed_bundle: Path, demo_rows: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_PUBLIC_KEY", raising=False)
    with pytest.raises(SignatureError, match="no public key: give the key the bundle was signed"):
        load_verified(signed_bundle)
    assert load_verified(signed_bundle, allow_unsigned=True).run_dict(demo_rows)


def test_load_verified_refuses_another_keys_signature(signed_bundle: Path, tmp_path: Path) -> None:
    other = generate_key_pair(tmp_path / "other")[1]
    with pytest.raises(SignatureError, match="signed by another key"):
        load_verified(signed_bundle, other)


def test_a_neutered_runtime_is_named_as_the_changed_file(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    root = _extract(signed_bundle, tmp_path)
    # The bundle's own check, made to pass everything: the host never runs it.
    (root / "_runtime" / "_manifest.py").write_text(
        "def verify_bundle(files, key):\n    return {}\n"
    )
    with pytest.raises(TamperedArtifact, match="_runtime/_manifest.py") as caught:
        load_verified(root, key_pair[1])
    assert caught.value.path == "_runtime/_manifest.py"


def test_a_folder_holding_a_link_is_refused_naming_it(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    root = _extract(signed_bundle, tmp_path)
    (root / "objects" / "stolen").symlink_to("/etc/passwd")
    with pytest.raises(TamperedArtifact, match="'objects/stolen' is a link or device"):
        load_verified(root, key_pair[1])


def test_the_parent_of_a_bundle_folder_is_refused_with_the_folder_to_give(
    signed_bundle: Path, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    _extract(signed_bundle, tmp_path)
    with pytest.raises(ArtifactError, match=f"give the bundle's own folder .*{PACKAGE}"):
        load_verified(tmp_path, key_pair[1])


# --- on a production host: the bundle's requirements and the loader, no Shipyard install ---


@pytest.mark.slow
def test_python_m_shipyard_runtime_runs_a_signed_bundle_on_a_bare_host(
    sklearn_python: Path,
    loader_source: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    demo_pipeline: shipyard.Pipeline,
    demo_rows: dict[str, Any],
    tmp_path: Path,
) -> None:
    root = _extract(signed_bundle, tmp_path)
    command = ("-m", "shipyard.runtime", "run", str(root), "--public-key", str(key_pair[1]))
    loader = {"PYTHONPATH": str(loader_source)}
    result = run_on_host(sklearn_python, *command, stdin=json.dumps(demo_rows), env=loader)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(demo_pipeline.run(demo_rows)))

    verify = ("-m", "shipyard.runtime", "verify", str(signed_bundle), "--public-key")
    report = run_on_host(sklearn_python, *verify, str(key_pair[1]), env=loader)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["signature_checked"] is True


@pytest.mark.slow
@pytest.mark.parametrize("signature", ["unsigned", "unknown key"])
def test_a_tampered_runtime_never_runs_under_the_host_loader(
    sklearn_python: Path,
    loader_source: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    demo_rows: dict[str, Any],
    tmp_path: Path,
    signature: str,
) -> None:
    root = _extract(signed_bundle, tmp_path / "host")
    intruder = generate_key_pair(tmp_path / "intruder")[0] if signature == "unknown key" else None
    _tamper_runtime(root, sign_with=intruder)
    marker = tmp_path / "ran"
    command = ("-m", "shipyard.runtime", "run", str(root), "--public-key", str(key_pair[1]))
    result = run_on_host(
        sklearn_python,
        *command,
        stdin=json.dumps(demo_rows),
        env={"MARKER": str(marker), "PYTHONPATH": str(loader_source)},
    )
    assert result.returncode != 0
    expected = "it was not signed" if intruder is None else "signed by another key"
    assert result.stderr.startswith("error: SignatureError: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_the_bundles_own_check_cannot_stop_a_tampered_runtime(
    sklearn_python: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    demo_rows: dict[str, Any],
    tmp_path: Path,
) -> None:
    """Why production uses the host loader: importing the bundle runs its code first."""
    root = _extract(signed_bundle, tmp_path / "host")
    _tamper_runtime(root)
    marker = tmp_path / "ran"
    script = (
        f"import sys; sys.path.insert(0, {str(root.parent)!r})\n"
        f"from {PACKAGE}.python_dict import main\n"
    )
    result = run_on_host(
        sklearn_python,
        "-c",
        script,
        env={"MARKER": str(marker), "SHIPYARD_PUBLIC_KEY": str(key_pair[1])},
    )
    assert "SignatureError" in result.stderr  # the check still says no ...
    assert marker.exists()  # ... but only after the bundle's code ran
