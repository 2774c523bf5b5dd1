"""Dead letters of the partition nodes (cluster mode): `GET /partitions/dead-letters`,
`POST /partitions/dead-letters/{id}/replay` (back onto its partition's stream, processed again) and
`DELETE /partitions/dead-letters/{id}`. Administrators see and handle every letter, other users those of the
flows they own. In single-process mode there are none (the partition node writes no stream)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request

from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, denied, record, require_user

T = TypeVar("T")

router = APIRouter(tags=["partitions"], dependencies=[Depends(require_user)])


async def _handled(request: Request, action: Awaitable[T]) -> T:
    """The answer of a dead-letter action (runtime/cluster/dead_letters.py), its refusals as API errors."""
    from sofiaflow.runtime.cluster.dead_letters import DeadLetterNotFound, DeadLetterRefused

    try:
        return await action
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    except DeadLetterNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except DeadLetterRefused as exc:
        raise denied(request, str(exc)) from None


@router.get("/partitions/dead-letters", summary="The partition nodes' dead letters")
async def list_dead_letters(request: Request, runtime: RuntimeDep, limit: int = 1000) -> dict[str, Any]:
    if runtime.redis is None:
        return {"deadLetters": [], "count": 0}
    from sofiaflow.runtime.cluster.dead_letters import visible_dead_letters

    if not 1 <= limit <= 10000:
        raise ApiError(400, "invalid_request", f"limit: expected 1 to 10000, not {limit}")
    letters = await visible_dead_letters(runtime, request.state.user, request.state.role, limit)
    return {"deadLetters": letters, "count": len(letters)}


@router.post("/partitions/dead-letters/{letter}/replay", summary="Process a dead letter again")
async def replay(letter: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    from sofiaflow.runtime.cluster import dead_letters

    user, role = request.state.user, request.state.role
    found, stream_id = await _handled(request, dead_letters.replay(runtime, user, role, letter))
    record(
        request,
        "partition.replay",
        letter,
        detail={"partition": found["partition"], "streamId": stream_id.split("/", 1)[1]},
    )
    return {"replayed": letter, "partition": found["partition"], "streamId": stream_id}


@router.delete("/partitions/dead-letters/{letter}", summary="Drop a dead letter")
async def delete(letter: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    from sofiaflow.runtime.cluster import dead_letters

    user, role = request.state.user, request.state.role
    await _handled(request, dead_letters.discard(runtime, user, role, letter))
    record(request, "partition.delete", letter)
    return {"deleted": letter}
