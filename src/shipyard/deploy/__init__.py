"""Deployments of an environment beyond one machine, rendered from the registry.

    from shipyard.deploy import render_environment
    render_environment(registry, "demo", "production", "kubernetes", Path("deploy"))

Targets: ``kubernetes`` (a Kustomize base and one overlay per environment), ``kserve``
(an InferenceService) and ``compose`` (a Compose file). The same environment revision,
with the same inherited settings and worker groups, renders byte-identical files. Each
render is recorded in the registry's audit log (``record_deployment``). See
docs/deploying.md.
"""

from ._bake import BakedBundle, BakedEnvironment, bake_environment
from ._builders import BUILDERS, BuiltImage, build_image, find_builder
from ._files import tree_digest
from ._image import ImageContext, app_containerfile, default_base_image, write_image_context
from ._plan import (
    BUNDLE_DIR,
    CONTAINER_UID,
    DATA_DIR,
    PORT,
    Image,
    Plan,
    default_image,
    parse_image,
    read_plan,
)
from ._render import TARGETS, Render, render_environment, render_files

__all__ = [
    "BUILDERS",
    "BakedBundle",
    "BakedEnvironment",
    "BuiltImage",
    "ImageContext",
    "app_containerfile",
    "bake_environment",
    "build_image",
    "default_base_image",
    "find_builder",
    "write_image_context",
    "BUNDLE_DIR",
    "CONTAINER_UID",
    "DATA_DIR",
    "PORT",
    "TARGETS",
    "Image",
    "Plan",
    "Render",
    "default_image",
    "parse_image",
    "read_plan",
    "render_environment",
    "render_files",
    "tree_digest",
]
