"""The demo's deploy step: render production's Kubernetes overlay, and say what an image needs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from ._serve_step import open_registry


def deploy_step(workdir: Path, project: str, env: str, console: Console) -> Path:
    """Render ``env``'s Kubernetes manifests into ``workdir/deploy``; return the overlay.

    No cluster is reached: the files are written, recorded in the registry's audit log, and
    the command that applies them is printed. An image is built only by ``shipyard deploy
    image``; this step says whether a builder and the base image are at hand for it.
    """
    from ..deploy import default_base_image, find_builder, render_environment

    folder = workdir / "deploy" / project / "kubernetes"
    console.print(
        f"[dim]$ shipyard deploy render --project {project} --env {env} "
        f"--target kubernetes -o {folder}[/]"
    )
    with open_registry(workdir) as registry:
        render = render_environment(registry, project, env, "kubernetes", folder)
    overlay = folder / "overlays" / env
    console.print(
        f"rendered {len(render.files)} files for {project}/{env} revision {render.revision} "
        f"(image {render.image}) into {folder}"
    )
    for name in sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.yaml")):
        console.print(f"  {name}")
    console.print(f"apply on a cluster: kubectl apply -k {overlay}   (no cluster here: not run)")
    builder = find_builder()
    base = default_base_image()
    image = f"shipyard deploy image --project {project} --env {env}"
    if builder is None:
        console.print(
            "image: no builder (buildah, podman or docker) on PATH; install buildah "
            f"(apt-get install buildah) and run: {image}"
        )
    elif not _has_image(builder, base):
        console.print(
            f"image: {builder} is here but the base image {base} is not in its store "
            f"(no registry is reachable here); import one, then run: {image} --base-image IMAGE"
        )
    else:
        console.print(f"image: {builder} and {base} are at hand; build it with: {image}")
    return overlay


def _has_image(builder: str, image: str) -> bool:
    if builder == "docker" or shutil.which(builder) is None:
        return False
    command = (
        [builder, "image", "exists", image]
        if builder == "podman"
        else [builder, "inspect", "--type", "image", image]
    )
    done = subprocess.run(command, capture_output=True, timeout=60)
    return done.returncode == 0
