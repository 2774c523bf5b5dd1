"""Whether two `http in` style routes can take the same request, and an example path both would serve.

Routes are compared by their keys (`route_key` of node_routes: lowercase, params as `:`, optional
params as `:?`, a wildcard as `*`, a literal colon as `\\:`), which hold exactly the language the
runtime's matcher gives a path: a static key serves that path with any number of trailing slashes,
a pattern serves what `compile_path`'s regex matches (one optional trailing slash). Each route becomes
a small automaton over three kinds of step (one given character, any character but `/`, any
character); two routes overlap when the product of their automata reaches both accepting states.
That is exact: each product step has a character both steps take, so the walk spells a path that
both routes serve, and the search returns it. Letters compare as the matcher compares them for
ASCII paths (case-insensitively).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

MAX_KEY_LENGTH = 1024
"""Longer route keys are not compared (the nodes refuse such paths when they are configured)."""

_EPS, _NOT_SLASH, _ANY = "eps", "not/", "any"
_TOKEN = re.compile(r":(\w+)(\?)?|\*")  # Express path tokens, as runtime/http/node_routes.py reads them


def claim_key(path: str) -> str:
    """`/User/:id/` -> `/user/:` (`:?` optional, `*` wildcard, a literal colon or backslash escaped)."""
    path = path if path.startswith("/") else "/" + path
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(path):
        out.append(_escape(path[pos : m.start()]))
        out.append("*" if m.group(0) == "*" else ":" + (m.group(2) or ""))
        pos = m.end()
    out.append(_escape(path[pos:]))
    return "".join(out).rstrip("/") or "/"


def _escape(literal: str) -> str:
    return literal.lower().replace("\\", "\\\\").replace(":", "\\:")


@dataclass
class _Automaton:
    """States 0..count-1, start 0, one accepting state; moves[state] = [(label, target)]."""

    moves: list[list[tuple[str, int]]] = field(default_factory=list)
    accept: int = 0

    def state(self) -> int:
        self.moves.append([])
        return len(self.moves) - 1

    def move(self, source: int, label: str, target: int) -> None:
        self.moves[source].append((label, target))


def _tokens(key: str) -> list[str]:
    """The key as steps: single characters, ':' (a param), ':?' (an optional one), '*' (anything)."""
    out: list[str] = []
    i = 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key):
            out.append("=" + key[i + 1])
            i += 2
        elif ch == ":":
            optional = key[i + 1 : i + 2] == "?"
            out.append(":?" if optional else ":")
            i += 2 if optional else 1
        elif ch == "*":
            out.append("*")
            i += 1
        else:
            out.append("=" + ch)
            i += 1
    return out


def is_pattern(key: str) -> bool:
    """Whether the key has a param or a wildcard (else it is a static path)."""
    return any(t in (":", ":?", "*") for t in _tokens(key))


def _automaton(key: str) -> _Automaton:
    tokens = _tokens(key)
    pattern = any(t in (":", ":?", "*") for t in tokens)
    merged: list[str] = []
    for token in tokens:  # `/:p?` is `(?:/([^/]+?))?`: the slash goes with the optional param
        if token == ":?" and merged and merged[-1] == "=/":
            merged[-1] = "/:?"
        else:
            merged.append(token)
    auto = _Automaton()
    at = auto.state()
    for token in merged:
        nxt = auto.state()
        if token in (":", ":?", "/:?"):
            seg_from = at
            if token == "/:?":
                seg_from = auto.state()
                auto.move(at, "=/", seg_from)
            seg = auto.state()
            auto.move(seg_from, _NOT_SLASH, seg)
            auto.move(seg, _NOT_SLASH, seg)
            auto.move(seg, _EPS, nxt)
            if token != ":":
                auto.move(at, _EPS, nxt)
        elif token == "*":
            auto.move(at, _EPS, nxt)
            auto.move(nxt, _ANY, nxt)
        else:
            auto.move(at, token, nxt)
        at = nxt
    end = auto.state()
    auto.move(at, _EPS, end)
    if pattern:
        auto.move(at, "=/", end)  # `/?$`
    else:
        auto.move(end, "=/", end)  # a static key serves its path with any trailing slashes
    auto.accept = end
    return auto


def _compatible(a: str, b: str) -> str | None:
    """A character both step labels take, or None."""
    if (
        a == _ANY
        and b == _ANY
        or a == _NOT_SLASH
        and b in (_ANY, _NOT_SLASH)
        or a == _ANY
        and b == _NOT_SLASH
    ):
        return "x"
    if a in (_ANY, _NOT_SLASH):
        a, b = b, a
    ch = a[1]
    if b == _ANY:
        return ch
    if b == _NOT_SLASH:
        return None if ch == "/" else ch
    return ch if ch.lower() == b[1].lower() else None


def _closure(auto: _Automaton, states: set[int]) -> set[int]:
    stack, seen = list(states), set(states)
    while stack:
        s = stack.pop()
        for label, t in auto.moves[s]:
            if label == _EPS and t not in seen:
                seen.add(t)
                stack.append(t)
    return seen


def literal_prefix(key: str) -> str:
    """The lowercase text every path a key serves starts with (up to its first param or wildcard)."""
    return _literal_prefix(key)


def _literal_prefix(key: str) -> str:
    out = []
    for token in _tokens(key):
        if not token.startswith("="):
            break
        out.append(token[1].lower())
    return "".join(out)


def shared_path(key_a: str, key_b: str) -> str | None:
    """A request path both routes serve (relative to the http root), or None when they never overlap."""
    if len(key_a) > MAX_KEY_LENGTH or len(key_b) > MAX_KEY_LENGTH:
        return None
    pa, pb = _literal_prefix(key_a), _literal_prefix(key_b)
    if not (pa.startswith(pb) or pb.startswith(pa)):
        return None
    a, b = _automaton(key_a), _automaton(key_b)
    start = (0, 0)
    came: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        pair = queue.popleft()
        sa, sb = pair
        if sa == a.accept and sb == b.accept:
            return _spell(came, pair)
        steps: list[tuple[tuple[int, int], str]] = []
        steps += [((ta, sb), "") for label, ta in a.moves[sa] if label == _EPS]
        steps += [((sa, tb), "") for label, tb in b.moves[sb] if label == _EPS]
        for la, ta in a.moves[sa]:
            if la == _EPS:
                continue
            for lb, tb in b.moves[sb]:
                if lb != _EPS and (ch := _compatible(la, lb)) is not None:
                    steps.append(((ta, tb), ch))
        for nxt, ch in steps:
            if nxt not in came:
                came[nxt] = (pair, ch)
                queue.append(nxt)
    return None


def _spell(came: dict, pair: tuple[int, int]) -> str:
    chars: list[str] = []
    step = came[pair]
    while step is not None:
        pair, ch = step
        chars.append(ch)
        step = came[pair]
    path = "".join(reversed(chars))
    return path or "/"
