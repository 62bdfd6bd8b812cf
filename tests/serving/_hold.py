"""Ordering without sleeps: a model version that holds each call until the test lets it go.

A test that must act while a request is in flight (swap the route table, read the
answer while the shadow still runs) holds the request in ``HeldRunner.run`` and waits
for ``entered``; it sets ``release`` once it has acted. The bounds below only turn a
hang into a failure: no test passes or fails by how long something took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from shipyard.serving import ModelRunner

HOLD_LIMIT = 60.0  # seconds a held call waits for its release before it fails


class HeldRunner(ModelRunner):
    """``runner``'s loaded bundle answering as ``version``; every run waits for ``release``.

    ``entered`` is set as a run starts. A run not released within ``HOLD_LIMIT`` seconds
    raises TimeoutError, so a test that forgot to release fails instead of hanging.
    """

    def __init__(self, runner: ModelRunner, version: str) -> None:
        super().__init__(runner.executor, runner.model, version, runner.digest)
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, tables: Any, rows: int, plan: Any) -> Any:
        self.entered.set()
        if not self.release.wait(HOLD_LIMIT):
            raise TimeoutError(f"{self.model} {self.version} was held and never released")
        return super().run(tables, rows, plan)


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} (waited {timeout} s)"
        time.sleep(0.01)
