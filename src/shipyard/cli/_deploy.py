"""``shipyard deploy``: what a platform team needs to run an environment beyond one machine.

``render`` writes deployment manifests (Kubernetes with Kustomize, a KServe
InferenceService, a Compose file) from the registry's state of one environment; the
same environment revision always renders the same bytes. See docs/deploying.md.
"""

from __future__ import annotations

from pathlib import Path

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
        ..., "--target", "-t", help="What to render for: kubernetes, kserve or compose."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Folder to write into (default: deploy/TARGET)."
    ),
    image: str | None = typer.Option(
        None,
        "--image",
        help="Container image to run, a tag or a digest (name@sha256:…) "
        "(default: shipyard-PROJECT-ENV:REVISION).",
    ),
    as_json: bool = JSON,
) -> None:
    """Write TARGET's manifests for ENV as it is now, and record the render in the audit log.

    Rendering the same environment revision again writes byte-identical files.
    """
    from ..deploy import render_environment

    folder = output if output is not None else Path("deploy") / target
    with open_backend() as backend:
        result = render_environment(backend, project, env, target, folder, image=image)
    emit(
        result,
        as_json,
        lambda r: (
            f"rendered {r['target']} for {project}/{env} revision {r['revision']} "
            f"into {r['folder']} ({len(r['files'])} files; image {r['image']})"
        ),
    )
