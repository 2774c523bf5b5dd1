"""The admin HTTP API (FastAPI); `create_app(runtime)` builds it."""

from .app import create_app

__all__ = ["create_app"]
