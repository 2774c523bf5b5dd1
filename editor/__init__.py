"""The browser editor and control panel (NiceGUI), served by the runtime's own process and port.

`mount_editor(app, runtime, auth)` mounts it under `/editor` of the admin FastAPI app. NiceGUI is
imported only here, so importing `runtime` stays fast; `SOFIAFLOW_EDITOR=0` starts without it.
"""

from __future__ import annotations

import os
from typing import Any

MOUNT_PATH = "/editor"


def editor_enabled() -> bool:
    """Whether the server should mount the editor (`SOFIAFLOW_EDITOR`, default on)."""
    return os.environ.get("SOFIAFLOW_EDITOR", "1").strip().lower() not in ("0", "false", "no", "off")


def mount_editor(app: Any, runtime: Any, auth: Any) -> None:
    """Register the editor's pages and mount NiceGUI at `MOUNT_PATH` of the FastAPI `app` (nothing with
    `SOFIAFLOW_EDITOR=0`). The server calls it through the `sofiaflow.apps` entry point group."""
    if not editor_enabled():
        return
    import hashlib

    from sofiaflow.editor.mount import mount

    secret = hashlib.sha256(b"sofiaflow-editor-session:" + runtime.credential_key()).hexdigest()
    mount(app, runtime, auth, secret)
