"""Access logs without secrets: the query string of each logged request is cut off."""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"


class QueryRedactor(logging.Filter):
    """Replaces the query string in uvicorn's access log lines with ``?…``.

    A client may send a token or API key there (both servers refuse it, but the line is
    logged before the answer): what reaches a log file must never hold it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2]
            if "?" in path:
                record.args = (*args[:2], path.split("?", 1)[0] + "?…", *args[3:])
        return True


def redact_access_log() -> None:
    """Cut query strings out of uvicorn's access log (call after uvicorn set up logging)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, QueryRedactor) for f in logger.filters):
        logger.addFilter(QueryRedactor())
