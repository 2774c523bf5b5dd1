"""A worker-side handler that reports on the worker itself: who it runs as, its environment, its limits.

The host registers it (as `SandboxPool.register_handler("diagnostics", "sofiaflow.runtime.sandbox.diagnostics")`) to
check a deployment's isolation, and the tests use it to exercise the pool with real processes. Every
operation is chosen by the host; none runs code sent to it.
"""

from __future__ import annotations

import os
import resource
import time
from typing import Any


def handle(op: str, payload: Any, host: Any) -> Any:
    if op == "echo":
        return payload
    if op == "identity":
        limits = {
            name: list(resource.getrlimit(getattr(resource, f"RLIMIT_{name}")))
            for name in ("AS", "DATA", "NOFILE", "CORE", "NPROC")
        }
        return {
            "pid": os.getpid(),
            "uid": os.getuid(),
            "euid": os.geteuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "environ": dict(os.environ),
            "cwd": os.getcwd(),
            "nice": os.nice(0),
            "limits": limits,
            "open_fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
        }
    if op == "open":
        with open(payload, "rb") as fh:
            return fh.read(16)
    if op == "listdir":
        return sorted(os.listdir(payload))
    if op == "spin":  # C code that does not return for a long time
        return sum(range(int(payload)))
    if op == "sleep":
        time.sleep(float(payload))
        return None
    if op == "allocate":  # keep `payload` MiB alive
        held = []
        for _ in range(int(payload)):
            held.append(bytearray(1024 * 1024))
        return len(held)
    if op == "call":
        return host.call(payload["op"], payload.get("payload"))
    if op == "event":
        host.event(payload["op"], payload.get("payload"))
        return None
    if op == "progress":
        for _ in range(int(payload["steps"])):
            time.sleep(float(payload["each"]))
            host.progress()
        return None
    if op == "print":
        print(payload)
        return None
    if op == "exit":
        os._exit(int(payload))
    if op == "fail":
        raise ValueError(str(payload))
    raise ValueError(f"unknown diagnostics operation {op!r}")
