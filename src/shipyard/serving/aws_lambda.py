"""AWS Lambda's entry point: the handler ``shipyard.serving.aws_lambda.handler``.

The Lambda image that ``shipyard deploy render --target lambda`` writes runs
``python -m awslambdaric shipyard.serving.aws_lambda.handler``: the runtime interface
client imports this module once per cold start (Lambda's init phase) and then calls
``handler(event, context)`` for each request (``LambdaHandler``: the routes and errors of
``shipyard serve``). Importing it loads the environment baked into ``$SHIPYARD_BUNDLE_DIR``
(default ``BUNDLE_DIR``), checking every bundle (sha256, manifest, signature and pickle
policy) before any of it is loaded: a tampered bundle fails the import, so Lambda reports
an init error and the function answers nothing. ``$SHIPYARD_API_KEY_FILE``, when that file
exists, replaces the API keys baked into the image.

Import ``shipyard.serving.LambdaHandler`` instead to build a handler without side effects.
"""

from __future__ import annotations

import os

from ._lambda import LambdaHandler
from ._server import log_to_stderr

BUNDLE_DIR = "/opt/shipyard/bundles"  # where the Lambda image bakes the environment
BUNDLE_DIR_ENV = "SHIPYARD_BUNDLE_DIR"
API_KEY_FILE_ENV = "SHIPYARD_API_KEY_FILE"

log_to_stderr()  # Lambda sends a function's standard streams to its log group
# Models run single-threaded in one request at a time, as in each worker of serve.
os.environ.setdefault("OMP_NUM_THREADS", "1")
handler = LambdaHandler.from_baked(
    os.environ.get(BUNDLE_DIR_ENV) or BUNDLE_DIR, os.environ.get(API_KEY_FILE_ENV) or None
)
