"""A throwaway redis-server on a free port of 127.0.0.1 (append-only file in a tmp dir), stopped by its pid.

A missing redis-server skips the test (fails under SOFIAFLOW_REQUIRE_SERVERS=1)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from rtdb_servers import Server, _missing, _wait_port, free_port


def start_redis() -> Server:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server")
    tmpdir = tempfile.mkdtemp(prefix="sofiaflow-redis-")
    port = free_port()
    log = f"{tmpdir}/redis.log"
    proc = subprocess.Popen(
        [
            str(binary),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", tmpdir,
            "--appendonly", "yes",
            "--save", "",
            "--logfile", log,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_port(port, proc, 60, log)
    except RuntimeError:
        Server("", proc, tmpdir).stop()
        raise
    return Server(f"redis://127.0.0.1:{port}/0", proc, tmpdir)


def _served() -> Iterator[str]:
    server = start_redis()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(name="redis_url")
def redis_per_test() -> Iterator[str]:
    """`redis_url`: a redis-server of the test's own (import this into a test module to use it)."""
    yield from _served()


@pytest.fixture(name="redis_url", scope="module")
def redis_per_module() -> Iterator[str]:
    """`redis_url`: one redis-server for the test module's tests (import this into a test module to use it)."""
    yield from _served()
