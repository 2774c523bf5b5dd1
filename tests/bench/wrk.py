"""Load a URL with wrk (2 threads, 16 connections) and read its figures; shared by the HTTP benchmarks."""

from __future__ import annotations

import re
import subprocess


def wrk(url: str, seconds: int, headers: dict[str, str] | None = None) -> dict:
    """req/s, p99 (ms) and non-2xx answers from wrk -t2 -c16 --latency (with `headers` on every request)."""
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale,
        "non2xx": int(errors.group(1)) if errors else 0,
    }
