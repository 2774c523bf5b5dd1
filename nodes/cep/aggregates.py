"""The aggregates a window can compute, over the values of the events it holds (in arrival order)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

NAMES = ("count", "sum", "avg", "min", "max", "stddev", "percentile", "first", "last", "distinct")
NUMERIC = frozenset(("sum", "avg", "min", "max", "stddev", "percentile"))
"""Aggregates that need numbers; the others take any value."""
RUNNING = frozenset(("count", "sum", "avg"))
"""Aggregates a window keeps up to date as events come and go, without reading its values."""


def is_number(value: Any) -> bool:
    """Whether `value` can enter a numeric aggregate: an int or a finite float (not a bool)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    rank = p / 100 * (len(xs) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (rank - low)


def stddev(values: Sequence[float]) -> float:
    """Population standard deviation (0 for a single value)."""
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def _distinct_key(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 1 and 1.0 are the same number
    return value


def distinct(values: Sequence[Any]) -> int:
    return len({_distinct_key(v) for v in values})


def _sum(values: Sequence[Any]) -> Any:
    if all(isinstance(v, int) for v in values):
        return sum(values)
    return math.fsum(values)


def compute(name: str, values: Sequence[Any], times: Sequence[float], p: float = 50.0) -> Any:
    """`name` over non-empty `values`; `times` are their event times (for first and last: the earliest and
    the latest event, the earlier arrival first among equal times, the later arrival last)."""
    if name == "count":
        return len(values)
    if name == "sum":
        return _sum(values)
    if name == "avg":
        return _sum(values) / len(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "stddev":
        return stddev(values)
    if name == "percentile":
        return percentile(values, p)
    if name == "distinct":
        return distinct(values)
    if name == "first":
        best, when = 0, math.inf
        for i, t in enumerate(times):
            if t < when:
                best, when = i, t
        return values[best]
    if name == "last":
        best, when = 0, -math.inf
        for i, t in enumerate(times):
            if t >= when:
                best, when = i, t
        return values[best]
    raise ValueError(f"unknown aggregate {name!r} (expected one of {', '.join(NAMES)})")
