"""Serving: one command serves an environment (or a bundle file) over REST.

    from shipyard.serving import ServeOptions, build_app, run
    run(ServeOptions(project="demo", environment="production"), port=8000)

Routes: our predict route (the dict format and MLflow's payloads), the Open Inference
Protocol v2 (KServe and Triton clients), /health, /metrics, /openapi.json and /docs.
A server follows its environment's revision (embedded, or a registry server at
``ServeOptions.registry_url``) and swaps warm versions in atomically; it checks API keys
(made by ``Registry.create_api_key``) against a ``KeyRing``. ``ServeOptions.bundle_dir``
serves an environment baked into a folder (``BakedRegistry``) with no registry. See
docs/serving.md.
"""

from ._app import ServingApp
from ._baked import BakedRegistry
from ._capture import CallRecords, Capture, CaptureRecord, CaptureSink, ParquetFolder
from ._environment import EnvironmentLoader, Follower
from ._keys import KeyRing
from ._metrics import Metrics
from ._routes import ModelRoute, RouteTable, bundle_table
from ._runner import ModelRunner
from ._server import ServeOptions, build_app, default_workers, run
from ._shadow import Shadow

__all__ = [
    "BakedRegistry",
    "CallRecords",
    "Capture",
    "CaptureRecord",
    "CaptureSink",
    "EnvironmentLoader",
    "Follower",
    "KeyRing",
    "Metrics",
    "ModelRoute",
    "ModelRunner",
    "ParquetFolder",
    "RouteTable",
    "ServeOptions",
    "ServingApp",
    "Shadow",
    "build_app",
    "bundle_table",
    "default_workers",
    "run",
]
