"""A container image's build context for one environment revision: ``Containerfile``,
vendored wheels with a hashed requirements file, and the baked environment.

    deploy/image/
    ├── Containerfile        two stages: build a venv offline from wheels/, then copy only
    │                        the venv and bundles/ onto the same base image
    ├── wheels/              Shipyard's wheel and every library the image runs, collected on
    │   └── requirements.txt the build machine; each pinned with its sha256 (--require-hashes)
    └── bundles/             the baked environment (see _bake.py): environment.json, bundles

The libraries are the bundles' ``requirements.txt`` pins plus what ``shipyard serve``
needs, at the versions the build machine runs (its installed versions are given to pip as
constraints; a bundle's own pin wins). They are collected with ``pip wheel`` from the
package index the build machine uses, so the image build itself needs no network
(``--network none``). The wheels are for the build machine's Python version and platform;
the Containerfile stops early, saying so, on a base image with another Python.

The ``serve`` image runs ``shipyard serve --bundle-dir`` as UID ``UID`` on port ``PORT``
(``$SHIPYARD_PORT``, else ``$PORT``: what Cloud Run and Knative set) with a read-only
root filesystem in mind: it writes only under the declared volumes (``/tmp``, and
``STATE`` for capture files). API keys: those of the environment when the image was
built, unless a key file is mounted at ``API_KEYS`` (the rendered manifests mount their
Secret there), whose keys then replace them. The paths and the user are the rendered
manifests' (``_plan.py``).

The ``lambda`` image is the same two stages with awslambdaric among the wheels: its
entrypoint is that runtime interface client with ``LAMBDA_HANDLER`` (serve's app answering
Lambda's HTTP events; ``shipyard.serving.aws_lambda``), it writes only under ``/tmp`` (all
that Lambda lets a function write), and its build ends by running one cold start of the
handler, so an image whose bundles do not verify or whose libraries do not load is never
made.

``app_containerfile`` writes the Containerfile of an app folder (``shipyard app create``):
the serve image's runtime stage (user, volumes, health check) around the app's code,
served by uvicorn.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ShipyardError, UsageError
from ._bake import BakedEnvironment, bake_environment

UID = 10001  # the non-root user the image runs as
PORT = 8000
VENV = "/opt/venv"
BAKED = "/opt/shipyard/bundles"  # the baked environment inside the image (read-only)
STATE = "/var/lib/shipyard"  # $SHIPYARD_HOME: capture files; a volume
API_KEYS = "/run/secrets/shipyard/api-keys"  # one key a line, when mounted
LABEL_PREFIX = "io.shipyard"
WHEEL_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry holds
READY_ROUTE = "/v2/health/ready"  # the Open Inference Protocol's server-ready route
KINDS = ("serve", "lambda")
# What the Lambda image's runtime interface client loads (shipyard.serving.aws_lambda),
# and the library it is, which the Lambda image adds to the wheels.
LAMBDA_HANDLER = "shipyard.serving.aws_lambda.handler"
LAMBDA_CLIENT = "awslambdaric"
LAMBDA_HOME = "/tmp/shipyard"  # Lambda lets a function write under /tmp only
APP_DIR = "/opt/shipyard/app"  # an app image's folder: shipyard-app.toml and the code
APP_HEALTH_ROUTE = "/health"  # what an app made from a template answers

_HEALTH = (
    "import os, sys, urllib.request; "
    "port = os.environ.get('SHIPYARD_PORT') or os.environ.get('PORT') or '{port}'; "
    "answer = urllib.request.urlopen('http://127.0.0.1:' + port + '{route}', timeout=4); "
    "sys.exit(0 if answer.status == 200 else 1)"
)
_PYTHON_CHECK = (
    "import sys; sys.exit(0 if sys.version_info[:2] == {wanted} else "
    "'the wheels of this build context are for Python {shown}; this base image runs ' "
    "+ sys.version.split()[0] + ': rebuild the context with that Python, or choose another "
    "--base-image')"
)


def default_base_image() -> str:
    """The official Python image of the build machine's Python version (Debian bookworm)."""
    return f"docker.io/library/python:{sys.version_info[0]}.{sys.version_info[1]}-slim-bookworm"


@dataclass(frozen=True)
class ImageContext:
    """A written build context: where it is, what it bakes, and the labels it sets."""

    folder: Path
    tag: str
    base_image: str
    baked: BakedEnvironment
    labels: dict[str, str]
    wheels: tuple[str, ...] = field(default=())

    @property
    def containerfile(self) -> Path:
        return self.folder / "Containerfile"


def image_labels(
    baked: BakedEnvironment, source: str, created_epoch: int, kind: str = "serve"
) -> dict[str, str]:
    """The image's labels: OCI annotations, and ours naming the revision and every bundle."""
    created = _dt.datetime.fromtimestamp(created_epoch, _dt.UTC)
    what = "shipyard serve" if kind == "serve" else "an AWS Lambda function (awslambdaric)"
    title = f"shipyard-{baked.project}-{baked.environment}"
    labels = {
        "org.opencontainers.image.title": title if kind == "serve" else f"{title}-{kind}",
        "org.opencontainers.image.description": (
            f"{what} for {baked.project}/{baked.environment}, "
            f"revision {baked.revision}, from baked bundles"
        ),
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.revision": str(baked.revision),
        "org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"{LABEL_PREFIX}.version": __version__,  # Shipyard's, which serves the bundles
        f"{LABEL_PREFIX}.project": baked.project,
        f"{LABEL_PREFIX}.environment": baked.environment,
        f"{LABEL_PREFIX}.environment.revision": str(baked.revision),
    }
    for bundle in baked.bundles:
        labels[f"{LABEL_PREFIX}.bundle.{bundle.model}.{bundle.label}"] = f"sha256:{bundle.digest}"
    return labels


def created_epoch(baked: BakedEnvironment) -> int:
    """``$SOURCE_DATE_EPOCH`` when set, else when the revision was made: a fixed time per
    revision, so rebuilding one revision labels it alike. UsageError for a bad variable."""
    given = os.environ.get("SOURCE_DATE_EPOCH")
    if given is not None:
        if not given.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH={given!r} is not a number of seconds")
        return int(given)
    return int(_dt.datetime.fromisoformat(baked.updated_at).timestamp())


def containerfile(
    base_image: str,
    labels: dict[str, str],
    python: tuple[int, int],
    epoch: int,
    installers: Sequence[str] = ("pip", "setuptools"),
    kind: str = "serve",
) -> str:
    """The Containerfile's text for an image of ``kind`` (see the module's docstring).

    ``installers``: what the new venv brings that the image does not run, removed once the
    wheels are in (none of them may be among the wheels). UsageError for another kind.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown image kind {kind!r} (known: {', '.join(KINDS)})")
    check = _PYTHON_CHECK.format(wanted=python, shown=f"{python[0]}.{python[1]}")
    serve = kind == "serve"
    writer = "shipyard deploy image" if serve else "shipyard deploy render --target lambda"
    runs = "served by `shipyard serve --bundle-dir`" if serve else "answered through awslambdaric"
    home = STATE if serve else LAMBDA_HOME
    lines = [
        f"# Written by `{writer}`: the environment revision",
        f"# of the labels below, {runs} with no registry at run time.",
        "",
        "# Build stage: a virtual environment from the vendored wheels, offline, hashes",
        "# checked (this build needs no network: build with --network none).",
        f"FROM {base_image} AS build",
        f"ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 SOURCE_DATE_EPOCH={epoch}",
        "COPY wheels/ /wheels/",
        f"RUN python3 -c {json.dumps(check)} \\",
        f" && python3 -m venv {VENV} \\",
        f" && {VENV}/bin/python -m pip install --no-index --find-links /wheels \\",
        "    --only-binary :all: --require-hashes --requirement /wheels/requirements.txt \\",
        f" && {VENV}/bin/python -m pip uninstall --yes {' '.join(installers)}",
        "",
        "# Runtime stage: the same base, the venv and the baked environment, nothing else.",
        f"FROM {base_image}",
        *_user_lines(home, state=serve),
        f"COPY --from=build {VENV} {VENV}",
        f"COPY bundles/ {BAKED}/",
        *(_serve_stage() if serve else _lambda_stage()),
        _label_line(labels),
        *(_serve_start() if serve else _lambda_start()),
        "",
    ]
    return "\n".join(lines)


def _user_lines(home: str, state: bool = True) -> list[str]:
    """The runtime stage's non-root user, and with ``state`` its state folder (a volume)."""
    made = f" \\\n && mkdir -p {STATE} && chown {UID}:{UID} {STATE}" if state else ""
    return [
        f"RUN groupadd --system --gid {UID} shipyard \\",
        f" && useradd --system --no-log-init --uid {UID} --gid {UID} --home-dir {home} \\",
        "    --no-create-home --shell /usr/sbin/nologin shipyard" + made,
    ]


def _label_line(labels: dict[str, str]) -> str:
    return "LABEL " + " \\\n      ".join(
        f"{json.dumps(k)}={json.dumps(v)}" for k, v in labels.items()
    )


def _run_lines(route: str) -> list[str]:
    """From the volumes to the health check (on ``route``): what a served image runs with."""
    health = _HEALTH.format(port=PORT, route=route)
    return [
        "# The only writable paths with a read-only root filesystem.",
        f'VOLUME ["/tmp", "{STATE}"]',
        f"USER {UID}:{UID}",
        f"EXPOSE {PORT}",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\",
        f"    CMD {json.dumps([f'{VENV}/bin/python', '-c', health])}",
    ]


def _serve_stage() -> list[str]:
    return [
        # No SHIPYARD_PORT here: serve listens on $SHIPYARD_PORT, else on $PORT (which Cloud
        # Run and Knative set), else on 8000.
        f"ENV PATH={VENV}/bin:$PATH HOME={STATE} SHIPYARD_HOME={STATE} \\",
        "    SHIPYARD_WORKERS=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        *_run_lines(READY_ROUTE),
    ]


def _serve_start() -> list[str]:
    return [
        f"ENTRYPOINT {json.dumps([f'{VENV}/bin/shipyard', 'serve'])}",
        "CMD "
        + json.dumps(["--bundle-dir", BAKED, "--api-key-file", API_KEYS, "--host", "0.0.0.0"]),
    ]


def _lambda_stage() -> list[str]:
    cold_start = f"import {LAMBDA_CLIENT}.bootstrap, {LAMBDA_HANDLER.rsplit('.', 1)[0]}"
    return [
        # Lambda lets a function write under /tmp only; the handler reads the baked folder.
        f"ENV PATH={VENV}/bin:$PATH HOME=/tmp SHIPYARD_HOME={LAMBDA_HOME} \\",
        f"    SHIPYARD_BUNDLE_DIR={BAKED} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        f"USER {UID}:{UID}",
        "# One cold start at build time: bundles that do not verify, or libraries that do not",
        "# load, fail the build instead of the function's first invocation.",
        f"RUN {json.dumps([f'{VENV}/bin/python', '-c', cold_start])}",
    ]


def _lambda_start() -> list[str]:
    return [
        f"ENTRYPOINT {json.dumps([f'{VENV}/bin/python', '-m', LAMBDA_CLIENT])}",
        f"CMD {json.dumps([LAMBDA_HANDLER])}",
    ]


def app_containerfile(
    name: str,
    version: str,
    entry: str,
    base_image: str | None = None,
    requirements: str = "requirements.txt",
) -> str:
    """The Containerfile of an app folder (its build context): the app served by uvicorn.

    The build stage installs this version of Shipyard and the app's ``requirements`` from
    the package index the builder is set up with (pip reads PIP_INDEX_URL), so unlike the
    environment image's build it needs that index. The runtime stage is the environment
    image's: the same non-root user, volumes and health check (on the app's ``/health``),
    with the folder at APP_DIR and ``entry`` (``module:attribute``) served on PORT.
    """
    base = base_image or default_base_image()
    labels = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.version": version,
        f"{LABEL_PREFIX}.version": __version__,  # Shipyard's
        f"{LABEL_PREFIX}.app": name,
        f"{LABEL_PREFIX}.app.version": version,
    }
    lines = [
        "# Written by `shipyard app create`: the app of shipyard-app.toml, served by uvicorn.",
        "# Build it with this folder as the context: podman build -t IMAGE .",
        "",
        "# Build stage: a virtual environment with Shipyard and the app's requirements, from",
        "# the package index the builder is set up with.",
        f"FROM {base} AS build",
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        f"COPY {requirements} /build/requirements.txt",
        f"RUN python3 -m venv {VENV} \\",
        f" && {VENV}/bin/python -m pip install --no-cache-dir 'shipyard=={__version__}' \\",
        "    --requirement /build/requirements.txt \\",
        f" && {VENV}/bin/python -m pip uninstall --yes pip setuptools",
        "",
        "# Runtime stage: the same base, the venv and the app's folder, nothing else.",
        f"FROM {base}",
        *_user_lines(STATE),
        f"COPY --from=build {VENV} {VENV}",
        f"COPY . {APP_DIR}/",
        f"WORKDIR {APP_DIR}",
        f"ENV PATH={VENV}/bin:$PATH HOME={STATE} SHIPYARD_HOME={STATE} \\",
        f"    SHIPYARD_PORT={PORT} SHIPYARD_APP_NAME={json.dumps(name)} \\",
        "    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        *_run_lines(APP_HEALTH_ROUTE),
        _label_line(labels),
        f"ENTRYPOINT {json.dumps([f'{VENV}/bin/uvicorn', entry])}",
        "CMD " + json.dumps(["--host", "0.0.0.0", "--port", str(PORT)]),
        "",
    ]
    return "\n".join(lines)


def _source_tree() -> Path | None:
    """Shipyard's source checkout, when this Shipyard runs from one (an editable install)."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "src" / "shipyard").is_dir():
        return root
    return None


def _pip(args: Sequence[str], what: str, env: dict[str, str] | None = None) -> None:
    command = [sys.executable, "-m", "pip", *args]
    done = subprocess.run(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env} if env else None,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise ShipyardError(f"{what} failed (pip exit {done.returncode}):\n{tail}")


def shipyard_wheel(into: Path, find_links: Sequence[str] = ()) -> Path:
    """Shipyard's own wheel in ``into``: built from the source checkout this runs from, else
    the ``shipyard-VERSION-*.whl`` found in ``find_links``. ShipyardError when neither."""
    root = _source_tree()
    if root is None:
        for folder in find_links:
            for found in sorted(Path(folder).glob(f"shipyard-{__version__}-*.whl")):
                return Path(shutil.copy2(found, into))
        raise ShipyardError(
            f"Shipyard {__version__} is not running from its source tree: put its wheel "
            "(pip wheel --no-deps SOURCE) in a folder and give it with --find-links"
        )
    with tempfile.TemporaryDirectory(prefix="shipyard-wheel-") as scratch:
        # A copy of the sources: the build leaves build/ and egg-info behind it.
        copy = Path(scratch) / "src"
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
        shutil.copytree(root / "src", copy / "src", ignore=ignore)
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, copy / name)
        _pip(
            ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(into), str(copy)],
            "building Shipyard's wheel",
            # The wheel's entries then carry one fixed time, not the build's: the same
            # sources make the same wheel, so a context's requirements pin it alike.
            {"SOURCE_DATE_EPOCH": str(WHEEL_EPOCH)},
        )
    (wheel,) = into.glob(f"shipyard-{__version__}-*.whl")
    return wheel


def _host_constraints(pinned: Sequence[str]) -> str:
    """This machine's installed versions as pip constraints, except what the bundles pin."""
    taken = {
        line.split("==", 1)[0].strip().lower().replace("_", "-") for line in pinned if "==" in line
    }
    lines = set()
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name and name not in taken and name != "shipyard":
            lines.add(f"{name}=={dist.version}")
    return "\n".join(sorted(lines)) + "\n"


def _wheel_name(path: Path) -> tuple[str, str]:
    """(project name, version) from a wheel's file name (``name-version-…whl``)."""
    name, version = path.name.split("-")[:2]
    return name.lower().replace("_", "-"), version


def hashed_requirements(wheels: Sequence[Path]) -> str:
    """A requirements file pinning each wheel's project to its version and sha256.

    UsageError when two wheels are of one project (pip would have to choose).
    """
    seen: dict[str, Path] = {}
    lines = ["# Every library of the image, pinned with its hash (pip --require-hashes)."]
    for wheel in sorted(wheels, key=_wheel_name):
        name, version = _wheel_name(wheel)
        if name in seen:
            raise UsageError(f"two wheels of {name}: {seen[name].name} and {wheel.name}")
        seen[name] = wheel
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{name}=={version} --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


def vendor_wheels(requirements: Sequence[str], into: Path, find_links: Sequence[str] = ()) -> Path:
    """Collect into ``into`` (emptied first) Shipyard's wheel and every wheel it and
    ``requirements`` need, and write ``into/requirements.txt`` with their hashes.

    Uses ``pip wheel`` with the build machine's package index (and ``find_links``);
    ShipyardError with pip's last lines when pip fails.
    """
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    wheel = shipyard_wheel(into, find_links)
    with tempfile.TemporaryDirectory(prefix="shipyard-pins-") as scratch:
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text(_host_constraints(requirements), encoding="utf-8")
        links = [arg for folder in find_links for arg in ("--find-links", folder)]
        _pip(
            [
                "wheel",
                "--quiet",
                "--wheel-dir",
                str(into),
                "--constraint",
                str(constraints),
                *links,
                str(wheel),
                *requirements,
            ],
            "collecting the image's wheels",
        )
    lock = into / "requirements.txt"
    lock.write_text(hashed_requirements(sorted(into.glob("*.whl"))), encoding="utf-8")
    return lock


def write_image_context(
    registry: Any,
    project: str,
    env: str,
    folder: Path,
    *,
    base_image: str | None = None,
    tag: str | None = None,
    source: str | None = None,
    find_links: Sequence[str] = (),
    kind: str = "serve",
) -> ImageContext:
    """Write the build context of ``env``'s revision, for an image of ``kind``, into ``folder``.

    The bundles are fetched and verified first (``bake_environment``: a tampered or
    untrusted bundle raises before anything else is done), then the wheels are collected
    (with awslambdaric for the ``lambda`` kind) and the Containerfile written. ``source`` is
    the registry the revision came from (the ``org.opencontainers.image.source`` label).
    ``folder``'s ``wheels/``, ``bundles/`` and ``Containerfile`` are replaced; nothing else
    in it is touched. UsageError for an unknown ``kind``.
    """
    if kind not in KINDS:
        raise UsageError(f"unknown image kind {kind!r} (known: {', '.join(KINDS)})")
    baked = bake_environment(registry, project, env, folder / "bundles")
    requirements = baked.requirements() + ([LAMBDA_CLIENT] if kind == "lambda" else [])
    lock = vendor_wheels(requirements, folder / "wheels", find_links)
    epoch = created_epoch(baked)
    base = base_image or default_base_image()
    origin = source or f"shipyard:{project}/{env}"
    labels = image_labels(baked, origin, epoch, kind)
    python = (sys.version_info[0], sys.version_info[1])
    wheels = tuple(line.split(" ", 1)[0] for line in lock.read_text().splitlines()[1:])
    names = {pin.split("==", 1)[0] for pin in wheels}
    installers = [tool for tool in ("pip", "setuptools") if tool not in names]
    text = containerfile(base, labels, python, epoch, installers, kind)
    (folder / "Containerfile").write_text(text, encoding="utf-8")
    suffix = "" if kind == "serve" else f"-{kind}"
    return ImageContext(
        folder,
        tag or f"shipyard-{project}-{env}{suffix}:{baked.revision}",
        base,
        baked,
        labels,
        wheels,
    )
