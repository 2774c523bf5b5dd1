"""The runtime and auth service the editor's pages talk to (one runtime per process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class EditorContext:
    runtime: Any  # sofiaflow.runtime.runtime.Runtime
    auth: Any  # sofiaflow.runtime.security.auth.AuthService


_current: EditorContext | None = None


def set_context(ctx: EditorContext) -> None:
    global _current
    _current = ctx


def get_context() -> EditorContext:
    """The context the editor was mounted with; RuntimeError before `mount_editor`."""
    if _current is None:
        raise RuntimeError("the editor is not mounted: call editor.mount_editor(app, runtime, auth, secret)")
    return _current
