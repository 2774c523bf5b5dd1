"""Dead letters of the partition nodes (cluster mode): `GET /partitions/dead-letters`,
`POST /partitions/dead-letters/{id}/replay` (back onto its partition's stream, processed again) and
`DELETE /partitions/dead-letters/{id}`. Administrators see and handle every letter, other users those of the
flows they own. In single-process mode there are none (the partition node writes no stream)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, denied, record, require_user
from sofiaflow.runtime.runtime import Runtime

router = APIRouter(tags=["partitions"], dependencies=[Depends(require_user)])


def _may(request: Request, runtime: Runtime, flow: str) -> bool:
    if request.state.role == "administrator":
        return True
    ownership = getattr(runtime, "ownership", None)
    return ownership is not None and ownership.owner(flow) == request.state.user


async def _letter(request: Request, runtime: Runtime, letter: str) -> dict[str, Any]:
    from sofiaflow.runtime.cluster.partitions import get_dead_letter

    if runtime.redis is None:
        raise ApiError(404, "not_found", f"dead letter {letter!r}: this runtime runs no cluster")
    try:
        found = await get_dead_letter(runtime.redis, letter)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    if found is None:
        raise ApiError(404, "not_found", f"dead letter {letter!r} does not exist")
    if not _may(request, runtime, found["flow"]):
        raise denied(request, f"dead letter {letter!r} belongs to a flow {request.state.user!r} does not own")
    return found


@router.get("/partitions/dead-letters", summary="The partition nodes' dead letters")
async def list_dead_letters(request: Request, runtime: RuntimeDep, limit: int = 1000) -> dict[str, Any]:
    if runtime.redis is None:
        return {"deadLetters": [], "count": 0}
    from sofiaflow.runtime.cluster.partitions import dead_letters

    if not 1 <= limit <= 10000:
        raise ApiError(400, "invalid_request", f"limit: expected 1 to 10000, not {limit}")
    letters = [d for d in await dead_letters(runtime.redis, limit) if _may(request, runtime, d["flow"])]
    return {"deadLetters": letters, "count": len(letters)}


@router.post("/partitions/dead-letters/{letter}/replay", summary="Process a dead letter again")
async def replay(letter: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    from sofiaflow.runtime.cluster.partitions import replay_dead_letter

    found = await _letter(request, runtime, letter)
    stream_id = await replay_dead_letter(runtime.redis, letter)
    if stream_id is None:  # replayed or deleted meanwhile
        raise ApiError(404, "not_found", f"dead letter {letter!r} does not exist")
    record(
        request, "partition.replay", letter, detail={"partition": found["partition"], "streamId": stream_id}
    )
    return {
        "replayed": letter,
        "partition": found["partition"],
        "streamId": f"{found['partition']}/{stream_id}",
    }


@router.delete("/partitions/dead-letters/{letter}", summary="Drop a dead letter")
async def delete(letter: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    from sofiaflow.runtime.cluster.partitions import delete_dead_letter

    await _letter(request, runtime, letter)
    await delete_dead_letter(runtime.redis, letter)
    record(request, "partition.delete", letter)
    return {"deleted": letter}
