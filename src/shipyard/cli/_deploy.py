"""``shipyard deploy``: what a platform team needs to run an environment beyond one machine.

``render`` writes deployment manifests (Kubernetes with Kustomize, a KServe
InferenceService, a Compose file, a Cloud Run service) or, for AWS Lambda, an image's
build context, from the registry's state of one environment; the same environment
revision always renders the same bytes. ``image`` writes the serve image's build context
and builds it. See docs/deploying.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ._backend import ENV, JSON, PROJECT, open_backend
from ._output import emit

app = typer.Typer(
    help="Deploy an environment beyond one machine: manifests and images.", no_args_is_help=True
)


@app.command("render")
def render(
    project: str = PROJECT,
    env: str = ENV,
    target: str = typer.Option(
        ...,
        "--target",
        "-t",
        help="What to render for: kubernetes, kserve, compose, cloudrun or lambda.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Folder to write into (default: deploy/PROJECT/TARGET)."
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Container image to run, a tag or a digest (name@sha256:…) "
        "(default: shipyard-PROJECT-ENV:REVISION; for lambda, the tag to build).",
    ),
    find_links: list[Path] = typer.Option(
        [], "--find-links", help="lambda: also take wheels from this folder (pip --find-links)."
    ),
    as_json: bool = JSON,
) -> None:
    """Write TARGET's manifests for ENV as it is now, and record the render in the audit log.

    Rendering the same environment revision again writes byte-identical files. lambda
    writes an image's build context instead: the bundles, verified against the registry's
    trusted keys first, and the wheels, collected from this machine's package index.
    """
    from ..deploy import render_environment

    folder = output if output is not None else Path("deploy") / project / target
    with open_backend() as backend:
        result = render_environment(
            backend,
            project,
            env,
            target,
            folder,
            image=image,
            source=_source(project, env),
            find_links=[str(p) for p in find_links],
        )
    emit(result, as_json, _rendered)


def _source(project: str, env: str) -> str | None:
    """The registry server's URL of the environment (an image's source label), if any."""
    import os

    from ._backend import URL_ENV

    url = os.environ.get(URL_ENV)
    return f"{url.rstrip('/')}/projects/{project}/environments/{env}" if url else None


def _rendered(render: dict[str, Any]) -> str:
    """What a render wrote, what to run next, and what it could not honour."""
    lines = [
        f"rendered {render['target']} for {render['project']}/{render['environment']} "
        f"revision {render['revision']} into {render['folder']} ({len(render['files'])} files; "
        f"image {render['image']})"
    ]
    folder = Path(render["folder"])
    if render["target"] == "kubernetes":
        lines.append(f"apply: kubectl apply -k {folder / 'overlays' / render['environment']}")
    elif render["target"] == "kserve":
        lines.append(f"apply: kubectl apply -f {folder / render['environment']}")
    elif render["target"] == "cloudrun":
        service = folder / render["environment"] / "service.yaml"
        lines.append(f"apply: gcloud run services replace {service} --region REGION")
    elif render["target"] == "lambda":
        context = folder / render["environment"]
        lines += [
            f"build: buildah bud --format docker --network none -t {render['image']} {context}"
            " (or podman build, docker build)",
            "then push it to Amazon ECR and: aws lambda create-function --package-type Image "
            "--code ImageUri=ECR_IMAGE --role ROLE_ARN --function-name NAME "
            "(see docs/deploying.md)",
        ]
    else:
        compose = folder / render["environment"] / "compose.yaml"
        lines.append(f"run: docker compose -f {compose} up (or podman compose)")
    lines += [f"note: {note}" for note in render["notes"]]
    return "\n".join(lines)


@app.command("image")
def image(
    project: str = PROJECT,
    env: str = ENV,
    base_image: str | None = typer.Option(
        None,
        "--base-image",
        help="Image both stages start from; it must be in the builder's store and have "
        "this Python's version (default: python:X.Y-slim-bookworm of this Python).",
    ),
    tag: str | None = typer.Option(
        None, "--tag", "-t", help="Name the image (default: shipyard-PROJECT-ENV:REVISION)."
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Folder to write the context into (default: deploy/PROJECT/image).",
    ),
    no_build: bool = typer.Option(
        False, "--no-build", help="Write the build context only, even when a builder is at hand."
    ),
    find_links: list[Path] = typer.Option(
        [], "--find-links", help="Also take wheels from this folder (pip --find-links)."
    ),
    as_json: bool = JSON,
) -> None:
    """Write a container image's build context for ENV as it is now, and build it.

    The bundles are verified against the registry's trusted keys first: a tampered or
    untrusted one fails the command before anything is built. The wheels come from this
    machine's package index; the build itself (buildah, podman or docker, the first found)
    runs with --network none and never pulls, and is recorded in the audit log. The image
    serves the environment from its baked bundles, needing no registry.
    """
    from ..deploy import build_image, find_builder, record_build, write_image_context

    folder = output if output is not None else Path("deploy") / project / "image"
    builder = None if no_build else find_builder()
    with open_backend() as backend:
        context = write_image_context(
            backend,
            project,
            env,
            folder,
            base_image=base_image,
            tag=tag,
            source=_source(project, env),
            find_links=[str(p) for p in find_links],
        )
        built = build_image(context, builder) if builder is not None else None
        if built is not None:  # the audit log keeps the build with the revision it came from
            record_build(backend, context, built)
    result: dict[str, Any] = {
        "project": project,
        "environment": env,
        "revision": context.baked.revision,
        "context": str(context.folder),
        "tag": context.tag,
        "base_image": context.base_image,
        "bundles": [
            {"model": b.model, "version": b.label, "digest": b.digest}
            for b in context.baked.bundles
        ],
        "wheels": len(context.wheels),
        "built": None,
    }
    if built is not None:
        result["built"] = {
            "builder": built.builder,
            "image_id": built.image_id,
            "size_bytes": built.size_bytes,
            "seconds": round(built.seconds, 1),
        }
    emit(result, as_json, _image_summary)


def _image_summary(result: dict[str, Any]) -> str:
    where = f"{result['project']}/{result['environment']} revision {result['revision']}"
    lines = [
        f"wrote the build context of {where} into {result['context']} "
        f"({len(result['bundles'])} bundles, {result['wheels']} wheels)"
    ]
    built = result["built"]
    if built is None:
        lines.append(
            "not built (--no-build, or no buildah, podman or docker here); to build it: "
            f"podman build --format docker --network none -t {result['tag']} {result['context']}"
        )
    else:
        size = f"{built['size_bytes'] / 1e6:.0f} MB" if built["size_bytes"] else "size unknown"
        lines.append(
            f"built {result['tag']} ({built['image_id'][:12]}, {size}) with {built['builder']} "
            f"in {built['seconds']} s"
        )
    return "\n".join(lines)
