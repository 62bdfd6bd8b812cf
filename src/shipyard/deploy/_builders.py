"""Building a context with the image builder at hand: buildah, podman or docker (that order).

Every build runs with ``--network none`` (the context carries every wheel it installs)
and never pulls: the base image must already be in the builder's store, so a build
touches no network at all. With buildah and podman the image is written in the docker
format, the one that keeps ``HEALTHCHECK``, and its timestamps are the context's fixed
creation time (``--timestamp``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ShipyardError, UsageError
from ._image import ImageContext, created_epoch

BUILDERS = ("buildah", "podman", "docker")
# The base image made on a machine that reaches no image registry (Debian bookworm with
# python3, from debootstrap; docs/deploying.md): the tests make it, and the demo uses it.
LOCAL_BASE_IMAGE = "localhost/shipyard-test-base:bookworm"


@dataclass(frozen=True)
class BuiltImage:
    """An image a builder made: its id, tag, size in bytes (None when unknown), build time."""

    builder: str
    tag: str
    image_id: str
    size_bytes: int | None
    seconds: float


def find_builder() -> str | None:
    """The first of buildah, podman and docker on PATH, or None."""
    return next((name for name in BUILDERS if shutil.which(name)), None)


def image_present(builder: str, image: str) -> bool:
    """Whether ``image`` is in ``builder``'s store (asked of the builder; False if it fails)."""
    if shutil.which(builder) is None:
        return False
    if builder == "podman":
        command = ["podman", "image", "exists", image]
    elif builder == "buildah":
        command = ["buildah", "inspect", "--type", "image", image]
    else:
        command = [builder, "image", "inspect", image]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def build_command(builder: str, context: ImageContext, iidfile: Path) -> list[str]:
    """The command that builds ``context`` with ``builder`` (UsageError for another name)."""
    common = ["--network", "none", "--iidfile", str(iidfile), "-t", context.tag]
    common += ["-f", str(context.containerfile), str(context.folder)]
    # The docker format keeps HEALTHCHECK; never pull; the context's fixed creation time.
    podman_like = ["--format", "docker", "--pull=never", "--timestamp"]
    podman_like.append(str(created_epoch(context.baked)))
    if builder == "buildah":
        return ["buildah", "bud", *podman_like, *common]
    if builder == "podman":
        return ["podman", "build", *podman_like, *common]
    if builder == "docker":
        return ["docker", "build", *common]  # docker pulls only a base it does not have
    raise UsageError(f"unknown image builder {builder!r} (known: {', '.join(BUILDERS)})")


def image_size(image_id: str, builder: str) -> int | None:
    """The image's size in bytes, asked of podman or docker (buildah shares podman's store)."""
    for tool in ("podman", "docker") if builder != "docker" else ("docker",):
        if shutil.which(tool) is None:
            continue
        done = subprocess.run(
            [tool, "image", "inspect", "--format", "{{.Size}}", image_id],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip().isdigit():
            return int(done.stdout.strip())
    return None


def build_image(context: ImageContext, builder: str | None = None) -> BuiltImage:
    """Build ``context`` with ``builder`` (default: ``find_builder()``); the builder's own
    output goes to stderr. ShipyardError when the build fails, naming the context folder;
    UsageError when there is no builder."""
    chosen = builder or find_builder()
    if chosen is None:
        raise UsageError(f"no image builder found: install one of {', '.join(BUILDERS)}")
    with tempfile.TemporaryDirectory(prefix="shipyard-build-") as scratch:
        iidfile = Path(scratch) / "image-id"
        started = time.perf_counter()
        command = build_command(chosen, context, iidfile)
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:  # the builder's progress, never on stdout (--json)
                sys.stderr.write(line)
        seconds = time.perf_counter() - started
        if process.returncode != 0:
            raise ShipyardError(
                f"{chosen} failed to build {context.tag} (exit {process.returncode}); its "
                f"output is above, the build context is in {context.folder}"
            )
        image_id = iidfile.read_text().strip().removeprefix("sha256:")
    return BuiltImage(chosen, context.tag, image_id, image_size(image_id, chosen), seconds)


def record_build(registry: Any, context: ImageContext, built: BuiltImage) -> Any:
    """Record ``built`` in the audit log with the revision its context came from (target
    ``image``, the tag, and the image id as its digest); returns the registry's record."""
    baked = context.baked
    digest = f"sha256:{built.image_id}"
    return registry.record_deployment(
        baked.project, baked.environment, "build", "image", baked.revision, context.tag, digest
    )
