"""HTTP benchmark: req/s and p99 through `http in -> function -> http response`, sofiaflow beside
Node-RED (its function node in JavaScript) on the same machine, loaded by wrk (16 connections).

Run: python tests/bench/http.py [seconds]
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

from nodered import NodeRed, find_node_red  # noqa: E402
from sofiaflow_server import SofiaflowServer  # noqa: E402
from wrk import wrk  # noqa: E402

JS = "msg.payload = {ok: true, name: msg.req.query.name || 'anon'};\nreturn msg;"
PY = "msg['payload'] = {'ok': True, 'name': msg['req'].query.get('name', 'anon')}\nreturn msg"


def bench_flow(python: bool) -> list[dict]:
    """The same flow for both runtimes; only the function node's language differs."""
    fn = (
        {"type": "python function", "func": PY}
        if python
        else {
            "type": "function",
            "func": JS,
            "timeout": 0,
            "noerr": 0,
            "initialize": "",
            "finalize": "",
            "libs": [],
        }
    )
    return [
        {"id": "b0000000000000t1", "type": "tab", "label": "bench", "disabled": False, "info": ""},
        {
            "id": "b000000000000001",
            "type": "http in",
            "z": "b0000000000000t1",
            "name": "",
            "url": "/bench",
            "method": "get",
            "upload": False,
            "swaggerDoc": "",
            "x": 100,
            "y": 100,
            "wires": [["b000000000000002"]],
        },
        {
            "id": "b000000000000002",
            "z": "b0000000000000t1",
            "name": "",
            "outputs": 1,
            "x": 300,
            "y": 100,
            "wires": [["b000000000000003"]],
            **fn,
        },
        {
            "id": "b000000000000003",
            "type": "http response",
            "z": "b0000000000000t1",
            "name": "",
            "statusCode": "",
            "headers": {},
            "x": 500,
            "y": 100,
            "wires": [],
        },
    ]


def main(argv: list[str]) -> int:
    seconds = int(argv[1]) if len(argv) > 1 else 10
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): not measured")
        return 1
    with SofiaflowServer(bench_flow(python=True)) as sf:
        wrk(f"{sf.url}/bench?name=a", 2)  # warm up
        ours = wrk(f"{sf.url}/bench?name=a", seconds)
    theirs = None
    if find_node_red():
        with NodeRed(bench_flow(python=False)) as nr:
            wrk(f"{nr.url}/bench?name=a", 2)
            theirs = wrk(f"{nr.url}/bench?name=a", seconds)
    print(f"http in -> function -> http response, wrk 2 threads, 16 connections, {seconds} s")
    print(f"  {'':<12} {'req/s':>10} {'p99 ms':>8} {'non-2xx':>8}")
    print(f"  {'sofiaflow':<12} {ours['rps']:>10,.0f} {ours['p99_ms']:>8.1f} {ours['non2xx']:>8}")
    if theirs:
        print(f"  {'Node-RED':<12} {theirs['rps']:>10,.0f} {theirs['p99_ms']:>8.1f} {theirs['non2xx']:>8}")
        print(f"  ratio {ours['rps'] / theirs['rps']:.2f}x req/s")
    else:
        print("  Node-RED: not installed, not measured")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
