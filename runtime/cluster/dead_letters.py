"""The partition nodes' dead letters: their storage in Redis (`dlq:{flow}:{node}` streams: written by a partition
group, listed, replayed onto their partition's stream, discarded) and their handling by users: the admin API's
routes (runtime/http/partition_routes.py) and the editor's Dead letters page both go through here.

Administrators see and handle every letter; other users those of the flows they own (`may_handle`). Only a
cluster has dead letters (`runtime.redis` set): in a single process the list is empty and a letter is not found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.partition_stream import as_text, decode_message, stream_key
from sofiaflow.runtime.errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from redis.asyncio import Redis


# ----- storage ----------------------------------------------------------------------------------------------
def dead_letter_stream(flow: str, node: str) -> str:
    """The Redis stream holding the dead letters of partition node `node` of `flow`."""
    return f"dlq:{flow}:{node}"


def dead_letter_id(flow: str, node: str, entry: str) -> str:
    return f"{flow}:{node}:{entry}"


def parse_dead_letter_id(text: str) -> tuple[str, str, str]:
    """(flow, node, entry id) of a dead letter's id `<flow>:<node>:<entry id>`; ValueError when malformed."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"dead letter id {text!r}: expected <flow>:<node>:<entry id>")
    return parts[0], parts[1], parts[2]


async def dead_letters(redis: Redis, limit: int = 1000) -> list[dict[str, Any]]:
    """Every dead letter (oldest first per stream, at most `limit` per partition node)."""
    out = []
    async for key in redis.scan_iter(match="dlq:*", count=200):
        name = key.decode() if isinstance(key, bytes) else key
        _, flow, node = name.split(":", 2)
        for entry, fields in await redis.xrange(name, count=limit):
            out.append(_letter(flow, node, entry, fields))
    return out


async def dead_letter_count(redis: Redis) -> int:
    total = 0
    async for key in redis.scan_iter(match="dlq:*", count=200):
        total += int(await redis.xlen(key))
    return total


async def dead_letters_metric(redis: Redis) -> bytes:
    """The dead-letter count as Prometheus text (appended to GET /metrics in cluster mode)."""
    return (
        "# HELP sofiaflow_partition_dead_letters Messages of partition nodes in the dead-letter streams.\n"
        "# TYPE sofiaflow_partition_dead_letters gauge\n"
        f"sofiaflow_partition_dead_letters {await dead_letter_count(redis)}\n"
    ).encode()


def _letter(flow: str, node: str, entry: Any, fields: dict[Any, Any]) -> dict[str, Any]:
    f = {as_text(k): as_text(v) for k, v in fields.items()}
    entry = as_text(entry)
    return {
        "id": dead_letter_id(flow, node, entry),
        "flow": flow,
        "node": node,
        "partition": int(f.get("partition", -1)),
        "streamId": f.get("streamId"),
        "deliveries": int(f.get("deliveries", 0)),
        "error": f.get("error") or None,
        "msg": decode_message(f["m"]) if "m" in f else None,
    }


async def get_dead_letter(redis: Redis, letter: str) -> dict[str, Any] | None:
    flow, node, entry = parse_dead_letter_id(letter)
    found = await redis.xrange(dead_letter_stream(flow, node), min=entry, max=entry)
    return _letter(flow, node, found[0][0], found[0][1]) if found else None


async def replay_dead_letter(redis: Redis, letter: str) -> str | None:
    """Append the dead letter's message to its partition's stream again (a new entry) and remove the letter;
    the new stream id, or None when there is no such letter."""
    flow, node, entry = parse_dead_letter_id(letter)
    key = dead_letter_stream(flow, node)
    found = await redis.xrange(key, min=entry, max=entry)
    if not found:
        return None
    fields = {as_text(k): as_text(v) for k, v in found[0][1].items()}
    stream = stream_key(flow, node, int(fields["partition"]))
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(stream, {"m": fields["m"]})
    pipe.xdel(key, entry)
    new_id, _ = await pipe.execute()
    return as_text(new_id)


async def delete_dead_letter(redis: Redis, letter: str) -> bool:
    flow, node, entry = parse_dead_letter_id(letter)
    return bool(await redis.xdel(dead_letter_stream(flow, node), entry))


async def write_dead_letters(
    redis: Redis, flow: str, node: str, group: str, partition: int, dead: list[tuple[str, Any, int, str]]
) -> None:
    """Move entries of a partition's stream to the dead letters, each (entry id, message text, deliveries,
    last error): appended to the dead-letter stream, acknowledged in consumer group `group` and deleted from the
    partition's stream in one transaction."""
    stream = stream_key(flow, node, partition)
    pipe = redis.pipeline(transaction=True)
    for entry_id, text, deliveries, error in dead:
        pipe.xadd(
            dead_letter_stream(flow, node),
            {
                "m": text,
                "partition": str(partition),
                "streamId": f"{partition}/{entry_id}",
                "deliveries": str(deliveries),
                "error": error,
            },
        )
    pipe.xack(stream, group, *[d[0] for d in dead])
    pipe.xdel(stream, *[d[0] for d in dead])
    await pipe.execute()


# ----- as users handle them ---------------------------------------------------------------------------------
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
