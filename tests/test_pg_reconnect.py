"""The PostgreSQL real-time DB after a server restart (runtime/data/rtdb/pg_engine.py): pooled connections the
restart killed are replaced at checkout, so the next request succeeds, and a checkout costs no round trip."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import psycopg
import pytest
from onesait_server import REPO
from ports import free_port
from rtdb_servers import _wait_pg_ready, start_postgres

from sofiaflow.runtime.data.rtdb.pg_engine import closed_by_server
from sofiaflow.runtime.data.rtdb.sql_backend import SQLStore


@pytest.fixture
def postgres():
    server = start_postgres()
    yield server
    server.stop()


def _restart(server) -> None:
    """Stop the server ("fast" shutdown: its backends end their connections) and start it again on the same data
    directory and port, as the same user; wait until it takes connections."""
    old = server.proc
    os.kill(old.pid, signal.SIGINT)
    old.wait(30)
    as_user: dict = {}
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        as_user = {
            "user": pw.pw_uid,
            "group": pw.pw_gid,
            "extra_groups": [],
            "env": {**os.environ, "HOME": server.tmpdir},
        }
    with open(os.path.join(server.tmpdir, "log"), "a") as out:
        server.proc = subprocess.Popen(
            old.args,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=server.tmpdir,
            **as_user,
        )
    _wait_pg_ready(server.url, 30)


def _hold_connections(store: SQLStore, count: int) -> None:
    """Make the pool hold `count` connections (checked out at once, then returned)."""
    held = [store.engine.raw_connection() for _ in range(count)]
    for conn in held:
        conn.close()
    assert store.engine.pool.checkedin() >= count


def test_reads_and_writes_succeed_right_after_a_restart(postgres):
    store = SQLStore(postgres.url)
    try:
        store.insert("Reading", [{"_id": "a", "zone": "z1"}])
        _hold_connections(store, 4)
        _restart(postgres)
        # every pooled connection is dead; each call below still succeeds at its first attempt
        assert [d["_id"] for d in store.find("Reading", {"zone": "z1"})] == ["a"]
        store.insert("Reading", [{"_id": "b", "zone": "z1"}])
        results, errors = [], []

        def read():
            try:
                results.append(len(store.find("Reading", {"zone": "z1"})))
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == [] and results == [2, 2, 2, 2]
    finally:
        store.engine.dispose()


def test_a_terminated_connection_is_seen_without_a_round_trip(postgres):
    conn = psycopg.connect(postgres.url, autocommit=True)
    try:
        assert not closed_by_server(conn)
        conn.execute("SELECT 1").fetchall()
        assert not closed_by_server(conn)  # answered and read: nothing left to read
        pid = conn.info.backend_pid
        with psycopg.connect(postgres.url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while not closed_by_server(conn):  # the server's goodbye arrives on the socket
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        conn.close()
    assert closed_by_server(conn)  # closed on our side


def test_a_checkout_sends_no_statement(postgres):
    """With the server logging every statement, N reads are N statements: no ping before each."""
    with psycopg.connect(postgres.url, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET log_statement = 'all'")
        admin.execute("SELECT pg_reload_conf()")
    store = SQLStore(postgres.url)
    try:
        store.insert("Reading", [{"_id": "a", "zone": "z1"}])
        store.find("Reading", {"zone": "z1"})  # the table is known, the filter compiled
        marker = "rt-marker-" + str(time.monotonic_ns())
        with store.engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT '{marker}-start'")
        for _ in range(20):
            assert len(store.find("Reading", {"zone": "z1"})) == 1
        with store.engine.connect() as conn:
            conn.exec_driver_sql(f"SELECT '{marker}-end'")
    finally:
        store.engine.dispose()
    log_path = os.path.join(postgres.tmpdir, "log")
    deadline = time.monotonic() + 10
    while f"{marker}-end" not in open(log_path, errors="replace").read():
        assert time.monotonic() < deadline, "the server did not log the statements"
        time.sleep(0.05)
    text = open(log_path, errors="replace").read()
    between = text[text.index(f"{marker}-start") : text.index(f"{marker}-end")]
    statements = re.findall(r"LOG:  (?:statement|execute [^:]*): (.*)", between)
    # after the start marker's line: its ROLLBACK, the 20 reads, the end marker's BEGIN and its own line
    reads = [s for s in statements if s.startswith("SELECT") and "rt_Reading" in s]
    assert len(reads) == 20 and len(statements) <= 23, (
        len(statements),
        [s for s in statements if s not in reads],
    )


def test_an_api_call_right_after_a_restart_succeeds(postgres, tmp_path):
    ontologies = tmp_path / "ontologies"
    ontologies.mkdir()
    (ontologies / "Reading.json").write_text(
        json.dumps({"name": "Reading", "schema": {"type": "object"}, "indexes": ["zone"]})
    )
    flows = [
        {"id": "api", "type": "api", "name": "pg", "version": 1, "state": "published", "quota": 0},
        {"id": "t", "type": "tab", "label": "api"},
        {
            "id": "byZone",
            "type": "api-endpoint",
            "z": "t",
            "api": "api",
            "method": "GET",
            "path": "/byZone",
            "operation": "query",
            "ontology": "Reading",
            "query": '{"zone": "{$zone}"}',
            "parameters": [{"name": "zone", "in": "query", "type": "string", "required": True}],
            "wires": [],
        },
        {
            "id": "add",
            "type": "api-endpoint",
            "z": "t",
            "api": "api",
            "method": "POST",
            "path": "/",
            "operation": "insert",
            "ontology": "Reading",
            "wires": [],
        },
    ]
    flows_file = tmp_path / "flows.json"
    flows_file.write_text(json.dumps(flows))
    port = free_port()
    env = {
        **os.environ,
        "SOFIAFLOW_ADMIN_PASSWORD": "pg-restart-password",
        "SOFIAFLOW_DEFAULT_FLOWS": "none",
        "SOFIAFLOW_ONTOLOGIES_DIR": str(ontologies),
        "SOFIAFLOW_RTDB_URL": postgres.url,
        "SOFIAFLOW_ACCESS_LOG": "off",
    }
    out_path = tmp_path / "out.log"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sofiaflow.runtime.cli",
                "run",
                "--data-dir",
                str(tmp_path / "d"),
                "--port",
                str(port),
                "--mqtt-port",
                "0",
                "--flows",
                str(flows_file),
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, out_path.read_text()[-3000:]
            try:
                answer = httpx.post(
                    f"{base}/auth/token",
                    data={
                        "client_id": "node-red-admin",
                        "grant_type": "password",
                        "scope": "*",
                        "username": "admin",
                        "password": "pg-restart-password",
                    },
                    timeout=5,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        admin = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        key = httpx.post(f"{base}/api-keys", json={"label": "k"}, headers=admin, timeout=10).json()["key"]
        api = f"{base}/api-manager/server/api/v1/pg"
        with httpx.Client(headers={"X-OP-APIKey": key}, timeout=10) as client:
            made = client.post(f"{api}/", json=[{"zone": "z1"}, {"zone": "z2"}, {"zone": "z1"}])
            assert made.status_code in (200, 201), made.text
            for _ in range(8):  # several pooled connections, all in use before the restart
                first = client.get(f"{api}/byZone", params={"zone": "z1"})
                assert first.status_code == 200, first.text
            _restart(postgres)
            second = client.get(f"{api}/byZone", params={"zone": "z1"})
            assert second.status_code == 200, second.text
            assert second.json() == first.json() and second.json()["total"] == 2, second.json()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_a_read_returns_its_connection_out_of_autocommit(postgres):
    """Reads run in autocommit on a raw connection; the pool's next user still gets transactions."""
    store = SQLStore(postgres.url)
    try:
        store.insert("Reading", [{"_id": "a", "zone": "z1"}])
        for _ in range(3):
            assert [d["_id"] for d in store.find("Reading", {"zone": {"$in": ["z1", "100%"]}})] == ["a"]
        with store.engine.connect() as conn:
            assert conn.connection.driver_connection.autocommit is False
            conn.exec_driver_sql("""INSERT INTO "rt_Reading" (id, doc) VALUES ('b', '{"zone": "z1"}')""")
            conn.rollback()
        assert (
            store.count("Reading", {"zone": "z1"}) == 1
        )  # the insert was rolled back: it was in a transaction
    finally:
        store.engine.dispose()
