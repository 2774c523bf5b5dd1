"""`/flows`, `/flows/state` and `/flow/:id`: read and deploy flows the way Node-RED's admin API does.

Tenancy (see `sofiaflow.runtime.security.ownership`): developers and users read and deploy only the tabs, subflows and
config nodes they own or that are shared with them. Starting and stopping all flows (`POST /flows/state`)
is for administrators: the flows of every tenant would stop; a refusal is a 403, audited.
`/flow/{id}/sharing` shares a tab, a subflow definition or a config node.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse

from sofiaflow.runtime.errors import FlowFormatError, FlowValidationError, Problem, StaleRevisionError
from sofiaflow.runtime.flows import ops as flow_ops
from sofiaflow.runtime.flows.deploy import DEPLOY_TYPES, DeployResult
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, denied, invalid_flows, record
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.ownership import units
from sofiaflow.runtime.security.permissions import PermissionDenied

router = APIRouter(tags=["flows"])

_FLOWS_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "array",
                            "items": {"type": "object"},
                            "description": "v1: the whole flow set",
                        },
                        {
                            "type": "object",
                            "required": ["flows"],
                            "description": "v2: flows, rev to check, credentials by node id",
                            "properties": {
                                "flows": {"type": "array", "items": {"type": "object"}},
                                "rev": {"type": "string"},
                                "credentials": {"type": "object"},
                            },
                        },
                    ]
                }
            }
        },
    }
}


def api_version(request: Request) -> str:
    version = request.headers.get("Node-RED-API-Version", "v1")
    if version not in ("v1", "v2"):
        raise ApiError(
            400, "invalid_api_version", f"Node-RED-API-Version {version!r} is not supported; use v1 or v2"
        )
    return version


def _user(request: Request) -> str | None:
    return getattr(request.state, "user", None)


def _role(request: Request) -> str | None:
    return getattr(request.state, "role", None)


def _visible(request: Request, runtime: Runtime) -> list:
    """The flows as the caller sees them (administrators: all; others: their own and shared tabs)."""
    return runtime.ownership.view(runtime.flows, _user(request), _role(request))


def _check_change(request: Request, runtime: Runtime, flow_id: str) -> None:
    if not runtime.ownership.may_change(_user(request), _role(request), flow_id):
        raise denied(request, f"flow {flow_id!r} is not {_user(request)}'s and not shared with them")


async def _deploy(
    runtime: Runtime,
    request: Request,
    flows: Any,
    deploy_type: str,
    rev: str | None = None,
    credentials: dict | None = None,
) -> DeployResult:
    """Deploy, turning the runtime's errors into Node-RED's answers."""
    try:
        return await runtime.deploy(flows, deploy_type, rev, credentials, user=_user(request))
    except StaleRevisionError as exc:
        raise ApiError(409, "version_mismatch", "Error", detail=str(exc), rev=exc.current) from None
    except FlowValidationError as exc:
        raise invalid_flows(exc.problems) from None
    except FlowFormatError as exc:
        raise invalid_flows([Problem(str(exc))]) from None


@router.get("/flows", summary="The deployed flows the caller may see (v1: array; v2: {flows, rev})")
async def get_flows(
    request: Request, runtime: RuntimeDep, version: Annotated[str, Depends(api_version)]
) -> Any:
    flows = _visible(request, runtime)
    if version == "v2":
        return JSONResponse({"flows": flows, "rev": runtime.rev})
    return JSONResponse(flows)


@router.post(
    "/flows",
    summary="Deploy a flow set",
    openapi_extra=_FLOWS_BODY,
    responses={
        204: {"description": "v1: deployed"},
        400: {"description": "invalid flows"},
        409: {"description": "stale rev"},
    },
)
async def post_flows(
    request: Request, runtime: RuntimeDep, version: Annotated[str, Depends(api_version)]
) -> Any:
    deploy_type = request.headers.get("Node-RED-Deployment-Type", "full")
    if deploy_type not in DEPLOY_TYPES:
        raise ApiError(
            400,
            "invalid_deployment_type",
            f"Node-RED-Deployment-Type {deploy_type!r} is not one of {', '.join(DEPLOY_TYPES)}",
        )
    if runtime.cluster is not None and runtime.cluster.sync is not None:
        # merge a developer's tabs into the newest flows, not into older ones
        await runtime.cluster.sync.catch_up()
    flows: Any = runtime.flows
    rev = credentials = None
    if deploy_type != "reload":
        raw = await request.body()
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise invalid_flows([Problem(f"the body is not valid JSON: {exc}")]) from None
        if isinstance(data, dict):
            flows, rev, credentials = data.get("flows"), data.get("rev"), data.get("credentials")
            if not isinstance(flows, list):
                raise invalid_flows([Problem("the body object has no 'flows' array")])
            if rev is not None and not isinstance(rev, str):
                raise invalid_flows([Problem("'rev' must be a string")])
            if credentials is not None and not isinstance(credentials, dict):
                raise invalid_flows([Problem("'credentials' must be an object keyed by node id")])
        elif isinstance(data, list):
            flows = data
        else:
            raise invalid_flows(
                [Problem(f"expected a JSON array of nodes or {{flows, rev}}, got {type(data).__name__}")]
            )
        try:  # a developer deploys what they see; the tabs of others are kept as they are
            hidden = {
                n.get("id") for n in runtime.ownership.hidden(runtime.flows, _user(request), _role(request))
            }
            flows = runtime.ownership.merge(runtime.flows, flows, _user(request), _role(request))
        except PermissionDenied as exc:
            raise denied(request, str(exc)) from None
        for node_id in credentials or {}:
            if node_id in hidden:
                raise denied(
                    request,
                    f"credentials for node {node_id!r}: it is not {_user(request)}'s and not "
                    "shared with them",
                )
    result = await _deploy(runtime, request, flows, deploy_type, rev, credentials)
    headers = _cluster_headers(result)
    if version == "v1":
        return Response(status_code=204, headers=headers)
    out: dict[str, Any] = {"rev": result.rev}
    if result.problems:
        out["problems"] = [p.as_dict() for p in result.problems]
    if result.start_failures:  # deployed, but these nodes did not start (they stay stopped)
        out["startFailures"] = [p.as_dict() for p in result.start_failures]
    if result.cluster is not None:
        out["cluster"] = result.cluster
    return JSONResponse(out, headers=headers)


def _cluster_headers(result: DeployResult) -> dict[str, str]:
    """In a cluster: which workers did not report the new revision in time (empty: all did), and its number."""
    if result.cluster is None:
        return {}
    return {
        "X-Sofiaflow-Cluster-Revision": str(result.cluster["revision"]),
        "X-Sofiaflow-Cluster-Pending": ",".join(result.cluster["pending"]),
    }


@router.get("/flows/state", summary="Whether the flows are running")
async def get_state(runtime: RuntimeDep) -> dict[str, str]:
    return {"state": runtime.state}


@router.post("/flows/state", summary="Start or stop the flows without changing them")
async def set_state(
    body: Annotated[dict[str, Any], Body(examples=[{"state": "stop"}])], request: Request, runtime: RuntimeDep
) -> dict[str, str]:
    state = body.get("state")
    if state not in ("start", "stop"):
        raise ApiError(400, "invalid_run_state", f"state {state!r} is not 'start' or 'stop'")
    if _role(request) != "administrator":
        raise denied(
            request,
            f"{_user(request)!r} is a {_role(request)}; starting or stopping the flows "
            "(every tenant's) is for administrators",
        )
    record(request, "flows.state", state)
    return {"state": await runtime.set_state(state)}


def _not_found(flow_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no flow (tab) with id {flow_id!r}")


@router.get("/flow/{flow_id}", summary="One tab with its nodes, or `global` (configs and subflows)")
async def get_flow(flow_id: str, request: Request, runtime: RuntimeDep) -> Any:
    if flow_id != "global" and not runtime.ownership.may_see(_user(request), _role(request), flow_id):
        raise _not_found(flow_id)  # as if it did not exist: its name is not the caller's business
    flow = flow_ops.get_flow(_visible(request, runtime) if flow_id == "global" else runtime.flows, flow_id)
    if flow is None:
        raise _not_found(flow_id)
    return JSONResponse(flow)


async def _apply(request: Request, runtime: Runtime, change: Any) -> None:
    """Compute new flows from the current ones and deploy them as `flows`, refusing if they moved meanwhile."""
    rev = runtime.rev
    current = runtime.flows
    try:
        new_flows = change(current)
    except FlowValidationError as exc:
        raise invalid_flows(exc.problems) from None
    except KeyError as exc:  # the tab went away meanwhile
        raise _not_found(str(exc.args[0])) from None
    try:  # the same rules as a whole deploy: nothing of others changed or used
        ownership = runtime.ownership
        new_flows = ownership.merge(
            current,
            ownership.own_part(current, new_flows, _user(request), _role(request)),
            _user(request),
            _role(request),
        )
    except PermissionDenied as exc:
        raise denied(request, str(exc)) from None
    await _deploy(runtime, request, new_flows, "flows", rev)


@router.post("/flow", summary="Add a tab (a `flows` deploy)")
async def add_flow(
    request: Request,
    body: Annotated[dict[str, Any], Body(examples=[{"label": "New", "nodes": []}])],
    runtime: RuntimeDep,
) -> dict[str, str]:
    made: dict[str, str] = {}

    def change(flows: list) -> list:
        new_flows, made["id"] = flow_ops.add_flow(flows, body)
        return new_flows

    await _apply(request, runtime, change)
    return {"id": made["id"]}


@router.put("/flow/{flow_id}", summary="Replace a tab's contents (a `flows` deploy)")
async def put_flow(
    flow_id: str, request: Request, body: Annotated[dict[str, Any], Body()], runtime: RuntimeDep
) -> dict[str, str]:
    if flow_id != "global" and flow_ops.get_flow(runtime.flows, flow_id) is None:
        raise _not_found(flow_id)
    _check_change(request, runtime, flow_id)
    await _apply(request, runtime, lambda flows: flow_ops.update_flow(flows, flow_id, body))
    return {"id": flow_id}


@router.delete("/flow/{flow_id}", status_code=204, summary="Remove a tab and its nodes (a `flows` deploy)")
async def delete_flow(flow_id: str, request: Request, runtime: RuntimeDep) -> Response:
    if flow_id == "global" or flow_ops.get_flow(runtime.flows, flow_id) is None:
        raise _not_found(flow_id)
    _check_change(request, runtime, flow_id)
    await _apply(request, runtime, lambda flows: flow_ops.delete_flow(flows, flow_id))
    return Response(status_code=204)


def _unit_kind(request: Request, runtime: Runtime, unit: str, seen: bool = True) -> str:
    """tab, subflow or config: what `unit` is (when the caller may see it, with `seen`); 404 otherwise."""
    kind = units(runtime.flows).get(unit)
    if kind is None or seen and not runtime.ownership.may_see(_user(request), _role(request), unit):
        raise ApiError(404, "not_found", f"no flow (tab), subflow or config node with id {unit!r}")
    return kind


@router.get(
    "/flow/{flow_id}/sharing", summary="The owner of a tab, subflow or config node, and who it is shared with"
)
async def get_sharing(flow_id: str, request: Request, runtime: RuntimeDep) -> dict:
    return runtime.ownership.sharing(flow_id, _unit_kind(request, runtime, flow_id))


@router.put(
    "/flow/{flow_id}/sharing",
    summary="Share a tab, subflow or config node with users, or give it to another owner",
)
async def put_sharing(
    flow_id: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"shared": ["ana"]}])] = None,
) -> dict:
    kind = _unit_kind(request, runtime, flow_id, seen=False)  # then 403 (audited) unless it is theirs
    if not isinstance(body, dict) or set(body) - {"owner", "shared"}:
        raise ApiError(400, "invalid_sharing", 'the body must be {"owner": "name", "shared": ["name", ...]}')
    owner, shared = body.get("owner"), body.get("shared")
    if owner is not None and (not isinstance(owner, str) or not owner):
        raise ApiError(400, "invalid_sharing", "owner: a user name")
    if shared is not None and (
        not isinstance(shared, list) or not all(isinstance(u, str) and u for u in shared)
    ):
        raise ApiError(400, "invalid_sharing", "shared: a list of user names")
    current = runtime.ownership.sharing(flow_id)["owner"]
    if _role(request) != "administrator" and current != _user(request):
        raise denied(request, f"only the owner of {kind} {flow_id!r} or an administrator may share it")
    result = runtime.ownership.share(flow_id, owner, shared, kind)
    record(request, "flow.share", flow_id, detail={"owner": owner, "shared": shared})
    return result
