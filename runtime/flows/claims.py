"""Resources only one node may hold (`Node.claims`), checked across a whole flow set before a deploy.

Claims are strings `<kind>:...`. Two nodes clash when they claim the same string, and, for HTTP routes
(`http:<method>:<route key>`), when some request path would match both routes: Node-RED lets the
first registered route win, which would let one tenant's route take another's requests; a deploy
with such an overlap is refused, each problem naming both nodes and an example path.
"""

from __future__ import annotations

from collections.abc import Callable

from sofiaflow.runtime.errors import Problem
from sofiaflow.runtime.flows.route_overlap import literal_prefix, shared_path


def _http_route(resource: str) -> tuple[str, str] | None:
    """(method, route key) of an `http:<method>:<key>` claim, or None."""
    kind, _, rest = resource.partition(":")
    method, sep, key = rest.partition(":")
    if kind != "http" or not sep or not key.startswith("/"):
        return None
    return method, key


def claim_problems(claims: dict[str, list[str]], type_of: Callable[[str], str | None]) -> list[Problem]:
    """Every clash among `claims` (resource -> ids of the enabled nodes claiming it), as deploy errors."""
    problems: list[Problem] = []
    for resource, holders in claims.items():
        if len(holders) > 1:
            for holder in holders:
                others = ", ".join(repr(h) for h in holders if h != holder)
                problems.append(Problem(f"{resource} is also claimed by {others}", holder, type_of(holder)))
    by_method: dict[str, list[tuple[str, str]]] = {}
    for resource in claims:
        route = _http_route(resource)
        if route is not None:
            by_method.setdefault(route[0], []).append((route[1], resource))
    for routes in by_method.values():
        for (key_a, res_a), (key_b, res_b) in _candidate_pairs(routes):
            holders_a, holders_b = claims[res_a], claims[res_b]
            if set(holders_a) == set(holders_b) and len(holders_a) == 1:
                continue  # one node's own routes (an IoT Broker's) never take each other's requests
            example = shared_path(key_a, key_b)
            if example is None:
                continue
            for a in holders_a:
                for b in holders_b:
                    if a == b:
                        continue
                    problems.append(
                        Problem(
                            f"{res_a} overlaps {res_b} of {b!r}: both would serve {example}", a, type_of(a)
                        )
                    )
                    problems.append(
                        Problem(
                            f"{res_b} overlaps {res_a} of {a!r}: both would serve {example}", b, type_of(b)
                        )
                    )
    return problems


def _candidate_pairs(routes: list[tuple[str, str]]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The pairs of routes that may overlap: one's literal prefix starts the other's (any other pair differs
    in a character both must have), found through a dict of prefixes instead of trying every pair."""
    by_prefix: dict[str, list[int]] = {}
    prefixes = [literal_prefix(key) for key, _res in routes]
    for index, prefix in enumerate(prefixes):
        by_prefix.setdefault(prefix, []).append(index)
    pairs = []
    for index, prefix in enumerate(prefixes):
        for length in range(len(prefix) + 1):
            for other in by_prefix.get(prefix[:length], ()):
                if other < index or (other != index and length < len(prefix)):
                    pairs.append((routes[other], routes[index]))
    return pairs
