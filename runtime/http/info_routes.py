"""`/settings` and `/diagnostics`: what the editor and support tools ask about the runtime."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

from sofiaflow.runtime.http.deps import RuntimeDep
from sofiaflow.runtime.http.palette import module_version
from sofiaflow.runtime.runtime import Runtime

router = APIRouter(tags=["runtime"])


def store_names(runtime: Runtime) -> list[str]:
    """Context store names, the default one first (as Node-RED lists them)."""
    contexts = runtime.contexts
    return [contexts.default, *(n for n in contexts.stores if n != contexts.default)]


@router.get("/settings", summary="Runtime settings for the editor")
async def get_settings(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    s = runtime.settings
    return {
        "httpNodeRoot": s.http_node_root,
        "version": module_version("sofiaflow"),
        "user": {
            "username": getattr(request.state, "user", None),
            "permissions": getattr(request.state, "scope", "*"),
        },
        "context": {"default": runtime.contexts.default, "stores": store_names(runtime)},
        "flowFilePretty": False,
        "externalModules": {"palette": {"allowInstall": False, "allowUpload": False}, "autoInstall": False},
        "functionExternalModules": False,
        "diagnostics": {"enabled": True, "ui": False},
        "runtimeState": {"enabled": True, "ui": False},
        "debugMaxLength": s.debug_max_length,
        "editorTheme": {},
    }


@router.get("/diagnostics", summary="A short report for support")
async def get_diagnostics(runtime: RuntimeDep) -> dict[str, Any]:
    engine, deployer = runtime.engine, runtime.deployer
    now = datetime.now(UTC)
    return {
        "report": "diagnostics",
        "scope": "basic",
        "time": {"utc": now.strftime("%a, %d %b %Y %H:%M:%S GMT")},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "os": {"platform": sys.platform, "arch": platform.machine(), "release": platform.release()},
        "runtime": {
            "version": module_version("sofiaflow"),
            "isStarted": True,
            "flows": {"state": runtime.state, "started": runtime.state == "start", "rev": runtime.rev},
            "nodes": {"running": len(deployer.running), "deployed": len(runtime.flows)},
            "messages_total": engine.messages_total,
            "errors_total": engine.errors_total,
            "problems": [str(p) for p in deployer.problems],
            "startup_problems": list(runtime.startup_problems),
            "load_errors": list(runtime.registry.load_errors),
        },
    }
