"""`GET /cluster` (administrators): the live workers; `GET /cluster/health` (no token): whether this worker serves.

In single-process mode `/cluster` answers this one worker, with mode "single"."""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from sofiaflow.runtime.http.deps import RuntimeDep, require_administrator
from sofiaflow.runtime.runtime import Runtime

router = APIRouter(tags=["cluster"])
health_router = APIRouter(tags=["cluster"])

_STARTED = time.time()


@router.get(
    "/cluster",
    summary="The workers of the cluster",
    dependencies=[Depends(require_administrator)],
)
async def get_cluster(runtime: RuntimeDep) -> dict[str, Any]:
    if runtime.cluster is not None:
        return await runtime.cluster.describe()
    return _single(runtime)


@health_router.get("/cluster/health", summary="Whether this worker serves (for load balancers; no token)")
async def health(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    if runtime.deployer is None or runtime.engine is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    worker = runtime.cluster.id if runtime.cluster is not None else None
    return JSONResponse({"status": "ok", "worker": worker})  # nothing about the flows: no token here


def _single(runtime: Runtime) -> dict[str, Any]:
    import psutil

    process = psutil.Process()
    now = time.time()
    address = f"{runtime.settings.host}:{runtime.settings.port}"
    return {
        "mode": "single",
        "self": address,
        "leader": address,
        "fencing_token": None,
        "workers": [
            {
                "id": address,
                "address": address,
                "pid": os.getpid(),
                "rev": runtime.rev,
                "uptime": round(now - _STARTED, 1),
                "heartbeat": now,
                "cpu": process.cpu_percent(None),
                "memory": process.memory_info().rss,
                "msgs_per_s": None,
                "leads": ["singletons"],
            }
        ],
    }
