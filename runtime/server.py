"""`serve()`: start a Runtime, optionally import a flow file, ensure the admin user, run uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from sofiaflow.runtime.errors import FlowFormatError, FlowValidationError, ValidationError
from sofiaflow.runtime.flows.model import parse_json
from sofiaflow.runtime.flows.store import revision_of
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.http.access_log import AccessLog, open_access_log, redact_uvicorn_log
from sofiaflow.runtime.http.node_routes import app_prefixes, in_front
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import ADMIN_USER, AuthService
from sofiaflow.runtime.security.ownership import CLI_USER
from sofiaflow.runtime.settings import Settings

log = logging.getLogger("sofiaflow.server")


class StartupError(ValidationError):
    """The server cannot start as asked (bad flow file); the message says why."""


def release_free_memory() -> bool:
    """Collect garbage and hand the C allocator's free pages back to the system (glibc's malloc_trim): what
    starting freed stays out of the resident set. False where there is no malloc_trim (not glibc)."""
    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


class _Server(uvicorn.Server):
    """uvicorn's server, except that SIGINT/SIGTERM only make it exit: they are not re-raised after
    shutdown (which would kill the process), so `serve()` still stops the runtime cleanly. Once it listens,
    the memory starting freed is given back (`release_free_memory`)."""

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        release_free_memory()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        try:
            for sig in signals:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
        except NotImplementedError:  # no loop signal handlers on this platform
            with super().capture_signals():
                yield
            return
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


def admin_banner(password: str) -> str:
    line = f"sofiaflow: created user '{ADMIN_USER}' with password: {password} (shown once)"
    return f"{'=' * len(line)}\n{line}\n{'=' * len(line)}"


async def import_flows_file(runtime: Runtime, path: Path) -> str | None:
    """Deploy the flows in `path` (full, user "cli") unless they are already the current ones; the new rev."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StartupError(f"cannot read flow file {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        flows = parse_json(text, str(path))
    except FlowFormatError as exc:
        raise StartupError(str(exc)) from exc
    has_credentials = any(isinstance(n, dict) and "credentials" in n for n in flows)
    if not has_credentials and revision_of(flows) == runtime.rev:
        return None
    try:
        result = await runtime.deploy(flows, "full", user=CLI_USER)
    except FlowValidationError as exc:
        raise StartupError(f"{path}: refused, {exc}") from exc
    for problem in result.problems:
        log.warning("cannot run here: %s", problem)
    return result.rev


APPS_GROUP = "sofiaflow.apps"
"""Entry point group of the browser applications mounted on the admin app (the editor registers there):
each is `mount(app, runtime, auth)`, and decides itself whether it is enabled."""


def _mount_apps(admin_app: Any, runtime: Runtime, auth: AuthService) -> None:
    """Mount every registered browser application (the editor at /editor) on the admin app."""
    from importlib.metadata import entry_points

    for entry in entry_points(group=APPS_GROUP):
        try:
            mount = entry.load()
        except Exception:  # noqa: BLE001 - a broken add-on must not keep the runtime from serving
            log.exception("cannot load the application %r", entry.name)
            continue
        mount(admin_app, runtime, auth)


async def serve(settings: Settings, flows_file: str | Path | None = None, **uvicorn_options: Any) -> None:
    """Run the runtime and its admin API until the server is told to stop (SIGINT/SIGTERM)."""
    runtime = Runtime(settings)
    turn = await _startup_turn(settings)
    try:
        await runtime.start()
    except BaseException:
        if turn is not None:
            await turn.release()
        raise
    logged: AccessLog | None = None
    try:
        try:
            access = open_access_log(settings.access_log)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        if flows_file is not None:
            rev = await import_flows_file(runtime, Path(flows_file))
            if rev:
                log.info("imported %s as revision %s", flows_file, rev)
        auth = AuthService(runtime.db, settings)
        password = auth.ensure_admin()
        if turn is not None:  # tables and user admin exist: the next worker may start
            await turn.release()
            turn = None
        if password:
            print(admin_banner(password), flush=True)
        # the flows' own endpoints are looked up first (admin routes still win on a clash): the
        # admin app's router and middleware would otherwise cost more than the flow itself
        admin_app = create_app(runtime, auth)
        _mount_apps(admin_app, runtime, auth)
        routes = runtime.engine.services.get("http") if runtime.engine is not None else None
        if (
            routes is not None
        ):  # the admin API's paths are the platform's: only administrators' flows serve there
            routes.reserve(app_prefixes(admin_app))
        app = in_front(
            admin_app, lambda: runtime.engine.services.get("http") if runtime.engine is not None else None
        )
        app.app = admin_app  # type: ignore[attr-defined] # lets NiceGUI find the uvicorn server of its app
        if access is not None:  # our own line per request: uvicorn's costs ~15 % of a small API call's CPU
            app = logged = AccessLog(app, access)
        options = {"host": settings.host, "port": settings.port, "log_level": "info", "access_log": False}
        server = _Server(uvicorn.Config(app, **{**options, **uvicorn_options}))
        redact_uvicorn_log()  # after uvicorn's logging setup: no device token in its WebSocket lines
        await server.serve()
    finally:
        if logged is not None:
            logged.close()
        if turn is not None:
            await turn.release()
        await runtime.stop()
        log.info("runtime stopped")


async def _startup_turn(settings: Settings) -> Any:
    """In a cluster (redis_url set), wait for this worker's turn to start (runtime/cluster/startup.py); None in a
    single process."""
    if not settings.redis_url:
        return None
    from sofiaflow.runtime.cluster.startup import StartupTurn

    turn = StartupTurn(settings.redis_url)
    await turn.acquire()
    return turn
