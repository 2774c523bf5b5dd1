"""MQTT topic names and filters (MQTT 3.1.1 section 4.7): validation, matching, and filter coverage.

`matches(filter, topic)` is the broker's rule: `+` is one whole level, `#` the last level and everything below
its parent (so `a/#` matches `a`), and filters starting with a wildcard never match topics starting with `$`.
`covers(allowed, requested)` is True when every topic `requested` matches is also matched by `allowed`.
`overlaps(a, b)` is True when some topic matches both filters; `overlap_witness(a, b)` names one such topic.
For the MQTT nodes: `subscription_matches` also takes shared subscriptions (`$share/<group>/<filter>`),
`valid_subscription` / `valid_publish` answer Node-RED's checks, and `TopicRouter` finds the matching filters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sofiaflow.runtime.errors import ValidationError

MAX_TOPIC_BYTES = 65535
VALID_TOPICS_KEPT = 10_000
"""Topic names remembered as valid (validate_topic); the set starts again when full."""
_VALID_TOPICS: set[str] = set()


class TopicError(ValidationError):
    """A topic name or filter is not valid MQTT."""


def _check_common(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise TopicError(f"{what} must be a string, got {type(text).__name__}")
    if not text:
        raise TopicError(f"{what} must not be empty")
    if "\x00" in text:
        raise TopicError(f"{what} {text!r} contains a NUL character")
    if len(text.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise TopicError(f"{what} is longer than {MAX_TOPIC_BYTES} bytes")
    return text


def validate_topic(topic: object, what: str = "topic") -> str:
    """`topic` if it is a valid topic name (no wildcards); raises TopicError otherwise."""
    if topic.__class__ is str and topic in _VALID_TOPICS:  # checked once per topic: most messages reuse one
        return topic  # type: ignore[return-value]
    text = _check_common(topic, what)
    if "+" in text or "#" in text:
        raise TopicError(f"{what} {text!r} must not contain the wildcards '+' or '#'")
    if text.__class__ is str:
        if len(_VALID_TOPICS) >= VALID_TOPICS_KEPT:
            _VALID_TOPICS.clear()
        _VALID_TOPICS.add(text)
    return text


def validate_filter(topic_filter: object, what: str = "topic filter") -> str:
    """`topic_filter` if it is a valid subscription filter; raises TopicError otherwise."""
    text = _check_common(topic_filter, what)
    levels = text.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"{what} {text!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise TopicError(f"{what} {text!r}: '+' must be a whole level")
    return text


def levels(text: str) -> tuple[str, ...]:
    return tuple(text.split("/"))


def match_levels(filt: tuple[str, ...], topic: tuple[str, ...]) -> bool:
    """Whether filter levels `filt` match topic levels `topic` (both already valid)."""
    if filt[0] in ("+", "#") and topic[0].startswith("$"):
        return False
    size = len(topic)
    for index, level in enumerate(filt):
        if level == "#":
            return True
        if index >= size or (level != "+" and level != topic[index]):
            return False
    return size == len(filt)


def cover_levels(allowed: tuple[str, ...], requested: tuple[str, ...]) -> bool:
    """Whether every topic matched by filter `requested` is matched by filter `allowed`."""
    size = len(allowed)
    for index, want in enumerate(requested):
        if index >= size:
            return False
        have = allowed[index]
        if index == 0 and have in ("+", "#") and want.startswith("$"):
            return False
        if have == "#":
            return True
        if want == "#":
            return False
        if have != "+" and (want == "+" or want != have):
            return False
    return size == len(requested) or (size == len(requested) + 1 and allowed[-1] == "#")


def _stand_in(level: str) -> str:
    """A topic level that filter level `level` matches ('+' matches any level: take one not starting with $)."""
    return "x" if level == "+" else level


def overlap_witness_levels(one: tuple[str, ...], other: tuple[str, ...]) -> tuple[str, ...] | None:
    """A topic (as levels) matched by both filters `one` and `other` (both already valid), None when none is."""
    topic: list[str] = []
    for index in range(max(len(one), len(other))):
        a = one[index] if index < len(one) else None
        b = other[index] if index < len(other) else None
        if a == "#" or b == "#":
            rest = other[index:] if a == "#" else one[index:]
            if index == 0 and rest and rest[0] != "#" and rest[0] != "+" and rest[0].startswith("$"):
                return None  # a filter starting with a wildcard matches no $ topic
            found = topic + [_stand_in(level) for level in rest if level != "#"]
            if not "/".join(found):  # the empty topic is no topic name: one level deeper, if both allow it
                if not rest or rest[-1] != "#":
                    return None
                found.append("x")
            return tuple(found)
        if a is None or b is None:
            return None  # one filter ended, the other goes on without '#'
        if a == "+" and b == "+":
            topic.append("x")
        elif a == "+" or b == "+":
            literal = b if a == "+" else a
            if index == 0 and literal.startswith("$"):
                return None
            topic.append(literal)
        elif a == b:
            topic.append(a)
        else:
            return None
    return tuple(topic)


def overlap_witness(one: str, other: str) -> str | None:
    """A topic name both filters match, None when no topic does."""
    found = overlap_witness_levels(levels(one), levels(other))
    return None if found is None else "/".join(found)


def overlaps(one: str, other: str) -> bool:
    """Whether some topic matches both filters `one` and `other`."""
    return overlap_witness_levels(levels(one), levels(other)) is not None


def matches(topic_filter: str, topic: str) -> bool:
    return match_levels(levels(topic_filter), levels(topic))


def covers(allowed: str, requested: str) -> bool:
    return cover_levels(levels(allowed), levels(requested))


def is_wild(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


# ----- subscriptions as clients write them (the MQTT nodes) -------------------------------------------------------

_SHARE_PREFIX = "$share/"
_PUBLISH_FORBIDDEN = frozenset("+#\b\f\n\r\t\v\0")
_FORBIDDEN_IN_PUBLISH = re.compile("[" + re.escape("".join(sorted(_PUBLISH_FORBIDDEN))) + "]")


def strip_share(topic_filter: str) -> str:
    """`$share/group/a/b` -> `a/b` (a shared subscription matches like its filter); other filters unchanged."""
    if topic_filter.startswith(_SHARE_PREFIX):
        group, sep, rest = topic_filter[len(_SHARE_PREFIX) :].partition("/")
        if sep and group and not any(c in group for c in "+#"):
            return rest
    return topic_filter


def subscription_matches(topic_filter: str, topic: str) -> bool:
    """Whether a subscription to `topic_filter` (shared or not) receives topic name `topic`."""
    return match_levels(levels(strip_share(topic_filter)), levels(topic))


def valid_subscription(topic_filter: object) -> bool:
    """Whether `topic_filter` may be subscribed to (`+` whole levels, `#` last), as Node-RED's mqtt nodes check."""
    try:
        validate_filter(topic_filter)
    except TopicError:
        return False
    return True


def valid_publish(topic: object) -> bool:
    """Whether one may publish to `topic`: a valid topic name with no control characters (Node-RED's check)."""
    try:
        validate_topic(topic)
    except TopicError:
        return False
    return _FORBIDDEN_IN_PUBLISH.search(str(topic)) is None


class TopicRouter:
    """The filters (of a changing set) whose subscriptions receive a topic, with a bounded per-topic cache."""

    def __init__(self, cache_size: int = 10_000) -> None:
        self._filters: list[str] = []
        self._cache: dict[str, tuple[str, ...]] = {}
        self._cache_size = cache_size

    def set_filters(self, filters: Iterable[str]) -> None:
        self._filters = list(filters)
        self._cache.clear()

    def route(self, topic: str) -> tuple[str, ...]:
        hit = self._cache.get(topic)
        if hit is None:
            hit = tuple(f for f in self._filters if subscription_matches(f, topic))
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[topic] = hit
        return hit


class _Level:
    __slots__ = ("children", "filter")

    def __init__(self) -> None:
        self.children: dict[str, _Level] = {}
        self.filter: str | None = None


class TopicIndex:
    """Topic filters indexed by level (a trie): `match(topic)` lists the filters that match a topic name by the
    rules of `match_levels` ($ topics included), visiting only the branches the topic's levels lead to instead of
    testing every filter."""

    __slots__ = ("_root", "_size")

    def __init__(self, filters: Iterable[str] = ()) -> None:
        self._root = _Level()
        self._size = 0
        for topic_filter in filters:
            self.add(topic_filter)

    def __len__(self) -> int:
        return self._size

    def add(self, topic_filter: str) -> None:
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Level()
            node = child
        if node.filter is None:
            node.filter = topic_filter
            self._size += 1

    def discard(self, topic_filter: str) -> None:
        path = [self._root]
        for level in topic_filter.split("/"):
            child = path[-1].children.get(level)
            if child is None:
                return
            path.append(child)
        if path[-1].filter is None:
            return
        path[-1].filter = None
        self._size -= 1
        for parent, level, child in zip(
            reversed(path[:-1]), reversed(topic_filter.split("/")), reversed(path[1:]), strict=True
        ):
            if child.filter is not None or child.children:
                break
            del parent.children[level]

    def match(self, topic: str) -> list[str]:
        """The filters matching topic name `topic` (a valid one: no wildcards), each once."""
        found: list[str] = []
        topic_levels = topic.split("/")
        _walk(self._root, topic_levels, 0, len(topic_levels), topic_levels[0].startswith("$"), found)
        return found


def _walk(node: _Level, topic: list[str], index: int, size: int, dollar: bool, found: list[str]) -> None:
    children = node.children
    if index == size:
        if node.filter is not None:
            found.append(node.filter)
        rest = children.get("#")  # `a/#` also matches `a`
        if rest is not None and rest.filter is not None:
            found.append(rest.filter)
        return
    if not (dollar and index == 0):  # a filter starting with a wildcard matches no $ topic
        rest = children.get("#")
        if rest is not None and rest.filter is not None:
            found.append(rest.filter)
        one = children.get("+")
        if one is not None:
            _walk(one, topic, index + 1, size, dollar, found)
    exact = children.get(topic[index])
    if exact is not None:
        _walk(exact, topic, index + 1, size, dollar, found)
