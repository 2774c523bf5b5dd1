"""Mount NiceGUI (the editor's pages) into the admin FastAPI app."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from typing import Any

from fastapi.responses import RedirectResponse

from sofiaflow.editor import MOUNT_PATH
from sofiaflow.editor.context import EditorContext, set_context

log = logging.getLogger("sofiaflow.editor")


def _import_pages() -> None:
    """Import the editor's own pages, then every module of `sofiaflow.editor.pages` (they register with `@ui.page`)."""
    from sofiaflow.editor import editor_main, login_page  # noqa: F401 - registers the pages

    try:
        pages = importlib.import_module("sofiaflow.editor.pages")
    except ModuleNotFoundError:
        return
    for info in pkgutil.iter_modules(pages.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"sofiaflow.editor.pages.{info.name}")


def mount(app: Any, runtime: Any, auth: Any, storage_secret: str) -> None:
    from nicegui import ui

    set_context(EditorContext(runtime=runtime, auth=auth))
    _import_pages()
    from sofiaflow.editor.session import session_user

    app.state.session_user = session_user  # the admin app's /docs accept an editor login

    @app.get(MOUNT_PATH, include_in_schema=False)
    async def editor_root() -> RedirectResponse:
        return RedirectResponse(MOUNT_PATH + "/")

    ui.run_with(
        app,
        mount_path=MOUNT_PATH,
        storage_secret=storage_secret,
        title="sofiaflow",
        favicon="🔀",
        show_welcome_message=False,
        reconnect_timeout=10.0,
    )
    log.info("editor mounted at %s", MOUNT_PATH)
