"""How the control-panel pages write numbers: durations, sizes, rates."""

from __future__ import annotations

from datetime import UTC, datetime

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


def when(iso: str | None) -> str:
    """An ISO 8601 time (`2026-12-06T22:59:46.571889Z`) to the minute, in UTC: `2026-12-06 22:59 UTC`."""
    if not iso:
        return NONE
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


SCHEMA_VERSIONS = {
    "draft3": "draft-03",
    "draft4": "draft-04",
    "draft6": "draft-06",
    "draft7": "draft-07",
    "draft201909": "2019-09",
    "draft202012": "2020-12",
}


def schema_version(draft: str) -> str:
    """A JSON Schema validator's draft as the specification names it: `draft4` -> `draft-04`."""
    return SCHEMA_VERSIONS.get(draft, draft)
