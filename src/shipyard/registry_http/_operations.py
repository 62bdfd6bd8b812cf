"""The registry's HTTP operations: one table that the server, its OpenAPI and the client share.

Each ``Operation`` names a ``Registry`` method and the route that exposes it. Everything
else is read from the method itself: its parameters (and their types and defaults),
its docstring (the OpenAPI summary) and its return type (the response schema). A
parameter named in the path comes from the path; the others come from the query string
for GET and DELETE, from a JSON object body otherwise, except ``upload``: that parameter
is a file, sent as the raw request body (its other parameters then go in the query), and
``download``: that parameter is the folder the method writes a file into and returns the
path of; the server gives it a scratch folder and answers with the file itself, and the
client writes the file into the caller's folder.
"""

from __future__ import annotations

import inspect
import re
import typing
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..registry import ROLES, Registry
from ._values import Rule, convert, rule

__all__ = ["OPERATIONS", "Operation", "Param", "by_name", "convert"]

VIEWER, DEPLOYER, ADMIN = ROLES
_PATH_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Param:
    """One argument of an operation and where a request carries it (path, query, body, upload)."""

    name: str
    annotation: Any
    required: bool
    where: str

    @property
    def rule(self) -> Rule:
        """What its value must be beyond its type: a name's pattern, a number's range."""
        return rule(self.name)

    def read(self, value: Any) -> Any:
        """``value`` as sent (text in a path or query, JSON in a body), typed and checked.

        Raises InvalidInput naming the parameter when it does not fit.
        """
        return convert(self.name, value, self.annotation, text=self.where != "body")


@dataclass(frozen=True)
class Operation:
    """A ``Registry`` method exposed at ``method path`` (under /api/v1) to ``role`` and above.

    ``created``: a success is 201 Created; ``upload``: the parameter the request body fills;
    ``download``: the folder parameter of a method that returns a file (the response body).
    """

    name: str
    method: str
    path: str
    role: str
    created: bool = False
    upload: str | None = None
    download: str | None = None

    @cached_property
    def function(self) -> Any:
        """The ``Registry`` method this operation calls."""
        return getattr(Registry, self.name)

    @cached_property
    def hints(self) -> dict[str, Any]:
        """The method's resolved type hints, ``return`` included."""
        return typing.get_type_hints(self.function)

    @cached_property
    def params(self) -> list[Param]:
        """The method's arguments (without ``self``), in order, with where each travels."""
        in_path = set(_PATH_PARAM.findall(self.path))
        in_query = self.method in ("GET", "DELETE") or self.upload is not None
        found = []
        for p in list(inspect.signature(self.function).parameters.values())[1:]:
            if p.name in in_path:
                where = "path"
            elif p.name == self.upload:
                where = "upload"
            elif p.name == self.download:
                where = "download"
            else:
                where = "query" if in_query else "body"
            required = p.default is inspect.Parameter.empty
            found.append(Param(p.name, self.hints[p.name], required, where))
        return found

    @property
    def status(self) -> int:
        """The HTTP status of a success: 201 for a creation, 204 when nothing is returned."""
        if self.hints.get("return") in (None, type(None)):
            return 204
        return 201 if self.created else 200

    @property
    def summary(self) -> str:
        """The first line of the method's docstring."""
        return (inspect.getdoc(self.function) or self.name).splitlines()[0]

    @property
    def description(self) -> str:
        """The rest of the method's docstring."""
        return "\n".join((inspect.getdoc(self.function) or "").splitlines()[1:]).strip()

    def bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The arguments of a call made as to the ``Registry`` method (TypeError if wrong)."""
        bound = inspect.signature(self.function).bind(None, *args, **kwargs)
        return {k: v for k, v in list(bound.arguments.items())[1:]}


P = "/projects/{project}"
E = P + "/environments/{env}"

OPERATIONS: tuple[Operation, ...] = (
    Operation("list_projects", "GET", "/projects", VIEWER),
    Operation("create_project", "POST", "/projects", ADMIN, created=True),
    Operation("get_project", "GET", "/projects/{name}", VIEWER),
    Operation("delete_project", "DELETE", "/projects/{name}", ADMIN),
    Operation("list_models", "GET", P + "/models", VIEWER),
    Operation(
        "register_model", "POST", P + "/models", DEPLOYER, created=True, upload="bundle_path"
    ),
    # An app's versions live beside the models' (one components table): versions, tag and
    # the bundle download below take an app's name as well.
    Operation("list_apps", "GET", P + "/apps", VIEWER),
    Operation("register_app", "POST", P + "/apps", DEPLOYER, created=True, upload="bundle_path"),
    Operation("versions", "GET", P + "/models/{model}/versions", VIEWER),
    Operation("get_version", "GET", P + "/models/{model}/versions/{version}", VIEWER),
    # What a serve process following the registry over HTTP loads; readers read models.
    Operation(
        "fetch_bundle",
        "GET",
        P + "/models/{model}/versions/{version}/bundle",
        VIEWER,
        download="folder",
    ),
    Operation("tag", "POST", P + "/models/{model}/versions/{version_id}/tag", DEPLOYER),
    Operation("set_default", "PUT", P + "/models/{model}/default", DEPLOYER),
    Operation("list_environments", "GET", P + "/environments", VIEWER),
    Operation("create_environment", "POST", P + "/environments", ADMIN, created=True),
    Operation("get_environment", "GET", P + "/environments/{name}", VIEWER),
    # A deployer's for a challenger (CI's, when its pull request closes); the registry
    # asks for admin for any other environment.
    Operation("delete_environment", "DELETE", P + "/environments/{name}", DEPLOYER),
    Operation("set_promotes_to", "PUT", P + "/environments/{name}/promotes-to", ADMIN),
    # A deployer's: CI makes a challenger per pull request and promotes it on merge.
    Operation(
        "create_challenger",
        "POST",
        P + "/environments/{from_env}/challengers",
        DEPLOYER,
        created=True,
    ),
    Operation("list_components", "GET", E + "/components", VIEWER),
    Operation("add_component", "PUT", E + "/components/{name}", DEPLOYER),
    Operation("remove_component", "DELETE", E + "/components/{name}", DEPLOYER),
    Operation("save_component_config", "GET", E + "/component-config", VIEWER),
    Operation("apply_component_config", "PUT", E + "/component-config", DEPLOYER),
    Operation("get_environment_config", "GET", E + "/config", VIEWER),
    Operation("set_environment_config", "PUT", E + "/config", DEPLOYER),
    Operation("promote", "POST", E + "/promote", DEPLOYER),
    Operation("rollback", "POST", E + "/rollback", DEPLOYER),
    Operation("history", "GET", E + "/revisions", VIEWER),
    Operation("get_revision", "GET", E + "/revisions/{number}", VIEWER),
    Operation("status", "GET", E + "/status", VIEWER),
    Operation("diff", "GET", P + "/diff", VIEWER),
    Operation("list_change_requests", "GET", P + "/changes", VIEWER),
    Operation("get_change_request", "GET", P + "/changes/{request_id}", VIEWER),
    Operation("approve_change", "POST", P + "/changes/{request_id}/approve", DEPLOYER),
    Operation("reject_change", "POST", P + "/changes/{request_id}/reject", DEPLOYER),
    Operation("submit_batch_job", "POST", E + "/models/{model}/batch", DEPLOYER, created=True),
    Operation("list_batch_jobs", "GET", "/batch-jobs", VIEWER),
    Operation("get_batch_job", "GET", "/batch-jobs/{job_id}", VIEWER),
    Operation("cancel_batch_job", "POST", "/batch-jobs/{job_id}/cancel", DEPLOYER),
    # A worker runs jobs that deployers submit: the same role, not an admin's.
    Operation("claim_batch_job", "POST", "/batch-jobs/claim", DEPLOYER),
    Operation("recover_batch_jobs", "POST", "/batch-jobs/recover", DEPLOYER),
    Operation("heartbeat_batch_job", "POST", "/batch-jobs/{job_id}/heartbeat", DEPLOYER),
    Operation("finish_batch_job", "POST", "/batch-jobs/{job_id}/finish", DEPLOYER),
    Operation("get_settings", "GET", "/settings", VIEWER),
    Operation("get_setting", "GET", "/settings/{key}", VIEWER),
    Operation("set_setting", "PUT", "/settings/{key}", DEPLOYER),
    Operation("inherit_setting", "DELETE", "/settings/{key}", DEPLOYER),
    Operation("list_worker_groups", "GET", "/worker-groups", VIEWER),
    Operation("create_worker_group", "POST", "/worker-groups", ADMIN, created=True),
    Operation("update_worker_group", "PATCH", "/worker-groups/{name}", ADMIN),
    Operation("delete_worker_group", "DELETE", "/worker-groups/{name}", ADMIN),
    Operation("audit_list", "GET", "/audit", VIEWER),
    Operation("audit_verify", "GET", "/audit/verify", VIEWER),
    Operation("audit_head", "GET", "/audit/head", VIEWER),
    Operation("audit_anchor", "POST", "/audit/anchors", DEPLOYER, created=True),
    Operation("list_tokens", "GET", "/tokens", ADMIN),
    Operation("create_token", "POST", "/tokens", ADMIN, created=True),
    Operation("revoke_token", "DELETE", "/tokens/{token_id}", ADMIN),
    # Serving keys are an environment's, like its components: what a deployer (CI) manages.
    Operation("list_api_keys", "GET", E + "/api-keys", VIEWER),
    Operation("create_api_key", "POST", E + "/api-keys", DEPLOYER, created=True),
    Operation("revoke_api_key", "DELETE", E + "/api-keys/{key_id}", DEPLOYER),
    # A serve process checks keys against these; a viewer must not read them.
    Operation("api_key_digests", "GET", E + "/api-key-digests", DEPLOYER),
    Operation("list_trusted_keys", "GET", "/keys", VIEWER),
    Operation("trust_key", "POST", "/keys", ADMIN, created=True),
    Operation("revoke_trusted_key", "DELETE", "/keys/{name}", ADMIN),
    # What `shipyard monitor drift` found; a deployer's token runs it from cron.
    Operation("record_drift", "POST", E + "/drift", DEPLOYER, created=True),
    Operation("drift_results", "GET", E + "/drift", VIEWER),
    # What was made of an environment outside the registry: rendered manifests, built images.
    Operation("record_deployment", "POST", E + "/deployments", DEPLOYER, created=True),
    Operation("list_deployments", "GET", E + "/deployments", VIEWER),
)

_BY_NAME = {op.name: op for op in OPERATIONS}


def by_name(name: str) -> Operation | None:
    """The operation that exposes ``Registry.<name>``, or None."""
    return _BY_NAME.get(name)
