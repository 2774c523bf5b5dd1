"""Ports for the servers the tests start, picked where no outgoing connection can take them.

Binding port 0 hands out a port of the kernel's ephemeral range, the range every outgoing
connection takes its local port from. Between that pick and the server's own bind, a client
socket of the same run (a Redis or PostgreSQL connection, a browser's request) can take the
port, and the server then fails with "address already in use". The ports here come from below
that range (above it when there is no room below). Each parallel test process (pytest-xdist)
draws from a slice of its own, a process never hands out a port twice, and a port is checked
free before it is handed out.
"""

from __future__ import annotations

import os
import random
import socket
import threading
from collections.abc import Iterator

_LOWEST = 10_000
_EPHEMERAL_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux's default if unreadable)."""
    try:
        with open(_EPHEMERAL_FILE, encoding="ascii") as fh:
            low, high = (int(part) for part in fh.read().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def pool() -> range:
    """The ports this process may hand out: its own slice of the range outside the ephemeral one."""
    low, high = ephemeral_range()
    start, stop = (_LOWEST, low) if low - _LOWEST >= 2_000 else (high + 1, 65_536)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or "1")
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if count <= 1 or index >= count:
        return range(start, stop)
    size = (stop - start) // count
    return range(start + index * size, start + (index + 1) * size)


def _cycle(ports: range) -> Iterator[int]:
    """Every port of `ports` once, from a random place (processes of one machine rarely meet)."""
    first = random.randrange(len(ports))
    for offset in range(len(ports)):
        yield ports[(first + offset) % len(ports)]


def is_free(port: int) -> bool:
    """Whether a TCP server could bind `port` on 127.0.0.1 now (strictly: without SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_lock = threading.Lock()
_ports: Iterator[int] | None = None


def free_port() -> int:
    """A TCP port free on 127.0.0.1, outside the ephemeral range, not handed out before by this process."""
    global _ports
    with _lock:
        if _ports is None:
            _ports = _cycle(pool())
        for port in _ports:
            if is_free(port):
                return port
    raise RuntimeError(f"no free port left in {pool()}")
