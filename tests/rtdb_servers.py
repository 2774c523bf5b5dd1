"""Start throwaway PostgreSQL and SecantusDB (MongoDB wire protocol) servers on free ports.

Each helper returns a handle with `.url` and `.stop()`; the process is stopped by its pid.
A missing binary skips the test (fails under SOFIAFLOW_REQUIRE_SERVERS=1).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
from ports import free_port


def _missing(what: str):
    if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{what} is required (SOFIAFLOW_REQUIRE_SERVERS=1) but not available")
    pytest.skip(f"{what} is not available")


def _wait_port(port: int, proc: subprocess.Popen, timeout: float, log: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s: {_tail(log)}")


def _tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-2000:]
    except OSError:
        return ""


class Server:
    def __init__(self, url: str, proc: subprocess.Popen, tmpdir: str, stop_signal=signal.SIGTERM):
        self.url = url
        self.proc = proc
        self.tmpdir = tmpdir
        self.stop_signal = stop_signal

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def start_postgres() -> Server:
    """initdb a cluster in a temp dir and run `postgres` on a free port (as user postgres when
    we are root, since PostgreSQL refuses to run as root)."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if not initdb or not postgres:
        _missing("PostgreSQL (initdb/postgres)")
    tmp = tempfile.mkdtemp(prefix="rtdb-pg-")
    data = os.path.join(tmp, "data")
    as_user: dict = {}
    user = None
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _missing("a 'postgres' user to run PostgreSQL as (running as root)")
        user = "postgres"
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        # run as postgres directly (not through runuser) so that proc.pid is the postmaster's
        as_user = {
            "user": pw.pw_uid,
            "group": pw.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": tmp},
        }
    log = os.path.join(tmp, "log")
    subprocess.run(
        [initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-locale", "-E", "UTF8", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp,
        **as_user,
    )
    port = free_port()
    with open(log, "w") as out:
        if user:
            os.chown(log, pw.pw_uid, pw.pw_gid)
        proc = subprocess.Popen(
            [
                postgres,
                "-D",
                data,
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "-k",
                tmp,
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=tmp,
            **as_user,
        )
    server = Server(
        f"postgresql://postgres@127.0.0.1:{port}/postgres", proc, tmp, signal.SIGINT
    )  # SIGINT: PostgreSQL's "fast" shutdown
    try:
        _wait_port(port, proc, 30, log)
        _wait_pg_ready(server.url, 30)
    except Exception:
        server.stop()
        raise
    return server


def _wait_pg_ready(url: str, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_secantus() -> Server:
    """SecantusDB's standalone MongoDB wire-protocol server (`secantusd-py`, from PyPI) with an
    in-memory (temp dir) store on a free port."""
    exe = shutil.which("secantusd-py")
    if exe is None:
        _missing("SecantusDB (secantusd-py)")
    tmp = tempfile.mkdtemp(prefix="rtdb-secantus-")
    log = os.path.join(tmp, "log")
    port = free_port()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                exe,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--storage-path",
                os.path.join(tmp, "data"),
                "--log-level",
                "WARNING",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            start_new_session=True,
        )
    server = Server(f"mongodb://127.0.0.1:{port}/rtdb_test?directConnection=true", proc, tmp)
    try:
        _wait_port(port, proc, 30, log)
    except Exception:
        server.stop()
        raise
    return server
