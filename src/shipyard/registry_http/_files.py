"""Files over the registry API: the answer of a ``download`` operation, on both sides.

The server runs the method with a scratch folder and sends the file it returns as the
response body (``Content-Disposition`` carries its name); the scratch folder is removed
once the body is sent. The client streams the body into the caller's folder under that
name (through a temporary name, so a broken transfer leaves no partial file) and
returns the path, as the ``Registry`` method does.
"""

from __future__ import annotations

import os
import re
from contextlib import ExitStack
from pathlib import Path

import httpx
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

__all__ = ["file_response", "save_download"]

MEDIA_TYPE = "application/gzip"  # what every downloadable registry file is: a bundle
_FILENAME = re.compile(r'filename="([^"/\\]+)"')


def file_response(path: Path, scratch: ExitStack, headers: dict[str, str]) -> Response:
    """``path`` as the response body; ``scratch`` (its folder) is closed once it is sent."""
    return FileResponse(
        path,
        media_type=MEDIA_TYPE,
        filename=path.name,
        headers=headers,
        background=BackgroundTask(scratch.close),
    )


def save_download(response: httpx.Response, folder: str | os.PathLike[str]) -> Path:
    """Stream a download's body into ``folder`` under the name the server gave; its path.

    The name is reduced to its last part, so a server cannot write outside ``folder``.
    """
    found = _FILENAME.search(response.headers.get("content-disposition", ""))
    name = Path(found.group(1)).name if found else "download.tar.gz"
    target = Path(folder) / name
    partial = target.with_name(f".{name}.partial")
    try:
        with partial.open("wb") as file:
            for chunk in response.iter_bytes():
                file.write(chunk)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
