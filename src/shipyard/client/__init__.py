"""The client app code uses: models of its own environment by name, and its configs.

    from shipyard import client
    answers = client.predict("tumour_triage", [{"mean_radius": 14.2, ...}])
    threshold = client.app_config().get("threshold", 0.5)

Where the app runs comes from the context ``shipyard serve`` binds for each request of an
app it mounts (``bind``), else from the environment variables the deploy renders set:
SHIPYARD_PROJECT, SHIPYARD_ENV, SHIPYARD_APP_NAME, SHIPYARD_SERVING_URL,
SHIPYARD_API_KEY, SHIPYARD_APP_CONFIG and SHIPYARD_ENVIRONMENT_CONFIG (JSON objects).
Standard library only: it is the bottom layer, next to ``shipyard.runtime``. Every
failure is a ``ClientError``; none of them shows the API key. See docs/apps.md.
"""

from ._context import AppContext, Binding, app_config, bind, context, environment_config
from ._errors import ClientError
from ._predict import predict

__all__ = [
    "AppContext",
    "Binding",
    "ClientError",
    "app_config",
    "bind",
    "context",
    "environment_config",
    "predict",
]
