"""`/login`: the login form (the admin user's password is printed at first start)."""

from __future__ import annotations

from nicegui import ui

from sofiaflow.editor.session import current_user, log_in
from sofiaflow.editor.testid import testid


def _safe_target(target: str | None) -> str:
    """Only same-site paths: an absolute URL in `redirect_to` would make this an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _go(target: str) -> None:
    """Open `target`, a full path (with the mount prefix) or one under the editor."""
    ui.run_javascript(
        f"const t = {target!r}; window.location.href = "
        f"(window.path_prefix && t.startsWith(window.path_prefix + '/')) ? t : window.path_prefix + t"
    )


@ui.page("/login", title="sofiaflow: log in")
def login_page(redirect_to: str | None = None) -> None:
    target = _safe_target(redirect_to)
    if current_user():
        _go(target)

    def submit() -> None:
        problem = log_in(username.value.strip(), password.value)
        if problem:
            error.set_text(problem)
            error.set_visibility(True)
            password.value = ""
            return
        _go(target)

    with ui.card().classes("absolute-center w-80"):
        ui.label("sofiaflow").classes("text-2xl font-semibold")
        ui.label("Log in to the flow editor").classes("text-gray-500")
        username = ui.input("Username", value="admin").classes("w-full")
        password = ui.input("Password", password=True, password_toggle_button=True).classes("w-full")
        password.on("keydown.enter", submit)
        error = ui.label("").classes("text-red-600 text-sm").props(testid("login-error"))
        error.set_visibility(False)
        ui.button("Log in", on_click=submit).classes("w-full")
