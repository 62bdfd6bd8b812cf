"""The demo's deploy step: render production's Kubernetes overlay and, where a builder and a
base image are at hand, build its image; where they are not, say which is missing."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from ..errors import ShipyardError
from ._serve_step import open_registry

BASE_ENV = "SHIPYARD_BASE_IMAGE"  # a base image of the user's own, looked for first
APT = "apt-get install buildah podman runc"
DEBOOTSTRAP = (
    "debootstrap --variant=minbase --include=python3,python3-venv bookworm ROOTFS && "
    "tar -C ROOTFS -c . | podman import - {image}"
)


def base_candidates() -> list[str]:
    """The base images the step looks for, in order: ``$SHIPYARD_BASE_IMAGE``, the official
    Python image of this Python, and the local Debian base the tests make."""
    from ..deploy import LOCAL_BASE_IMAGE, default_base_image

    given = os.environ.get(BASE_ENV)
    return list(
        dict.fromkeys([*([given] if given else []), default_base_image(), LOCAL_BASE_IMAGE])
    )


def deploy_step(workdir: Path, project: str, env: str, console: Console) -> Path:
    """Render ``env``'s Kubernetes manifests into ``workdir/deploy``; return the overlay.

    No cluster is reached: the files are written and recorded in the registry's audit log.
    With an image builder and a base image in its store, the image is built too (its
    context in ``workdir/deploy/PROJECT/image``; its size and digest printed, the build
    recorded); without, the step says which is missing and how to get it, and builds
    nothing (it only asks the builder's store, so it stays quick). The command that applies
    the overlay is printed last.
    """
    from ..deploy import find_builder, image_present, render_environment

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
    builder = find_builder()
    bases = base_candidates()
    base = next((b for b in bases if image_present(builder, b)), None) if builder else None
    image = f"shipyard deploy image --project {project} --env {env}"
    if builder is None:
        console.print(
            "image: not built: no image builder (buildah, podman or docker) on PATH; "
            f"install one ({APT}), then run: {image}",
            soft_wrap=True,
        )
    elif base is None:
        from ..deploy import LOCAL_BASE_IMAGE

        console.print(
            f"image: not built: {builder} is here, but none of the base images "
            f"{', '.join(bases)} is in its store; pull one where a registry is reachable, "
            f"or make one offline ({DEBOOTSTRAP.format(image=LOCAL_BASE_IMAGE)}), "
            f"then run: {image} --base-image IMAGE",
            soft_wrap=True,
        )
    else:
        _build(workdir, project, env, builder, base, console)
    console.print(
        f"apply on a cluster: kubectl apply -k {overlay}   (no cluster here: not run)",
        soft_wrap=True,
    )
    return overlay


def _build(
    workdir: Path, project: str, env: str, builder: str, base: str, console: Console
) -> None:
    """Write the image's context, build it with ``builder`` from ``base``, record the build."""
    from ..deploy import build_image, record_build, write_image_context

    context_folder = workdir / "deploy" / project / "image"
    console.print(
        f"[dim]$ shipyard deploy image --project {project} --env {env} --base-image {base} "
        f"-o {context_folder}[/]"
    )
    try:
        with open_registry(workdir) as registry:
            context = write_image_context(registry, project, env, context_folder, base_image=base)
            built = build_image(context, builder)
            record_build(registry, context, built)
    except ShipyardError as exc:  # the render stands; say why there is no image
        console.print(f"[red]image: not built: {exc}[/]", soft_wrap=True)
        return
    size = f"{built.size_bytes / 1e6:.0f} MB" if built.size_bytes else "size unknown"
    console.print(
        f"image: built {built.tag} with {built.builder} in {built.seconds:.0f} s: {size}, "
        f"digest sha256:{built.image_id}",
        soft_wrap=True,
    )
