"""Per-component logs: one file per served component, read back by ``shipyard component logs``.

    LOG_DIR/COMPONENT.log      LOG_DIR: ``--log-dir``, else $SHIPYARD_HOME/logs/PROJECT/ENV

What goes in: every record an app's own modules log (``logging.getLogger(__name__)`` in
the app's code, INFO and above), the uncaught exception of any request to the app with its
traceback, and a model's requests that fail with a server error (5xx). One line a record:
``TIME LEVEL LOGGER: MESSAGE``, with the app's module names as the app's folder names them
(``app.main``). Files are appended to, never rotated by the server (several worker
processes write to one file); rotate them with ``logrotate``'s ``copytruncate``. With
``echo`` (``serve --app``: an app's own container) every record goes to stderr as well,
where ``kubectl logs`` and ``docker compose logs`` read it.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import sys
import threading
from pathlib import Path

from ..errors import NotFound
from ..registry import shipyard_home

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The private package name an app's modules are imported under (see ``_apps``): the log
# names them by the names they have in the app's folder.
_PRIVATE_PREFIX = re.compile(r"^shipyard_app_[0-9]+(\.|$)")


def default_log_dir(project: str, environment: str) -> Path:
    """Where a server for ``project``/``environment`` keeps its component logs by default."""
    return shipyard_home() / "logs" / project / environment


def log_file(folder: str | os.PathLike[str], component: str) -> Path:
    """The log file of ``component`` in ``folder``."""
    return Path(folder) / f"{component}.log"


def read_log(folder: str | os.PathLike[str], component: str, tail: int | None = None) -> list[str]:
    """The lines ``component`` logged (the last ``tail`` of them when given), without newlines.

    Raises NotFound naming the file when the component has logged nothing there yet.
    """
    path = log_file(folder, component)
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            lines = collections.deque(file, maxlen=tail) if tail is not None else list(file)
    except FileNotFoundError:
        raise NotFound(
            f"component {component} has no log at {path} yet: it has logged nothing there "
            "(a server writes it once the component logs; see --log-dir)"
        ) from None
    return [line.rstrip("\n") for line in lines]


class _Formatter(logging.Formatter):
    """``FORMAT``, naming an app's modules as its folder does (``app.main``)."""

    def __init__(self, text: str = FORMAT) -> None:
        super().__init__(text)

    def format(self, record: logging.LogRecord) -> str:
        name = _PRIVATE_PREFIX.sub("", record.name)
        if name != record.name:
            record = logging.makeLogRecord({**record.__dict__, "name": name or "app"})
        return super().format(record)


class ComponentLogs:
    """The log files of one server's components, in ``folder`` (made, private, when needed).

    ``attach(component, logger)`` sends what ``logger`` (an app's package) logs to the
    component's file; ``error`` writes the server's own record of a failed request there.
    ``echo`` sends every record to stderr too. Thread-safe; ``close`` detaches and
    closes every file.
    """

    def __init__(self, folder: str | os.PathLike[str], echo: bool = False) -> None:
        self.folder = Path(folder)
        self.echo = echo
        self._handlers: dict[str, logging.Handler] = {}
        self._attached: list[tuple[logging.Logger, logging.Handler]] = []
        self._lock = threading.Lock()
        self._server = logging.getLogger("shipyard.serving")

    def _handler(self, component: str) -> logging.Handler:
        with self._lock:
            found = self._handlers.get(component)
            if found is None:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                # delay: the file exists once the component logs something.
                found = logging.FileHandler(
                    log_file(self.folder, component), encoding="utf-8", delay=True
                )
                found.setFormatter(_Formatter())
                if self.echo:
                    found = _Tee(found, component)
                self._handlers[component] = found
            return found

    def path(self, component: str) -> Path:
        """Where ``component``'s records go."""
        return log_file(self.folder, component)

    def attach(self, component: str, logger_name: str) -> None:
        """Send what ``logger_name`` and its children log (INFO and up) to ``component``'s file."""
        logger = logging.getLogger(logger_name)
        handler = self._handler(component)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        with self._lock:
            self._attached.append((logger, handler))

    def detach(self, logger_name: str) -> None:
        """Stop sending ``logger_name``'s records anywhere (its app version was unloaded)."""
        with self._lock:
            kept = []
            for logger, handler in self._attached:
                if logger.name == logger_name:
                    logger.removeHandler(handler)
                else:
                    kept.append((logger, handler))
            self._attached = kept

    def error(
        self, component: str, message: str, exc: BaseException | None = None, level: int = 40
    ) -> None:
        """Write the server's record ``message`` (with ``exc``'s traceback) to its log."""
        record = self._server.makeRecord(
            self._server.name,
            level,
            __file__,
            0,
            message,
            (),
            (type(exc), exc, exc.__traceback__) if exc is not None else None,
        )
        self._handler(component).handle(record)

    def close(self) -> None:
        """Detach every logger and close every file."""
        with self._lock:
            for logger, handler in self._attached:
                logger.removeHandler(handler)
            self._attached = []
            handlers, self._handlers = list(self._handlers.values()), {}
        for handler in handlers:
            handler.close()


class _Tee(logging.Handler):
    """A component's file handler that also writes each record to stderr, naming the component."""

    def __init__(self, file: logging.Handler, component: str) -> None:
        super().__init__()
        self.file = file
        self.stream = logging.StreamHandler(sys.stderr)
        self.stream.setFormatter(_Formatter(f"%(levelname)-9s {component} %(name)s: %(message)s"))

    def handle(self, record: logging.LogRecord) -> bool:
        self.file.handle(record)
        self.stream.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # handle() does the work
        self.handle(record)

    def close(self) -> None:
        self.file.close()
        super().close()
