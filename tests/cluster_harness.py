"""A throwaway sofiaflow cluster for tests: Redis, PostgreSQL, Mosquitto, HAProxy and N `sofiaflow run` workers.

Every server is a real process on a free 127.0.0.1 port, in its own temp dir, stopped by its pid. A missing binary
skips the test (fails under SOFIAFLOW_REQUIRE_SERVERS=1). Typical use::

    with Cluster(workers=3) as cluster:      # redis + postgres + mosquitto, then the workers, healthy
        token = cluster.token(cluster.workers[0])
        cluster.workers[1].sigstop() ...
        cluster.start_haproxy()             # a balancer in front of every worker

On failure, `Cluster.logs()` (also printed when the `with` block raises) holds the tail of every log.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from rtdb_servers import Server, _tail, _wait_port, free_port, start_postgres

ADMIN_PASSWORD = "cluster-admin-pw-1"
CREDENTIAL_SECRET = "cluster-credential-secret"
HEALTH_PATH = "/cluster/health"
"""The route the harness and HAProxy check a worker's health on (no token needed)."""


def _missing(what: str) -> None:
    if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
        pytest.fail(f"{what} is required (SOFIAFLOW_REQUIRE_SERVERS=1) but not available")
    pytest.skip(f"{what} is not available")


def require(*names: str) -> None:
    """Skip (or fail under SOFIAFLOW_REQUIRE_SERVERS=1) unless every binary in `names` is installed."""
    for name in names:
        if shutil.which(name) is None and not Path("/usr/sbin", name).exists():
            _missing(name)


def cluster_available() -> bool:
    """Whether the servers a cluster test needs are installed (for module-level skips)."""
    needed = ("redis-server", "mosquitto", "initdb", "postgres")
    return all(shutil.which(n) or Path("/usr/sbin", n).exists() for n in needed)


def skip_unless_cluster() -> pytest.MarkDecorator:
    """A module-level mark: skip when the servers are missing, unless SOFIAFLOW_REQUIRE_SERVERS=1 (then the
    tests run and fail on what is missing)."""
    return pytest.mark.skipif(
        not cluster_available() and os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") != "1",
        reason="cluster servers (redis-server, mosquitto, PostgreSQL) are not installed",
    )


def _which(name: str) -> str:
    path = shutil.which(name) or (str(Path("/usr/sbin", name)) if Path("/usr/sbin", name).exists() else None)
    if path is None:
        _missing(name)
    return path  # type: ignore[return-value]


def start_redis() -> Server:
    """redis-server with append-only persistence in a temp dir on a free port."""
    exe = _which("redis-server")
    tmp = tempfile.mkdtemp(prefix="cluster-redis-")
    port = free_port()
    log = os.path.join(tmp, "log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                tmp,
                "--appendonly",
                "yes",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=tmp,
        )
    server = Server(f"redis://127.0.0.1:{port}/0", proc, tmp)
    server.log = log  # type: ignore[attr-defined]
    try:
        _wait_port(port, proc, 20, log)
    except Exception:
        server.stop()
        raise
    return server


def mosquitto_config(port: int, data_dir: str, extra_lines: Iterable[str] = ()) -> str:
    """Mosquitto's config for the cluster: a listener on 127.0.0.1:`port`, persistence in `data_dir`, a raised
    queue limit; `extra_lines` are appended (e.g. the dynamic security plugin and its options)."""
    lines = [
        "per_listener_settings false",
        f"listener {port} 127.0.0.1",
        "persistence true",
        f"persistence_location {data_dir}/",
        "max_queued_messages 10000",
        "allow_anonymous true",
        *extra_lines,
    ]
    return "\n".join(lines) + "\n"


def start_mosquitto(extra_lines: Iterable[str] | Callable[[str], Iterable[str]] = ()) -> Server:
    """Mosquitto on a free port in a temp dir. `extra_lines` are config lines appended to the base config, or a
    function of the temp dir returning them (so a dynamic security file can be written there first)."""
    exe = _which("mosquitto")
    tmp = tempfile.mkdtemp(prefix="cluster-mosquitto-")
    port = free_port()
    lines = extra_lines(tmp) if callable(extra_lines) else extra_lines
    conf = os.path.join(tmp, "mosquitto.conf")
    Path(conf).write_text(mosquitto_config(port, tmp, lines))
    log = os.path.join(tmp, "log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [exe, "-c", conf], stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp
        )
    server = Server(f"mqtt://127.0.0.1:{port}", proc, tmp)
    server.port = port  # type: ignore[attr-defined]
    server.log = log  # type: ignore[attr-defined]
    try:
        _wait_port(port, proc, 20, log)
    except Exception:
        server.stop()
        raise
    return server


REQUEST_ID_LINES = (
    r"unique-id-format %{+X}o\ %ci-%cp-%fi-%fp-%Ts-%rt-%pid",
    "unique-id-header X-Request-ID",
)
"""deploy/haproxy.cfg's request id: one per request, the same on each of its retries (hex, dashes: a plain
context key)."""

HAPROXY_LOG_FORMAT = "%ID %rc %ST %s"
"""The test balancer's log line per request: its id, retries (`+` first when redispatched), status, server."""


def haproxy_config(port: int, backends: list[tuple[str, int]], health_path: str = HEALTH_PATH) -> str:
    """The balancer's config (as deploy/haproxy.cfg, on test ports): round robin with health checks, retries and
    redispatch on connection failures, empty responses and response timeouts, a request id in X-Request-ID, and
    one log line per request on stdout (HAPROXY_LOG_FORMAT; read with `haproxy_log`)."""
    servers = "\n".join(
        f"    server w{i} {host}:{p} check inter 500ms fall 2 rise 1" for i, (host, p) in enumerate(backends)
    )
    request_id = "\n".join(f"    {line}" for line in REQUEST_ID_LINES)
    # one thread: HAProxy drops a log line when another thread is writing to the same fd
    return f"""global
    maxconn 4096
    nbthread 1

defaults
    mode http
    log stdout format raw local0
    timeout connect 1s
    timeout client 30s
    timeout server 10s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend sofiaflow
    bind 127.0.0.1:{port}
{request_id}
    log-format "{HAPROXY_LOG_FORMAT}"
    default_backend workers

backend workers
    balance roundrobin
    option httpchk GET {health_path}
    http-check expect status 200
{servers}
"""


def start_haproxy(backends: list[tuple[str, int]]) -> Server:
    exe = _which("haproxy")
    tmp = tempfile.mkdtemp(prefix="cluster-haproxy-")
    port = free_port()
    conf = os.path.join(tmp, "haproxy.cfg")
    Path(conf).write_text(haproxy_config(port, backends))
    check = subprocess.run([exe, "-c", "-f", conf], capture_output=True, text=True)
    if check.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"haproxy refuses its config: {check.stdout}{check.stderr}")
    log = os.path.join(tmp, "log")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [exe, "-db", "-f", conf], stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp
        )
    server = Server(f"http://127.0.0.1:{port}", proc, tmp)
    server.port = port  # type: ignore[attr-defined]
    server.log = log  # type: ignore[attr-defined]
    try:
        _wait_port(port, proc, 20, log)
    except Exception:
        server.stop()
        raise
    return server


def haproxy_log(server: Server) -> list[dict[str, Any]]:
    """The requests in a harness balancer's log (HAPROXY_LOG_FORMAT): id, retries (int), redispatched (bool),
    status (int) and server of each, in the order they ended. Other lines (startup, health checks) are skipped."""
    entries = []
    for line in Path(server.log).read_text().splitlines():  # type: ignore[attr-defined]
        parts = line.split(" ")
        if len(parts) != 4 or not parts[1].lstrip("+").isdigit() or not parts[2].lstrip("-").isdigit():
            continue
        request_id, retries, status, name = parts
        entries.append(
            {
                "id": request_id,
                "retries": int(retries.lstrip("+")),
                "redispatched": retries.startswith("+"),
                "status": int(status),
                "server": name,
            }
        )
    return entries


def http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON or text body) of one request; HTTP errors are answers, not exceptions."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    try:
        return status, got, json.loads(raw) if raw else None
    except ValueError:
        return status, got, raw.decode(errors="replace")


class Worker:
    """One `sofiaflow run` process with its own data dir and port."""

    def __init__(self, name: str, env: dict[str, str], root: Path) -> None:
        self.name = name
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.data_dir / "worker.log"
        self.env = {
            **env,
            "SOFIAFLOW_DATA_DIR": str(self.data_dir),
            "SOFIAFLOW_PORT": str(self.port),
            "SOFIAFLOW_HOST": "127.0.0.1",
            "SOFIAFLOW_WORKER_ID": name,
        }
        self.proc: subprocess.Popen | None = None
        self._token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"worker {self.name} runs already (pid {self.proc.pid})")
        out = open(self.log, "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sofiaflow.runtime.cli", "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            cwd=self.data_dir,
        )
        out.close()

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"worker {self.name} exited ({code}):\n{self.tail()}")
            try:
                status, _, _ = http("GET", self.url + HEALTH_PATH, timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not healthy within {timeout}s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def token(self) -> str:
        """A bearer token of user admin (cached; tokens live in the shared config DB)."""
        if self._token is None:
            status, _, body = http(
                "POST",
                self.url + "/auth/token",
                {
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": "admin",
                    "password": ADMIN_PASSWORD,
                },
            )
            if status != 200:
                raise RuntimeError(f"login on {self.name} failed: {status} {body}")
            self._token = body["access_token"]
        return self._token

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
        return http("GET", self.url + path, token=self.token(), **kw)

    def post(self, path: str, body: Any, **kw: Any) -> tuple[int, dict[str, str], Any]:
        return http("POST", self.url + path, body, token=self.token(), **kw)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a clean stop), SIGKILL when it does not exit in time."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def sigstop(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def sigcont(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def tail(self, chars: int = 4000) -> str:
        return _tail(str(self.log))[-chars:]


class Cluster:
    """Redis, PostgreSQL, Mosquitto and `workers` workers (and HAProxy on demand); a context manager that stops
    everything it started by pid, and prints every log when the block raises."""

    def __init__(
        self,
        workers: int = 3,
        env: dict[str, str] | None = None,
        mosquitto_lines: Iterable[str] | Callable[[str], Iterable[str]] = (),
        mosquitto: bool = True,
        together: bool = True,
    ) -> None:
        self.n = workers
        self.extra_env = dict(env or {})
        self.mosquitto_lines = mosquitto_lines
        self.with_mosquitto = mosquitto
        self.together = together
        """Start every worker at once on the fresh config DB (they take turns themselves: runtime/cluster/startup.py);
        False starts the first alone, then the others."""
        self.root = Path(tempfile.mkdtemp(prefix="cluster-workers-"))
        self.redis: Server | None = None
        self.postgres: Server | None = None
        self.mosquitto: Server | None = None
        self.haproxy: Server | None = None
        self.workers: list[Worker] = []

    # ----- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            print(self.logs(), file=sys.stderr)
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            print(self.logs(), file=sys.stderr)
        self.stop()

    def start(self) -> None:
        require("redis-server", "initdb", "postgres")
        self.redis = start_redis()
        self.postgres = start_postgres()
        if self.with_mosquitto:
            self.mosquitto = start_mosquitto(self.mosquitto_lines)
        for i in range(self.n):
            self.workers.append(Worker(f"w{i + 1}", self.worker_env(), self.root))
        # the first worker to get its turn creates the config DB's tables and user admin
        first, *rest = self.workers
        first.start()
        if not self.together:
            first.wait_healthy()
        for worker in rest:
            worker.start()
        for worker in self.workers:
            worker.wait_healthy()

    def stop(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                worker.stop()
        for server in (self.haproxy, self.mosquitto, self.postgres, self.redis):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # ----- parts -------------------------------------------------------------------------------------------
    @property
    def database_url(self) -> str:
        assert self.postgres is not None
        return self.postgres.url.replace("postgresql://", "postgresql+psycopg://", 1)

    def worker_env(self) -> dict[str, str]:
        assert self.redis is not None and self.postgres is not None
        env = {
            **os.environ,
            "SOFIAFLOW_DB_URL": self.database_url,
            "SOFIAFLOW_RTDB_URL": self.postgres.url,
            "SOFIAFLOW_REDIS_URL": self.redis.url,
            "SOFIAFLOW_MQTT_PORT": "0",
            "SOFIAFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SOFIAFLOW_CREDENTIAL_SECRET": CREDENTIAL_SECRET,
            "SOFIAFLOW_DEFAULT_FLOWS": "",
            "SOFIAFLOW_HISTORY_INTERVAL": "0",
        }
        env.pop("SOFIAFLOW_REQUIRE_SERVERS", None)
        env.update(self.extra_env)
        return env

    def add_worker(self, start: bool = True) -> Worker:
        worker = Worker(f"w{len(self.workers) + 1}", self.worker_env(), self.root)
        self.workers.append(worker)
        if start:
            worker.start()
            worker.wait_healthy()
        return worker

    def start_haproxy(self) -> Server:
        self.haproxy = start_haproxy([("127.0.0.1", w.port) for w in self.workers])
        return self.haproxy

    def redis_client(self) -> Any:
        """A synchronous redis-py client on the cluster's Redis (str answers)."""
        import redis

        assert self.redis is not None
        return redis.Redis.from_url(self.redis.url, decode_responses=True)

    def logs(self) -> str:
        parts = []
        for worker in self.workers:
            parts.append(f"----- worker {worker.name} (port {worker.port}) -----\n{worker.tail()}")
        for name in ("redis", "mosquitto", "haproxy"):
            server = getattr(self, name)
            if server is not None and getattr(server, "log", None):
                parts.append(f"----- {name} -----\n{_tail(server.log)}")
        if self.postgres is not None:
            parts.append(f"----- postgres -----\n{_tail(os.path.join(self.postgres.tmpdir, 'log'))}")
        return "\n".join(parts)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something true (returned), or fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
