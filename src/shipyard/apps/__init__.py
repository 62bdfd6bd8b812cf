"""Apps: a user's web app locked as a versioned bundle, like a model.

    from shipyard.apps import build_app_bundle, AppBundle, read_app_config
    spec = read_app_config("tumour_app")                  # its shipyard-app.toml
    path = build_app_bundle("tumour_app", "dist", sign_key="keys/signing.pem")
    AppBundle(path).verify()                              # the runtime's manifest check
    folder = AppBundle(path).extract("/srv/tumour_app")   # verified first

The bundle is signed and written by ``shipyard.artifact`` and verified by the runtime,
exactly as a model bundle; ``Registry.register_app`` adds it as a component version.
See docs/apps.md.
"""

from ._bundle import AppBundle, build_app_bundle, bundle_kind
from ._config import CONFIG_FILE, AppSpec, read_app_config
from ._git import build_info

__all__ = [
    "CONFIG_FILE",
    "AppBundle",
    "AppSpec",
    "build_app_bundle",
    "build_info",
    "bundle_kind",
    "read_app_config",
]
