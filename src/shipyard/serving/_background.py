"""``Worker``: a bounded queue served by one daemon thread, for work kept off the hot path.

Shadow requests and request capture both use it. ``submit`` never blocks: when the queue
is full the item is refused (the caller counts the drop), so a slow consumer costs a
request at most a failed ``put_nowait``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("shipyard.serving")

_STOP = object()


class Worker:
    """Runs ``handle(item)`` for each submitted item on its own thread, in order.

    ``tick()`` (optional) runs every ``tick_seconds`` when idle and once more at ``stop``
    (capture flushes its files there). An exception in ``handle`` or ``tick`` is logged
    and the thread goes on.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[Any], None],
        maxsize: int,
        tick: Callable[[], None] | None = None,
        tick_seconds: float = 1.0,
    ) -> None:
        self.name = name
        self._handle = handle
        self._tick = tick
        self._tick_seconds = tick_seconds
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread (once)."""
        if not self._thread.is_alive():
            self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue ``item``; False (and nothing queued) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def stop(self, timeout: float) -> bool:
        """Finish the queue, tick once more, end the thread; False if ``timeout`` ran out."""
        if not self._thread.is_alive():
            return True
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.warning("%s: queue still full after %.0f s; stopping anyway", self.name, timeout)
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _run(self) -> None:
        last_tick = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self._tick_seconds)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._safely(self._tick)
                return
            if item is not None:
                self._safely(self._handle, item)
            if self._tick is not None and time.monotonic() - last_tick >= self._tick_seconds:
                last_tick = time.monotonic()
                self._safely(self._tick)

    def _safely(self, call: Callable[..., None] | None, *args: Any) -> None:
        if call is None:
            return
        try:
            call(*args)
        except Exception:
            logger.exception("%s failed", self.name)
