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


def mount_editor(app: Any, runtime: Any, auth: Any, storage_secret: str) -> None:
    """Register the editor's pages and mount NiceGUI at `MOUNT_PATH` of the FastAPI `app`."""
    from .mount import mount

    mount(app, runtime, auth, storage_secret)
