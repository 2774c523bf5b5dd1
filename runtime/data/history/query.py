"""Filter, sort, skip, limit and project documents held in memory, as the real-time DB does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sofiaflow.runtime.data.rtdb.base import apply_projection, check_projection, check_skip_limit, check_sort
from sofiaflow.runtime.data.rtdb.filters import matches, parse_filter, sort_key

Doc = dict[str, Any]


class _Reversed:
    """Wraps a sort key so that a descending field sorts with the others in one `sorted` call."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Reversed) -> bool:
        return other.key < self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.key == self.key


def _key(doc: Doc, order: list[tuple[tuple[str, ...], int]]) -> tuple:
    keys = []
    for path, direction in order:
        key = sort_key(doc, path)
        keys.append(key if direction == 1 else _Reversed(key))
    return tuple(keys)


def select(
    docs: Iterable[Doc],
    filter: Doc | None = None,
    projection: Doc | None = None,
    sort: Any = None,
    skip: int = 0,
    limit: int = 0,
) -> list[Doc]:
    """The documents matching a MongoDB filter, in `sort` order (then `_id`), after `skip`, at most `limit`
    (0: all), projected. Errors are the real-time DB's (`InvalidFilterError`, `UnsupportedFilterError`)."""
    parsed = parse_filter(filter or {})
    spec = check_projection(projection)
    order = check_sort(sort)
    check_skip_limit(skip, limit)
    found = [doc for doc in docs if matches(doc, parsed)]
    found.sort(key=lambda doc: _key(doc, order))
    found = found[skip : skip + limit] if limit else found[skip:]
    return [apply_projection(doc, spec) for doc in found]


def count(docs: Iterable[Doc], filter: Doc | None = None) -> int:
    parsed = parse_filter(filter or {})
    return sum(1 for doc in docs if matches(doc, parsed))
