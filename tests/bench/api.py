"""API Manager benchmark: req/s and p99 of ontology APIs called with an API key under 16 connections (wrk), on a
real `sofiaflow run` server (its own data dir, a free 127.0.0.1 port, stopped by pid).

The ontology holds 1,000 instances in 10 zones; the APIs are a query by parameter (100 matches, a page of 10
answered with the total) and a get by id.

Run: python tests/bench/api.py [seconds] [sqlite]  (`sqlite`: skip PostgreSQL)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

from sofiaflow_server import SofiaflowServer  # noqa: E402
from wrk import wrk  # noqa: E402

INSTANCES, ZONES = 1000, 10
SCHEMA = {
    "type": "object",
    "required": ["sensor", "value"],
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}, "zone": {"type": "string"}},
}
BASE = "/api-manager/server/api/v1/bench"
FLOWS = [
    {"id": "t", "type": "tab", "label": "api bench"},
    {"id": "api", "type": "api", "name": "bench", "version": 1, "state": "published", "quota": 0},
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
        "id": "byId",
        "type": "api-endpoint",
        "z": "t",
        "api": "api",
        "method": "GET",
        "path": "/{id}",
        "operation": "getById",
        "ontology": "Reading",
        "parameters": [{"name": "id", "in": "path"}],
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


def measure(seconds: int, rtdb_url: str | None = None) -> tuple[dict, int]:
    """wrk figures per operation, and the calls the API Manager counted, on a server whose real-time DB is
    `rtdb_url` (None: SQLite in its data dir)."""
    with tempfile.TemporaryDirectory(prefix="sofiaflow-api-bench-") as ontologies:
        (Path(ontologies) / "Reading.json").write_text(
            json.dumps({"name": "Reading", "schema": SCHEMA, "indexes": ["zone"]})
        )
        env = {"SOFIAFLOW_ONTOLOGIES_DIR": ontologies, "SOFIAFLOW_DEFAULT_FLOWS": "none"}
        if rtdb_url:
            env["SOFIAFLOW_RTDB_URL"] = rtdb_url
        with SofiaflowServer(FLOWS, env=env) as sf:
            status, body = sf.request("POST", "/api-keys", {"label": "bench"})
            assert status == 201, body
            key = json.loads(body)["key"]
            rows = [{"sensor": f"s{i}", "value": i, "zone": f"z{i % ZONES}"} for i in range(INSTANCES)]
            ids = _insert(sf, key, rows)
            query_url = f"{sf.url}{BASE}/byZone?zone=z3&limit=10"
            check = _get(query_url, key)
            assert check["total"] == INSTANCES // ZONES and len(check["items"]) == 10, check
            results = {}
            for name, url in (
                ("query by parameter (page of 10, total 100)", query_url),
                ("get by id", f"{sf.url}{BASE}/{ids[500]}"),
            ):
                wrk(url, 2, {"X-OP-APIKey": key})  # warm up
                calls_before, cpu_before = _calls(sf), _cpu_seconds(sf.proc.pid)
                results[name] = wrk(url, seconds, {"X-OP-APIKey": key})
                served = _calls(sf) - calls_before
                # the server's own CPU per 1,000 answers: steadier than req/s on a shared machine
                results[name]["cpu_ms_per_call"] = (
                    (_cpu_seconds(sf.proc.pid) - cpu_before) * 1000 / max(served, 1)
                )
            calls = _calls(sf)
    return results, calls


def main(argv: list[str]) -> int:
    seconds = int(argv[1]) if len(argv) > 1 else 10
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): not measured")
        return 1
    stores = {"SQLite": measure(seconds)}
    if argv[2:3] != ["sqlite"]:
        stores.update(_postgres(seconds))
    print(
        f"API Manager over an ontology of {INSTANCES} instances, wrk 16 connections, {seconds} s, "
        f"API key in X-OP-APIKey (a query's total is at most 1 s old)"
    )
    # the server, wrk and PostgreSQL share the machine's cores: a busy machine lowers req/s and raises p99
    print(
        f"load average after the runs: {' '.join(f'{n:.1f}' for n in os.getloadavg())} on {os.cpu_count()} cores"
    )
    print(
        f"{'real-time DB':<12} {'operation':<46} {'req/s':>9} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'server CPU s/1000':>18}"
    )
    for store, (results, calls) in stores.items():
        for name, r in results.items():
            print(
                f"{store:<12} {name:<46} {r['rps']:>9.0f} {r['p99_ms']:>8.1f} {r['non2xx']:>8} "
                f"{r['cpu_ms_per_call']:>18.3f}"
            )
        print(f"{store:<12} calls counted by the API Manager: {calls}")
    return 0


def _postgres(seconds: int) -> dict:
    sys.path.insert(0, str(HERE.parent))
    from rtdb_servers import start_postgres

    try:
        postgres = start_postgres()
    except BaseException as exc:  # noqa: BLE001 - pytest's skip when PostgreSQL is missing is a BaseException
        print(f"PostgreSQL not measured: {exc}")
        return {}
    try:
        return {"PostgreSQL": measure(seconds, postgres.url)}
    finally:
        postgres.stop()


def _calls(sf: SofiaflowServer) -> int:
    """The calls the API Manager has counted so far."""
    status, body = sf.request("GET", "/api-manager/stats")
    assert status == 200, body
    return sum(s["calls"] for s in json.loads(body))


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _insert(sf: SofiaflowServer, key: str, rows: list[dict]) -> list[str]:
    import urllib.request

    req = urllib.request.Request(
        f"{sf.url}{BASE}/",
        data=json.dumps(rows).encode(),
        method="POST",
        headers={"X-OP-APIKey": key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["ids"]


def _get(url: str, key: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(
        urllib.request.Request(url, headers={"X-OP-APIKey": key}), timeout=30
    ) as resp:
        return json.loads(resp.read())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
