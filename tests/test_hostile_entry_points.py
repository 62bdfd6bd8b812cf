"""Every way a bundle enters Shipyard refuses the same hostile bundles, before using them.

One matrix: each hostile bundle of ``tests/_hostile_bundles.py`` against each entry point:

    verify    ``shipyard artifact verify BUNDLE --public-key PUB`` (in-process)
    register  ``shipyard model register BUNDLE`` (in-process, the embedded registry,
              which trusts PUB as 'test-key')
    upload    ``POST /api/v1/projects/{p}/models`` with the bundle as the body (the
              registry server over real HTTP, trusting PUB)
    serve     ``shipyard serve --bundle BUNDLE`` with ``SHIPYARD_PUBLIC_KEY=PUB`` (a process)
    batch     ``shipyard batch run BUNDLE --public-key PUB`` (in-process, local engine)

A refusal is a non-zero exit (a 4xx over HTTP) with one error line naming the file and
no traceback, nothing left behind (no registry row, no stored blob, no output file), and
no marker file: the hostile bundles that could run code write one if they ever do.
Where an entry point accepts a bundle by design, the test says so in its name and
checks the documented behaviour instead: registering takes an unsigned but consistent
bundle, recorded as unsigned, which production then refuses; ``artifact verify`` checks
files, not models, so a signed pickle passes it with a warning.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.artifact import generate_key_pair
from shipyard.cli import main
from shipyard.registry import LocalStore, Registry, create_engine, migrate
from shipyard.registry_http import create_app
from shipyard.runtime import key_id, load_public_key

from . import _hostile_bundles as hostile
from .conftest import serving

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = hostile.PACKAGE
CAP = 16 * 1024**2  # SHIPYARD_MAX_BUNDLE_BYTES here: far above the real bundles' size
BOMB_BYTES = 256 * 1024**2  # what the gzip bomb expands to (about 1 MB compressed)
UNSIGNED = "a public key is configured but the bundle has no MANIFEST.sig: it was not signed"
OTHER_KEY = "MANIFEST.sig does not match: the manifest was changed or signed by another key"
PICKLE = "model 'weighted' is refused: it is stored as a pickle"
ENTRY_POINTS = ("verify", "register", "upload", "serve", "batch")


@dataclass(frozen=True)
class Case:
    """A hostile bundle and the error line every entry point refuses it with."""

    refusal: str
    registrable: bool = False  # consistent, so registering takes it (recorded unsigned)


CASES: dict[str, Case] = {
    "path-traversal": Case(f"member '{hostile.ESCAPING}' escapes the bundle folder"),
    "absolute-path": Case(f"member '{hostile.ABSOLUTE}' escapes the bundle folder"),
    **{
        kind: Case(f"member '{PACKAGE}/objects/p_malignant/{name}' is a link or device, not a file")
        for kind, name in [
            ("symlink", "link"),
            ("hardlink", "hard"),
            ("char-device", "device"),
            ("fifo", "fifo"),
        ]
    },
    "gzip-bomb": Case(
        f"member '{PACKAGE}/{hostile.BOMB}' takes the bundle's files beyond {CAP} bytes "
        "uncompressed (set SHIPYARD_MAX_BUNDLE_BYTES to allow more)"
    ),
    "missing-file": Case(f"file '{hostile.MODEL}' is listed in MANIFEST.json but missing"),
    "extra-file": Case(f"file '{hostile.EXTRA}' is not listed in MANIFEST.json: it was added"),
    "manifest-lists-twice": Case(
        f"MANIFEST.json is unreadable ('{hostile.MODEL}' is listed twice)"
    ),
    "runtime-rehashed": Case(UNSIGNED, registrable=True),
    "runtime-marker": Case(UNSIGNED, registrable=True),
    "unknown-key": Case(OTHER_KEY, registrable=True),
    "pickle-unsigned": Case(UNSIGNED, registrable=True),
    # Signed by the trusted key: what refuses it is the pickle rule, not the signature.
    "pickle-signed": Case(PICKLE),
}


# --- the bundles, built once for the module -------------------------------------------


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The variables every entry point reads, for the whole module; yields a scratch folder.

    A small SHIPYARD_MAX_BUNDLE_BYTES keeps the gzip bomb cheap; the embedded registry
    lives in the scratch folder; no registry server or public key comes from outside.
    """
    folder = tmp_path_factory.mktemp("entry-points")
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "SHIPYARD_URL",
            "SHIPYARD_TOKEN",
            "SHIPYARD_PUBLIC_KEY",
            "SHIPYARD_AUDIT_ANCHORS",
        ):
            patch.delenv(name, raising=False)
        patch.setenv("SHIPYARD_MAX_BUNDLE_BYTES", str(CAP))
        patch.setenv("SHIPYARD_HOME", str(folder / "home"))
        patch.setenv("SHIPYARD_DATABASE_URL", f"sqlite:///{folder / 'embedded.db'}")
        patch.setenv("SHIPYARD_ARTIFACT_STORE", str(folder / "embedded-store"))
        patch.setenv("SHIPYARD_USER", "ci")
        yield folder


@pytest.fixture(scope="module")
def markers(environment: Path) -> Path:
    """Where the hostile bundles' code would write its marker files."""
    folder = environment / "markers"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def bundles(
    environment: Path, markers: Path, signed_bundle: Path, key_pair: tuple[Path, Path]
) -> dict[str, Path]:
    """Each hostile bundle by case name, built from the suite's signed demo bundle."""
    folder = environment / "bundles"
    folder.mkdir()
    other_key, _ = generate_key_pair(environment / "other-key")
    pickled = hostile.pickle_source(environment / "pickle-source")
    trusted = key_pair[0]
    at = {name: folder / f"{name}.tar.gz" for name in CASES}
    built = {
        "path-traversal": hostile.path_traversal(signed_bundle, at["path-traversal"]),
        "absolute-path": hostile.absolute_path(signed_bundle, at["absolute-path"]),
        "symlink": hostile.symlink(signed_bundle, at["symlink"]),
        "hardlink": hostile.hardlink(signed_bundle, at["hardlink"]),
        "char-device": hostile.char_device(signed_bundle, at["char-device"]),
        "fifo": hostile.fifo(signed_bundle, at["fifo"]),
        "gzip-bomb": hostile.gzip_bomb(signed_bundle, at["gzip-bomb"], BOMB_BYTES),
        "missing-file": hostile.missing_file(signed_bundle, at["missing-file"]),
        "extra-file": hostile.extra_file(signed_bundle, at["extra-file"], markers / "extra-file"),
        "manifest-lists-twice": hostile.manifest_listing_twice(
            signed_bundle, at["manifest-lists-twice"], trusted
        ),
        "runtime-rehashed": hostile.runtime_rehashed(signed_bundle, at["runtime-rehashed"]),
        "runtime-marker": hostile.runtime_rehashed(
            signed_bundle, at["runtime-marker"], markers / "runtime-marker"
        ),
        "unknown-key": hostile.signed_by(signed_bundle, at["unknown-key"], other_key),
        "pickle-unsigned": hostile.hostile_pickle(
            pickled, at["pickle-unsigned"], markers / "pickle-unsigned", None
        ),
        "pickle-signed": hostile.hostile_pickle(
            pickled, at["pickle-signed"], markers / "pickle-signed", trusted
        ),
    }
    assert built.keys() == CASES.keys()
    assert built["gzip-bomb"].stat().st_size < 4 * 1024**2
    return built


@pytest.fixture(autouse=True)
def no_marker_appears(markers: Path) -> Iterator[None]:
    """Each test starts with no marker file and fails if one appeared: code ran."""
    for marker in markers.iterdir():
        marker.unlink()
    yield
    written = sorted(marker.name for marker in markers.iterdir())
    assert written == [], f"a hostile bundle's code ran: it wrote {written}"


# --- the entry points -------------------------------------------------------------------


@dataclass
class Outcome:
    """What a person at the entry point sees: the exit code (or status), output, errors."""

    code: int
    out: str
    err: str

    def refused_with(self, refusal: str) -> None:
        """A non-zero exit whose one error line is ``refusal``, with no traceback."""
        assert self.code != 0, (self.out, self.err)
        assert f"error: {refusal}" in self.err.replace("\n", " "), self.err
        assert "Traceback" not in self.out + self.err


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Outcome:
    """The CLI run in-process, as ``shipyard ARGS`` would."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Outcome(code, out, err)


@pytest.fixture(scope="module")
def embedded(environment: Path, key_pair: tuple[Path, Path]) -> Iterator[Registry]:
    """The embedded registry the CLI opens here, trusting the test key as 'test-key'."""
    registry = Registry.open("admin")
    registry.trust_key("test-key", key_pair[1].read_text())
    yield registry
    registry.close()


@dataclass
class Server:
    url: str
    registry: Registry
    store: Path
    token: str


@pytest.fixture(scope="module")
def server(environment: Path, key_pair: tuple[Path, Path]) -> Iterator[Server]:
    """The registry HTTP API on 127.0.0.1 (SQLite), trusting the test key; a deployer token."""
    engine = create_engine(f"sqlite:///{environment / 'server.db'}")
    migrate(engine)
    store = environment / "server-store"
    registry = Registry(engine, LocalStore(store), actor="server")
    registry.trust_key("test-key", key_pair[1].read_text())
    token = registry.create_token("ci", "deployer")[1]
    with serving(create_app(lambda: registry)) as url:
        yield Server(url, registry, store, token)
    engine.dispose()


def stored(folder: Path) -> list[str]:
    """Every file an artifact store holds."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def peak_memory() -> int:
    """This process's peak resident memory so far, in bytes (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(scope="module")
def input_csv(environment: Path, demo_reference: dict[str, Any]) -> Path:
    """Five tumour rows as CSV, in a folder of their own."""
    table = demo_reference["tumours"]
    lines = [",".join(table)] + [
        ",".join(str(values[row]) for values in table.values()) for row in range(5)
    ]
    target = environment / "input" / "tumours.csv"
    target.parent.mkdir()
    target.write_text("\n".join(lines) + "\n")
    return target


def serve_process(bundle: Path, public_key: Path, folder: Path) -> Outcome:
    """``shipyard serve --bundle`` as a process: its exit, or what it printed once it served.

    A process still up once uvicorn says it is running is stopped (code 0: it served).
    """
    env = {
        **os.environ,
        "SHIPYARD_PUBLIC_KEY": str(public_key),
        # The hostile pickle's classes, as a host could have them, before the caller's path.
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    out, err = folder / "serve.out", folder / "serve.err"
    command = [sys.executable, "-c", "from shipyard.cli import main; main()"]
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*command, "serve", "--bundle", str(bundle), "--port", "0"],
            cwd=folder,
            env=env,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        try:
            code = _exit_or_serving(process, err)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    return Outcome(code, out.read_text(), err.read_text())


def _exit_or_serving(process: subprocess.Popen[bytes], err: Path) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            return process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if "Uvicorn running on" in err.read_text():
                return 0
    pytest.fail(f"serve neither exited nor served within 120 s: {err.read_text()}")


# --- the matrix -------------------------------------------------------------------------


def _accepted_by_design(case: str, entry: str) -> bool:
    """Registering takes a consistent bundle; a signed pickle passes verify and registers."""
    if entry in ("register", "upload") and CASES[case].registrable:
        return True
    return case == "pickle-signed" and entry in ("verify", "register", "upload")


MATRIX = [
    pytest.param(case, entry, id=f"{case}-{entry}")
    for case in CASES
    for entry in ENTRY_POINTS
    if not _accepted_by_design(case, entry)
]


@pytest.mark.parametrize(("case", "entry"), MATRIX)
def test_a_hostile_bundle_is_refused_at_every_entry_point(
    case: str,
    entry: str,
    bundles: dict[str, Path],
    key_pair: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    expected = CASES[case]
    bundle = bundles[case]
    before = peak_memory()
    if entry == "verify":
        outcome = cli(capsys, "artifact", "verify", str(bundle), "--public-key", str(key_pair[1]))
        outcome.refused_with(expected.refusal)
    elif entry == "register":
        registry: Registry = request.getfixturevalue("embedded")
        store = Path(os.environ["SHIPYARD_ARTIFACT_STORE"])
        project = registry.create_project(f"r-{case}").name
        blobs = stored(store)
        outcome = cli(capsys, "model", "register", str(bundle), "--project", project)
        outcome.refused_with(expected.refusal)
        assert registry.list_models(project) == []
        assert stored(store) == blobs
    elif entry == "upload":
        api: Server = request.getfixturevalue("server")
        project = api.registry.create_project(f"u-{case}").name
        blobs = stored(api.store)
        response = upload(api, project, bundle)
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert body["message"] == expected.refusal
        assert "Traceback" not in response.text
        assert api.registry.list_models(project) == []
        assert stored(api.store) == blobs
    elif entry == "serve":
        outcome = serve_process(bundle, key_pair[1], tmp_path)
        outcome.refused_with(expected.refusal)
        assert "serving" not in outcome.out  # refused before it says it serves
    else:
        output = tmp_path / "out" / "scores.csv"
        output.parent.mkdir()
        outcome = cli(
            capsys,
            *("batch", "run", str(bundle), "--public-key", str(key_pair[1])),
            *("--input", str(request.getfixturevalue("input_csv")), "--output", str(output)),
        )
        outcome.refused_with(expected.refusal)
        assert list(output.parent.iterdir()) == []  # no output, rejects or partial file
    if case == "gzip-bomb" and entry != "serve":
        assert peak_memory() - before < BOMB_BYTES // 2  # it was never expanded


def upload(api: Server, project: str, bundle: Path) -> httpx.Response:
    """The bundle sent to the server's register route as the request body."""
    return httpx.post(
        f"{api.url}/api/v1/projects/{project}/models",
        content=bundle.read_bytes(),
        headers={"Authorization": f"Bearer {api.token}"},
        timeout=60,
    )


# --- where an entry point accepts a hostile bundle by design -----------------------------

REGISTRABLE = [case for case, expected in CASES.items() if expected.registrable]


@pytest.mark.parametrize("case", REGISTRABLE)
def test_register_takes_a_consistent_unsigned_bundle_as_unsigned_and_production_refuses_it(
    case: str,
    bundles: dict[str, Path],
    embedded: Registry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = embedded.create_project(f"a-{case}").name
    outcome = cli(capsys, "model", "register", str(bundles[case]), "--project", project, "--json")
    assert outcome.code == 0, outcome.err
    (model,) = embedded.list_models(project)
    (version,) = embedded.versions(project, model.name)
    assert (version.signed, version.signer_key_id) == (False, None)
    added = cli(
        capsys, "component", "add", model.name, "--version", "1", "--env", "production",
        "--project", project,
    )  # fmt: skip
    untrusted = "signed by a key the registry does not trust" if case == "unknown-key" else ""
    added.refused_with(
        f"environment 'production' of project '{project}' requires bundles signed by a "
        f"trusted key (setting require_signature): refused {model.name} version 1: it is "
        + (untrusted or "unsigned")
    )
    assert embedded.list_components(project, "production") == []


@pytest.mark.parametrize("case", REGISTRABLE)
def test_the_upload_route_records_a_consistent_unsigned_or_untrusted_bundle_as_unsigned(
    case: str, bundles: dict[str, Path], server: Server
) -> None:
    project = server.registry.create_project(f"a-{case}").name
    response = upload(server, project, bundles[case])
    assert response.status_code == 201, response.text
    assert (response.json()["signed"], response.json()["signer_key_id"]) == (False, None)


def test_verify_passes_a_signed_pickle_and_warns_that_loading_it_runs_code(
    bundles: dict[str, Path], key_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = cli(
        capsys,
        "artifact",
        "verify",
        str(bundles["pickle-signed"]),
        "--public-key",
        str(key_pair[1]),
    )
    assert outcome.code == 0, outcome.err
    assert "signature valid" in outcome.out
    assert "node(s) weighted are stored as a plain pickle" in outcome.out.replace("\n", " ")


def test_a_signed_pickle_registers_and_a_deployed_batch_run_refuses_it_without_allow_pickle(
    bundles: dict[str, Path],
    embedded: Registry,
    server: Server,
    key_pair: tuple[Path, Path],
    input_csv: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    signer = key_id(load_public_key(key_pair[1]))  # type: ignore[arg-type]
    response = upload(
        server, server.registry.create_project("pickle").name, bundles["pickle-signed"]
    )
    assert response.status_code == 201, response.text
    assert response.json()["signer_key_id"] == signer
    project = embedded.create_project("pickle").name
    assert cli(capsys, "model", "register", str(bundles["pickle-signed"]), "-p", project).code == 0
    assert embedded.get_version(project, "pickled", 1).signer_key_id == signer
    added = cli(
        capsys, "component", "add", "pickled", "--version", "1", "-e", "production", "-p", project
    )
    assert added.code == 0, added.err  # signed by a trusted key: production takes it
    output = tmp_path / "out" / "scores.csv"
    output.parent.mkdir()
    outcome = cli(
        capsys,
        *("batch", "run", "--project", project, "--env", "production", "--model", "pickled"),
        *("--input", str(input_csv), "--output", str(output)),
    )
    outcome.refused_with("pickled 1: refused to load: node(s) weighted are plain pickles")
    assert list(output.parent.iterdir()) == []


def test_batch_run_loads_a_bundle_files_pickle_only_with_allow_pickle(
    bundles: dict[str, Path],
    key_pair: tuple[Path, Path],
    input_csv: Path,
    markers: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    output = tmp_path / "scores.csv"
    outcome = cli(
        capsys,
        *("batch", "run", str(bundles["pickle-signed"]), "--public-key", str(key_pair[1])),
        *("--input", str(input_csv), "--output", str(output), "--allow-pickle"),
    )
    assert outcome.code == 0, outcome.err
    assert output.exists()
    # The allowance is what lets its code run: the matrix above would have seen it.
    assert (markers / "pickle-signed").read_text() == "unpickled"
    (markers / "pickle-signed").unlink()
    refused = cli(
        capsys,
        *("batch", "run", "--project", "demo", "--env", "production", "--model", "m"),
        *("--input", str(input_csv), "--output", str(output), "--allow-pickle"),
    )
    assert refused.code == 2
    assert "--allow-pickle is for a bundle file" in refused.err


def test_the_tampered_runtime_runs_its_code_where_nothing_checks_the_signature(
    bundles: dict[str, Path], markers: Path, tmp_path: Path
) -> None:
    # The control for the matrix: a host importing the bundle with no key runs the bundle's
    # own _runtime, re-hashed to match; only a signature check stands in its way.
    from shipyard.runtime import Artifact

    Artifact(bundles["runtime-marker"]).extract(None, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("SHIPYARD_PUBLIC_KEY", "PYTHONPATH")}
    subprocess.run(
        [sys.executable, "-c", f"import {PACKAGE}.python_dict"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert (markers / "runtime-marker").read_text() == "imported"
    (markers / "runtime-marker").unlink()
