"""The partition nodes' dead letters as a user sees and handles them: the admin API's routes
(runtime/http/partition_routes.py) and the editor's Dead letters page both go through here.

Administrators see and handle every letter; other users those of the flows they own (`may_handle`). Only a
cluster has dead letters (`runtime.redis` set): in a single process the list is empty and a letter is not found.
A letter is read, replayed and deleted with runtime/cluster/partitions.py's functions.
"""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.cluster.partitions import (
    dead_letters,
    delete_dead_letter,
    get_dead_letter,
    parse_dead_letter_id,
    replay_dead_letter,
)
from sofiaflow.runtime.errors import NotFound, PermissionDenied


class DeadLetterNotFound(NotFound):
    """No such dead letter (or this runtime runs no cluster)."""


class DeadLetterRefused(PermissionDenied):
    """The letter belongs to a flow the user does not own."""


def may_handle(runtime: Any, user: str | None, role: str | None, flow: str) -> bool:
    """Whether `user` (of `role`) sees and handles the dead letters of `flow`: administrators all, others
    those of the flows they own."""
    if role == "administrator":
        return True
    ownership = getattr(runtime, "ownership", None)
    return ownership is not None and user is not None and ownership.owner(flow) == user


def clustered(runtime: Any) -> bool:
    """Whether the runtime runs in a cluster (the only mode with dead letters)."""
    return getattr(runtime, "redis", None) is not None


def dead_lettered_at(letter_id: str) -> int | None:
    """When the letter went to the dead letters (epoch ms: its stream entry id's time), None when unknown."""
    try:
        entry = parse_dead_letter_id(letter_id)[2]
        return int(entry.split("-", 1)[0])
    except ValueError:
        return None


async def visible_dead_letters(
    runtime: Any, user: str | None, role: str | None, limit: int = 1000
) -> list[dict[str, Any]]:
    """The dead letters `user` may see (at most `limit` per partition node), oldest first per node."""
    if not clustered(runtime):
        return []
    return [d for d in await dead_letters(runtime.redis, limit) if may_handle(runtime, user, role, d["flow"])]


async def find_dead_letter(runtime: Any, user: str | None, role: str | None, letter: str) -> dict[str, Any]:
    """The letter `letter`: ValueError for a malformed id, DeadLetterNotFound, DeadLetterRefused."""
    if not clustered(runtime):
        raise DeadLetterNotFound(f"dead letter {letter!r}: this runtime runs no cluster")
    found = await get_dead_letter(runtime.redis, letter)
    if found is None:
        raise DeadLetterNotFound(f"dead letter {letter!r} does not exist")
    if not may_handle(runtime, user, role, found["flow"]):
        raise DeadLetterRefused(f"dead letter {letter!r} belongs to a flow {user!r} does not own")
    return found


async def replay(runtime: Any, user: str | None, role: str | None, letter: str) -> tuple[dict[str, Any], str]:
    """Put the letter back on its partition's stream (processed again) and remove it: (the letter, the new
    stream id `<partition>/<entry id>`). Errors as `find_dead_letter`."""
    found = await find_dead_letter(runtime, user, role, letter)
    stream_id = await replay_dead_letter(runtime.redis, letter)
    if stream_id is None:  # replayed or deleted meanwhile
        raise DeadLetterNotFound(f"dead letter {letter!r} does not exist")
    return found, f"{found['partition']}/{stream_id}"


async def discard(runtime: Any, user: str | None, role: str | None, letter: str) -> dict[str, Any]:
    """Delete the letter (never processed); the letter. Errors as `find_dead_letter`."""
    found = await find_dead_letter(runtime, user, role, letter)
    await delete_dead_letter(runtime.redis, letter)
    return found
