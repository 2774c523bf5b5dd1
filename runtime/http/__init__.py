"""The admin HTTP API (FastAPI); `create_app(runtime)` builds it.

`create_app` is imported on first use, so that a module the app itself imports (the API manager's routes import
`sofiaflow.runtime.http.deps`) can be imported first without a cycle back into the half-built app module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sofiaflow.runtime.http.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from sofiaflow.runtime.http.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
