"""CPU time of a server process and of its child processes (sandbox workers), from /proc.

Wall-clock rates swing with what else runs on a shared machine; the CPU seconds a process spends on a fixed
amount of work change far less, so the benchmarks print both.

    meter = CpuMeter(pid)          # snapshot now
    ...                            # the work
    spent = meter.spent()          # {"server": s, "workers": s} since the snapshot
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0.0 when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (direct children only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds spent by `pid` ("server") and its children ("workers") since it was made (or reset)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.reset()

    def _now(self) -> dict[int, float]:
        return {p: cpu_seconds(p) for p in [self.pid, *children(self.pid)]}

    def reset(self) -> None:
        self._start = self._now()

    def spent(self) -> dict[str, float]:
        now = self._now()
        server = now.pop(self.pid) - self._start.get(self.pid, 0.0)
        # a child started since the snapshot counts from zero
        workers = sum(cpu - self._start.get(p, 0.0) for p, cpu in now.items())
        return {"server": server, "workers": workers}


def per_10k(seconds: float, messages: int) -> float:
    """CPU seconds per 10,000 messages."""
    return seconds * 10_000 / max(messages, 1)
