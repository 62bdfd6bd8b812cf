"""Serving: one command serves an environment (or a bundle file) over REST.

    from shipyard.serving import ServeOptions, build_app, run
    run(ServeOptions(project="demo", environment="production"), port=8000)

Routes: our predict route (the dict format and MLflow's payloads), the Open Inference
Protocol v2 (KServe and Triton clients), /health, /metrics, /openapi.json and /docs.
A server follows its environment's revision (embedded, or a registry server at
``ServeOptions.registry_url``) and swaps warm versions in atomically; it checks API keys
(made by ``Registry.create_api_key``) against a ``KeyRing``. ``ServeOptions.bundle_dir``
serves an environment baked into a folder (``BakedRegistry``) with no registry;
``ServeOptions.pins`` serve a model at one of its versions only (``check_pins`` says
before serving whether the environment holds it). The
environment's app components are served beside its models under ``/apps/NAME/``, each
logging to its own component log (``ComponentLogs``, ``read_log``). ``LambdaHandler``
answers AWS Lambda's HTTP events (API Gateway HTTP APIs, function URLs) with the same app,
in-process; ``shipyard.serving.aws_lambda.handler`` is the Lambda
image's handler. See docs/serving.md, docs/apps.md and docs/deploying.md.
"""

from ._app import ServingApp
from ._apps import AppMount
from ._baked import BakedRegistry
from ._capture import CallRecords, Capture, CaptureRecord, CaptureSink, ParquetFolder
from ._environment import EnvironmentLoader, Follower
from ._keys import KeyRing
from ._lambda import LambdaHandler
from ._logs import ComponentLogs, default_log_dir, read_log
from ._metrics import Metrics
from ._routes import ModelRoute, RouteTable, bundle_table
from ._runner import ModelRunner
from ._server import ServeOptions, build_app, check_pins, default_workers, run
from ._shadow import Shadow

__all__ = [
    "AppMount",
    "BakedRegistry",
    "CallRecords",
    "Capture",
    "CaptureRecord",
    "CaptureSink",
    "ComponentLogs",
    "EnvironmentLoader",
    "Follower",
    "KeyRing",
    "LambdaHandler",
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
    "check_pins",
    "default_log_dir",
    "default_workers",
    "read_log",
    "run",
]
