"""Run a real Node-RED for benchmarks and differential tests.

Node-RED is started in a throw-away user dir, bound to 127.0.0.1 on a free port,
with the editor/admin API at "/" and HTTP-in endpoints also at "/".
Every wait is bounded; the process is stopped by its pid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# benchmarks run as scripts from this folder: tests/ports.py picks ports for both them and the tests
if str(REPO / "tests") not in sys.path:
    sys.path.append(str(REPO / "tests"))
from ports import free_port  # noqa: E402

_CANDIDATES = (
    Path("/opt/nodered/node_modules/.bin/node-red"),
    REPO / ".cache/nodered/node_modules/.bin/node-red",
)


def find_node_red() -> str | None:
    """Path of the node-red launcher, or None when Node-RED is not installed.

    Order: $SOFIAFLOW_NODE_RED, `node-red` on PATH, /opt/nodered, <repo>/.cache/nodered.
    An explicitly set $SOFIAFLOW_NODE_RED that does not exist gives None (no silent fallback).
    """
    env = os.environ.get("SOFIAFLOW_NODE_RED")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    on_path = shutil.which("node-red")
    if on_path:
        return on_path
    for cand in _CANDIDATES:
        if cand.is_file():
            return str(cand)
    return None


class NodeRed:
    """Context manager running Node-RED with `flows` on 127.0.0.1.

    >>> with NodeRed(flows) as nr:
    ...     status, body = nr.request("GET", "/flows")
    """

    START_TIMEOUT = 60.0
    STOP_GRACE = 5.0

    def __init__(self, flows: list[dict], port: int | None = None):
        self.flows = flows
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.user_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------
    def _write_user_dir(self) -> Path:
        d = Path(tempfile.mkdtemp(prefix="sofiaflow-nodered-"))
        (d / "flows.json").write_text(json.dumps(self.flows))
        settings = {
            "uiHost": "127.0.0.1",
            "uiPort": self.port,
            "userDir": str(d),
            "flowFile": "flows.json",
            "credentialSecret": False,
            "httpAdminRoot": "/",
            "httpNodeRoot": "/",
            "logging": {"console": {"level": "warn", "metrics": False, "audit": False}},
            "telemetry": {"enabled": False, "updateNotification": False},
            "editorTheme": {"tours": False},
        }
        (d / "settings.js").write_text("module.exports = " + json.dumps(settings, indent=2) + ";\n")
        return d

    def start(self) -> NodeRed:
        """Start Node-RED and wait (bounded) until GET /flows answers 200."""
        launcher = find_node_red()
        if launcher is None:
            raise RuntimeError("Node-RED not found (set SOFIAFLOW_NODE_RED)")
        self.user_dir = self._write_user_dir()
        self._log = open(self.user_dir / "node-red.log", "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [launcher, "--userDir", str(self.user_dir), "--settings", str(self.user_dir / "settings.js")],
            cwd=self.user_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() also reaps any wrapper children
        )
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_tail()
                self.stop()
                raise RuntimeError(f"Node-RED exited with {self.proc.returncode}:\n{log}")
            try:
                if self.request("GET", "/flows", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        log = self.log_tail()
        self.stop()
        raise TimeoutError(f"Node-RED did not answer within {self.START_TIMEOUT}s:\n{log}")

    def stop(self) -> None:
        """Terminate the process (kill after 5 s) and remove the user dir."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(self.STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(self.STOP_GRACE)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.user_dir is not None:
            shutil.rmtree(self.user_dir, ignore_errors=True)
            self.user_dir = None

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group we created, whose id is our pid
        except ProcessLookupError:
            pass

    def __enter__(self) -> NodeRed:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, n: int = 4000) -> str:
        """Last `n` characters of Node-RED's console output."""
        try:
            return (self.user_dir / "node-red.log").read_text(errors="replace")[-n:]
        except (OSError, TypeError):
            return ""

    # -- HTTP --------------------------------------------------------------
    def request(
        self, method: str, path: str, body=None, headers: dict | None = None, timeout: float = 30
    ) -> tuple[int, bytes]:
        """Send an HTTP request to Node-RED; JSON-encodes `body`. Returns (status, body)."""
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def deploy(self, flows: list[dict], timeout: float = 120) -> float:
        """Full deploy of `flows` (POST /flows); returns seconds until Node-RED answered."""
        t0 = time.perf_counter()
        status, body = self.request(
            "POST", "/flows", flows, {"Node-RED-Deployment-Type": "full"}, timeout=timeout
        )
        elapsed = time.perf_counter() - t0
        if status not in (200, 204):
            raise RuntimeError(f"deploy failed: HTTP {status} {body[:500]!r}")
        self.flows = flows
        return elapsed

    # -- memory ------------------------------------------------------------
    def rss_bytes(self) -> int:
        """Resident memory of the node process (psutil if importable, else /proc)."""
        pid = self.proc.pid
        try:
            import psutil
        except ImportError:
            psutil = None
        if psutil is not None:
            p = psutil.Process(pid)
            if "node" not in p.name():  # launcher is a wrapper script: measure its node child
                p = next((c for c in p.children(recursive=True) if "node" in c.name()), p)
            return p.memory_info().rss
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {pid}")
