"""``BatchClient``: batch jobs on a registry server, called like ``Jobs``.

Results are the jobs' plain JSON data; failures raise the server's ShipyardError class
with its message (as ``RegistryClient`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import RegistryError
from ..registry_http import API_PREFIX, error_from_response


class BatchClient:
    """The batch routes of the registry server at ``url``, authenticated with ``token``."""

    def __init__(
        self, url: str, token: str | None = None, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX, headers=headers, timeout=60.0, transport=transport
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach the registry at {self.url}: {exc}") from None
        if not response.is_success:
            raise error_from_response(response)
        return response.json()

    def submit(
        self,
        project: str,
        env: str,
        model: str,
        input: str,
        output: str,
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        """Queue a job; see ``submit_job``."""
        names = (quote(project, safe=""), quote(env, safe=""), quote(model, safe=""))
        path = "/projects/{}/environments/{}/models/{}/batch".format(*names)
        body = {**(options or {}), "input": input, "output": output}
        return self._call("POST", path, json=body)

    def get(self, job_id: int) -> Any:
        """One job; see ``get_job``."""
        return self._call("GET", f"/batch-jobs/{int(job_id)}")

    def list(
        self,
        project: str | None = None,
        env: str | None = None,
        state: str | None = None,
        limit: int = 50,
    ) -> Any:
        """Jobs, newest first; see ``list_jobs``."""
        query = {"project": project, "env": env, "state": state, "limit": str(limit)}
        return self._call("GET", "/batch-jobs", params={k: v for k, v in query.items() if v})

    def cancel(self, job_id: int) -> Any:
        """Cancel a job; see ``cancel_job``."""
        return self._call("POST", f"/batch-jobs/{int(job_id)}/cancel")

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()
