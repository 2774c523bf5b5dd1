"""How the control-panel pages write numbers: durations, sizes, rates."""

from __future__ import annotations

NONE = "–"


def duration(seconds: float | None) -> str:
    """`850 µs`, `1.25 ms`, `2.30 s`; a dash when unknown."""
    if seconds is None:
        return NONE
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def size(count: float) -> str:
    """Bytes as `512 B`, `12.3 MB`, `1.20 GB`."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def rate(per_second: float) -> str:
    """Messages per second, `0`, `3.5`, `1,204`."""
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.1f}".removesuffix(".0")
