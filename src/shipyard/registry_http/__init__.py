"""The registry HTTP API (``create_app``) and its client (``RegistryClient``).

    from shipyard.registry import Registry
    from shipyard.registry_http import create_app
    app = create_app(Registry.open)                 # an ASGI app: uvicorn.run(app, port=8080)

    from shipyard.registry_http import RegistryClient
    client = RegistryClient("http://127.0.0.1:8080", token="shy_1_...")
    client.promote("demo", "integration")           # Registry's methods, results as JSON data

One operation table (``OPERATIONS``) drives the routes, the OpenAPI document and the
client. See docs/registry.md.
"""

from ._app import create_app
from ._client import RegistryClient, error_from_response
from ._openapi import API_PREFIX, openapi
from ._operations import OPERATIONS, Operation

__all__ = [
    "API_PREFIX",
    "OPERATIONS",
    "Operation",
    "RegistryClient",
    "create_app",
    "error_from_response",
    "openapi",
]
