"""Where a keyed message goes in a cluster: a stable hash of its key onto one of N partitions (`partition_of`),
and rendezvous hashing of partitions onto the live workers (`owner_of`, `placement`): a worker joining takes
about 1/n of the partitions and none move between the others."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def partition_of(key: Any, partitions: int) -> int:
    """The partition of a key: a stable hash (the same in every process and release) modulo `partitions`."""
    text = key if isinstance(key, str) else json.dumps(key, sort_keys=True, default=str)
    return _hash64(text) % partitions


def owner_of(item: str, workers: Iterable[str]) -> str | None:
    """Rendezvous (highest random weight) hashing: the worker with the highest hash of (worker, item)."""
    best: tuple[int, str] | None = None
    for worker in workers:
        weight = (_hash64(f"{worker}\x00{item}"), worker)
        if best is None or weight > best:
            best = weight
    return best[1] if best else None


def placement(prefix: str, partitions: int, workers: Sequence[str]) -> dict[int, str]:
    """Each partition's owner among `workers` (partition p is the item `<prefix>:<p>`)."""
    return {p: owner for p in range(partitions) if (owner := owner_of(f"{prefix}:{p}", workers)) is not None}
