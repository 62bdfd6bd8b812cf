"""The ``shipyard`` command: each verb's output, --json, and one-line errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shipyard.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_json_describes_the_bundle(capsys, signed_bundle: Path, key_pair) -> None:
    code, out, _ = run_cli(
        capsys,
        "artifact",
        "inspect",
        str(signed_bundle),
        "--public-key",
        str(key_pair[1]),
        "--json",
    )
    assert code == 0
    info = json.loads(out)
    assert (info["name"], info["version"], info["package"]) == (
        "tumour_triage",
        "1.0.0",
        "tumour_triage_1_0_0",
    )
    assert info["outputs"] == ["p_malignant", "decision"]
    assert [n["name"] for n in info["nodes"]] == ["compactness_ratio", "p_malignant", "decision"]
    model = info["nodes"][1]
    assert (model["kind"], model["flavor"], model["backend"]) == ("model", "sklearn", "native")
    assert info["verification"] == {
        "files": len(info["files"]) - 2,
        "signed": True,
        "signature_checked": True,
        "ok": True,
    }
    assert "objects/p_malignant/model.skops" in info["files"]
    assert "scikit-learn" in info["versions"]["python_dict"]["packages"]


def test_inspect_reports_a_failed_check_instead_of_hiding_it(
    capsys, signed_bundle, tmp_path
) -> None:
    from shipyard.artifact import generate_key_pair

    _, other_public = generate_key_pair(tmp_path)
    code, out, _ = run_cli(
        capsys, "artifact", "inspect", str(signed_bundle), "--public-key", str(other_public)
    )
    assert code == 0
    assert "NOT VERIFIED" in out


def test_verify_ok_and_says_whether_the_signature_was_checked(
    capsys, signed_bundle, key_pair
) -> None:
    code, out, _ = run_cli(
        capsys, "artifact", "verify", str(signed_bundle), "--public-key", str(key_pair[1])
    )
    assert code == 0 and "signature valid" in out
    # A script reading the exit code must not take "not checked" for "valid".
    code, out, err = run_cli(capsys, "artifact", "verify", str(signed_bundle))
    assert code == 2 and "NOT checked" in out and "NOT VERIFIED" in out
    assert "--allow-unverified-signature" in err
    code, out, _ = run_cli(
        capsys, "artifact", "verify", str(signed_bundle), "--allow-unverified-signature"
    )
    assert code == 0 and "NOT checked" in out


def test_verify_with_wrong_key_exits_1_with_one_line(capsys, signed_bundle, tmp_path) -> None:
    from shipyard.artifact import generate_key_pair

    _, other_public = generate_key_pair(tmp_path)
    code, out, err = run_cli(
        capsys, "artifact", "verify", str(signed_bundle), "--public-key", str(other_public)
    )
    assert code == 1
    assert err.startswith("error:") and "MANIFEST.sig" in err
    assert "Traceback" not in err


def test_missing_bundle_is_a_clear_error(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "artifact", "verify", str(tmp_path / "nope.tar.gz"))
    assert code == 1 and "does not exist" in err


def test_debug_prints_the_traceback(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "--debug", "artifact", "verify", str(tmp_path / "nope.tar.gz"))
    assert code == 1 and "Traceback" in err


@pytest.mark.parametrize(
    "fmt, marker", [("json", '"edges"'), ("dot", "digraph lineage"), ("mermaid", "graph LR")]
)
def test_lineage_formats(capsys, signed_bundle, fmt: str, marker: str) -> None:
    code, out, _ = run_cli(capsys, "artifact", "lineage", str(signed_bundle), "--format", fmt)
    assert code == 0 and marker in out
    assert "compactness_ratio" in out and "p_malignant" in out


def test_lineage_edges_follow_the_graph(capsys, signed_bundle) -> None:
    _, out, _ = run_cli(capsys, "artifact", "lineage", str(signed_bundle), "--json")
    edges = {tuple(e) for e in json.loads(out)["edges"]}
    assert ("tumours.mean_area", "compactness_ratio") in edges
    assert ("compactness_ratio", "p_malignant") in edges
    assert ("p_malignant", "decision") in edges


def test_unknown_lineage_format_is_a_usage_error(capsys, signed_bundle) -> None:
    code, _, err = run_cli(capsys, "artifact", "lineage", str(signed_bundle), "--format", "svg")
    assert code == 2 and "svg" in err


def _write_rows(path: Path, rows: dict[str, Any]) -> Path:
    path.write_text(json.dumps(rows))
    return path


def test_run_json_matches_the_pipeline(
    capsys, signed_bundle, demo_pipeline, demo_rows, tmp_path
) -> None:
    request = _write_rows(tmp_path / "rows.json", demo_rows)
    code, out, _ = run_cli(
        capsys, "artifact", "run", str(signed_bundle), "--input", str(request), "--json"
    )
    assert code == 0
    assert json.loads(out) == demo_pipeline.run(demo_rows)


def test_run_partial_outputs(capsys, signed_bundle, demo_rows, tmp_path) -> None:
    request = _write_rows(tmp_path / "rows.json", demo_rows)
    code, out, _ = run_cli(
        capsys,
        "artifact",
        "run",
        str(signed_bundle),
        "--input",
        str(request),
        "--outputs",
        "compactness_ratio",
        "--json",
    )
    assert code == 0 and list(json.loads(out)) == ["compactness_ratio"]


def test_run_reads_csv_and_parquet(
    capsys, signed_bundle, demo_pipeline, demo_rows, tmp_path
) -> None:
    import pyarrow as pa
    import pyarrow.csv
    import pyarrow.parquet

    table = pa.table(demo_rows["tumours"])
    pyarrow.csv.write_csv(table, tmp_path / "rows.csv")
    pyarrow.parquet.write_table(table, tmp_path / "rows.parquet")
    expected = demo_pipeline.run(demo_rows)
    for name in ("rows.csv", "rows.parquet"):
        code, out, _ = run_cli(
            capsys, "artifact", "run", str(signed_bundle), "--input", str(tmp_path / name), "--json"
        )
        assert code == 0
        result = json.loads(out)
        assert result["decision"] == expected["decision"]
        assert result["p_malignant"]["values"] == pytest.approx(
            expected["p_malignant"]["values"], abs=1e-12
        )


def test_run_bad_input_names_table_column_and_row(
    capsys, signed_bundle, demo_rows, tmp_path
) -> None:
    demo_rows["tumours"]["mean_radius"][3] = "big"
    request = _write_rows(tmp_path / "rows.json", demo_rows)
    code, _, err = run_cli(capsys, "artifact", "run", str(signed_bundle), "--input", str(request))
    assert code == 1
    assert "tumours" in err and "mean_radius" in err and "row 3" in err


def test_run_malformed_json_is_a_usage_error(capsys, signed_bundle, tmp_path) -> None:
    request = tmp_path / "rows.json"
    request.write_text("{not json")
    code, _, err = run_cli(capsys, "artifact", "run", str(signed_bundle), "--input", str(request))
    assert code == 2 and "not valid JSON" in err


def test_extract_one_node_writes_only_its_files(capsys, signed_bundle, tmp_path) -> None:
    code, _, _ = run_cli(
        capsys,
        "artifact",
        "extract",
        str(signed_bundle),
        "p_malignant",
        "-o",
        str(tmp_path / "out"),
    )
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.skops"]


def test_extract_unknown_node(capsys, signed_bundle, tmp_path) -> None:
    code, _, err = run_cli(
        capsys, "artifact", "extract", str(signed_bundle), "nope", "-o", str(tmp_path)
    )
    assert code == 2 and "unknown node 'nope'" in err


def test_build_from_module_reference_and_key(capsys, tmp_path, key_pair, demo_pipeline) -> None:
    out_dir = tmp_path / "dist"
    code, out, _ = run_cli(
        capsys,
        "artifact", "build", "tests._tumours:build_pipeline",
        "-o", str(out_dir), "--sign-key", str(key_pair[0]),
        "--reference", "tests._tumours:reference", "--json",
    )  # fmt: skip
    assert code == 0
    summary = json.loads(out)
    assert summary["signed"] is True
    assert Path(summary["bundle"]) == out_dir / "tumour_triage-1.0.0.tar.gz"
    from shipyard.runtime import Artifact

    artifact = Artifact(summary["bundle"])
    assert artifact.verify(key_pair[1])["signature_checked"] is True
    assert "reference/profile.json" in artifact.files


def test_build_refuses_what_is_not_a_pipeline(capsys, tmp_path) -> None:
    code, _, err = run_cli(capsys, "artifact", "build", "tests._tumours:SEED", "-o", str(tmp_path))
    assert code == 2 and "not a shipyard.Pipeline" in err
    code, _, err = run_cli(capsys, "artifact", "build", "no_such_module:x", "-o", str(tmp_path))
    assert code == 2 and "no_such_module" in err
    assert list(tmp_path.iterdir()) == []


def test_key_generate_refuses_to_overwrite(capsys, tmp_path) -> None:
    code, out, _ = run_cli(capsys, "key", "generate", "-o", str(tmp_path), "--json")
    assert code == 0 and Path(json.loads(out)["public_key"]).exists()
    code, _, err = run_cli(capsys, "key", "generate", "-o", str(tmp_path))
    assert code == 2 and "already exists" in err


def test_installed_command_runs_as_a_process(signed_bundle, key_pair) -> None:
    shipyard = Path(sys.executable).with_name("shipyard")
    done = subprocess.run(
        [
            str(shipyard), "artifact", "verify", str(signed_bundle),
            "--public-key", str(key_pair[1]), "--json",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True


def test_piped_tables_print_every_value_whole(capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.cli._output import emit, listing

    name = "diabetes_progression_regressor_with_a_long_name"
    rows = [{"model": name, **{f"column_{i}": "x" * 20 for i in range(8)}}]
    emit(rows, False, listing("model", *(f"column_{i}" for i in range(8))))
    assert name in capsys.readouterr().out  # stdout is not a terminal here
