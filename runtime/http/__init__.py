"""The admin HTTP API (FastAPI); `create_app(runtime)` builds it."""

from sofiaflow.runtime.http.app import create_app

__all__ = ["create_app"]
