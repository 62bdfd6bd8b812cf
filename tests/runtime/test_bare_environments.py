"""Production hosts: a bundle is checked with nothing but Python, and runs with only its
requirements installed (no Shipyard, no cryptography)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import shipyard
from shipyard.artifact import generate_key_pair

from ._hosts import run_on_host

pytestmark = pytest.mark.slow

PACKAGE = "tumour_triage_1_0_0"
SRC = Path(shipyard.__file__).resolve().parent

# Runs in the stdlib-only venv: argv = shipyard copy, bundle, public key, other key, folder.
INSPECT = """
import importlib.util, json, sys
source, bundle, public, other, destination = sys.argv[1:]
sys.path.insert(0, source)
import shipyard.runtime
from shipyard.runtime import Artifact, SignatureError

artifact = Artifact(bundle)
out = {
    "name": artifact.metadata["name"],
    "report": artifact.verify(public),
    "lineage": artifact.lineage,
    "extracted": [str(p) for p in artifact.extract("p_malignant", destination)],
}
try:
    artifact.verify(other)
    out["other_key"] = "accepted"
except SignatureError as exc:
    out["other_key"] = str(exc)
out["foreign_modules"] = sorted(
    m for m in sys.modules
    if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "shipyard"
    and m != "__main__"
)
try:
    artifact.run({"tumours": {}})
    out["run"] = "ran"
except shipyard.runtime.ShipyardError as exc:
    out["run"] = f"{type(exc).__name__}: {exc}"
out["installed"] = [m for m in ("numpy", "cryptography") if importlib.util.find_spec(m)]
print(json.dumps(out))
"""

# Runs in the sklearn venv: argv = extraction folder; the dataset comes on stdin.
SCORE = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
from tumour_triage_1_0_0.python_dict import main
print(json.dumps({
    "result": main(json.load(sys.stdin)),
    "shipyard_importable": importlib.util.find_spec("shipyard") is not None,
}))
"""


def _normalised(result: Any) -> Any:
    return json.loads(json.dumps(result))


# --- a host with only the standard library ---


def test_the_runtime_inspects_verifies_and_extracts_with_only_the_standard_library(
    stdlib_python: Path,
    signed_bundle: Path,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    source = tmp_path / "src"
    shutil.copytree(SRC, source / "shipyard", ignore=shutil.ignore_patterns("__pycache__"))
    other = generate_key_pair(tmp_path / "other")[1]
    destination = tmp_path / "extracted"
    result = run_on_host(
        stdlib_python,
        "-c",
        INSPECT,
        str(source),
        str(signed_bundle),
        str(key_pair[1]),
        str(other),
        str(destination),
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    assert out["installed"] == []  # the pure-Python Ed25519 verifier did the checking
    assert out["foreign_modules"] == []
    assert out["name"] == "tumour_triage"
    files = len(shipyard.Artifact(signed_bundle).files) - 2  # all but MANIFEST.json and .sig
    assert out["report"] == {"files": files, "signed": True, "signature_checked": True}
    assert out["lineage"] == shipyard.Artifact(signed_bundle).lineage
    assert "signed by another key" in out["other_key"]
    assert out["extracted"] == [str(destination / "model.skops")]
    expected = shipyard.Artifact(signed_bundle).files["objects/p_malignant/model.skops"]
    assert (destination / "model.skops").read_bytes() == expected
    assert out["run"].startswith("ModelError: running a bundle needs the 'numpy' package")


# --- a host with only the bundle's requirements ---


@pytest.fixture(scope="module")
def extracted(signed_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signed bundle unpacked with plain ``tar``, as a production team would."""
    folder = tmp_path_factory.mktemp("host")
    subprocess.run(["tar", "xzf", str(signed_bundle), "-C", str(folder)], check=True)
    return folder


def test_the_bundle_scores_without_shipyard_exactly_like_the_pipeline(
    sklearn_python: Path,
    extracted: Path,
    demo_pipeline: shipyard.Pipeline,
    demo_rows: dict[str, Any],
) -> None:
    result = run_on_host(sklearn_python, "-c", SCORE, str(extracted), stdin=json.dumps(demo_rows))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["shipyard_importable"] is False
    assert out["result"] == _normalised(demo_pipeline.run(demo_rows))
    assert result.stderr == ""  # same library versions: no VersionMismatchWarning


def test_python_m_python_dict_scores_json_from_stdin(
    sklearn_python: Path,
    extracted: Path,
    demo_pipeline: shipyard.Pipeline,
    demo_rows: dict[str, Any],
) -> None:
    module = f"{PACKAGE}.python_dict"
    whole = run_on_host(sklearn_python, "-m", module, stdin=json.dumps(demo_rows), cwd=extracted)
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout) == _normalised(demo_pipeline.run(demo_rows))

    partial = run_on_host(
        sklearn_python,
        "-m",
        module,
        "--outputs",
        "compactness_ratio",
        stdin=json.dumps(demo_rows),
        cwd=extracted,
    )
    assert partial.returncode == 0, partial.stderr
    expected = demo_pipeline.run(demo_rows, outputs=["compactness_ratio"])
    assert json.loads(partial.stdout) == _normalised(expected)
    assert list(json.loads(partial.stdout)) == ["compactness_ratio"]


def test_python_m_python_dict_refuses_bad_input_with_a_message(
    sklearn_python: Path, extracted: Path, demo_rows: dict[str, Any]
) -> None:
    module = f"{PACKAGE}.python_dict"
    not_json = run_on_host(sklearn_python, "-m", module, stdin="{not json", cwd=extracted)
    assert not_json.returncode != 0
    assert "error: the input is not JSON" in not_json.stderr
    assert not_json.stdout == ""

    negative = {"tumours": {**demo_rows["tumours"], "mean_area": [-1.0] * 5}}
    out_of_range = run_on_host(
        sklearn_python, "-m", module, stdin=json.dumps(negative), cwd=extracted
    )
    assert out_of_range.returncode != 0
    assert "table 'tumours', column 'mean_area', row 0" in out_of_range.stderr
    assert "Traceback" not in out_of_range.stderr


def test_python_m_python_dict_refuses_a_tampered_or_foreign_bundle_in_one_line(
    sklearn_python: Path, extracted: Path, tmp_path: Path, demo_rows: dict[str, Any]
) -> None:
    module = f"{PACKAGE}.python_dict"
    other = generate_key_pair(tmp_path / "other")[1]
    rows = json.dumps(demo_rows)
    foreign = run_on_host(
        sklearn_python,
        "-m",
        module,
        stdin=rows,
        cwd=extracted,
        env={"SHIPYARD_PUBLIC_KEY": str(other)},
    )
    assert foreign.returncode != 0
    assert foreign.stderr.startswith("error: SignatureError: MANIFEST.sig does not match")
    assert "Traceback" not in foreign.stderr

    changed = tmp_path / "changed"
    shutil.copytree(extracted, changed)
    (changed / PACKAGE / "input_info.json").write_text("{}")
    tampered = run_on_host(sklearn_python, "-m", module, stdin=rows, cwd=changed)
    assert tampered.returncode != 0
    assert tampered.stderr.startswith("error: TamperedArtifact: ")
    assert "input_info.json" in tampered.stderr
    assert "Traceback" not in tampered.stderr


def test_the_bundle_checks_its_signature_on_a_host_without_cryptography(
    sklearn_python: Path,
    extracted: Path,
    key_pair: tuple[Path, Path],
    tmp_path: Path,
    demo_rows: dict[str, Any],
) -> None:
    other = generate_key_pair(tmp_path)[1]
    rows = json.dumps(demo_rows)
    right = run_on_host(
        sklearn_python,
        "-c",
        SCORE,
        str(extracted),
        stdin=rows,
        env={"SHIPYARD_PUBLIC_KEY": str(key_pair[1])},
    )
    assert right.returncode == 0, right.stderr
    wrong = run_on_host(
        sklearn_python,
        "-c",
        SCORE,
        str(extracted),
        stdin=rows,
        env={"SHIPYARD_PUBLIC_KEY": other.read_text()},
    )
    assert wrong.returncode != 0
    assert "SignatureError: MANIFEST.sig does not match" in wrong.stderr


def test_an_onnx_bundle_runs_with_numpy_and_onnxruntime_only(
    onnx_host_python: Path,
    onnx_bundle: Path,
    demo_pipeline: shipyard.Pipeline,
    demo_rows: dict[str, Any],
    tmp_path: Path,
) -> None:
    subprocess.run(["tar", "xzf", str(onnx_bundle), "-C", str(tmp_path)], check=True)
    probe = SCORE + (
        "import importlib.util as u\n"
        "print(json.dumps([m for m in ('sklearn', 'skops', 'pandas') if u.find_spec(m)]))\n"
    )
    result = run_on_host(onnx_host_python, "-c", probe, str(tmp_path), stdin=json.dumps(demo_rows))
    assert result.returncode == 0, result.stderr
    scored, training_libraries = (json.loads(line) for line in result.stdout.splitlines())
    assert training_libraries == []  # the host never had scikit-learn
    assert scored["shipyard_importable"] is False
    expected = demo_pipeline.run(demo_rows)
    assert scored["result"]["decision"] == expected["decision"]
    tolerance = shipyard.Artifact(onnx_bundle).metadata["nodes"][1]["parity"]["tolerance"]
    gaps = [
        abs(a - b)
        for a, b in zip(
            scored["result"]["p_malignant"]["values"],
            expected["p_malignant"]["values"],
            strict=True,
        )
    ]
    assert max(gaps) <= tolerance
