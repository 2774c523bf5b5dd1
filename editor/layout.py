"""The header every editor and control-panel page shares: title, navigation, user and logout."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from sofiaflow.editor.session import current_user, log_out
from sofiaflow.editor.testid import testid

CODE_THEME = "githubLight"
"""The code editors' theme: its syntax colours read at 4.5:1 or more on white (the default theme's do not)."""

NAV = [
    ("Flows", "/"),
    ("Monitoring", "/monitoring"),
    ("Alarms", "/alarms"),
    ("Dead letters", "/dead-letters"),
    ("Ontologies", "/ontologies"),
    ("Devices", "/devices"),
    ("APIs", "/apis"),
    ("API keys", "/api-keys"),
    ("Users", "/users"),
    ("Settings", "/settings"),
]


PRIMARY, NEGATIVE = "#2563eb", "#c62828"
ACCESSIBILITY_JS = """<script>
document.documentElement.lang = "en";
(() => {
  // code editors (CodeMirror) get the name of their host element: its aria-label, else its data-testid
  let pending = false;
  const label = () => {
    pending = false;
    document.querySelectorAll(".cm-content:not([aria-label])").forEach((el) => {
      const named = el.closest("[aria-label]");
      const marked = el.closest("[data-testid]");
      el.setAttribute("aria-label", named ? named.getAttribute("aria-label")
        : marked ? marked.dataset.testid.replace(/-/g, " ") : "Code editor");
    });
  };
  const later = () => { if (!pending) { pending = true; setTimeout(label, 250); } };
  document.addEventListener("DOMContentLoaded", () => {
    new MutationObserver(later).observe(document.body, {childList: true, subtree: true});
    later();
  });
})();
</script>"""
"""The page's language, and names for code editors, on every page."""


def page_header(active: str = "Flows", extra: Callable[[], None] | None = None) -> ui.header:
    """The top bar; `extra()` adds page-specific controls (e.g. the deploy button) before the user menu."""
    ui.add_head_html("<style>.sf-nav .q-btn{text-transform:none}</style>")
    ui.add_head_html(ACCESSIBILITY_JS)
    ui.colors(primary=PRIMARY, negative=NEGATIVE)  # Quasar's defaults read below 4.5:1 against white
    with ui.header().classes("items-center gap-2 py-1 px-3 bg-slate-800 text-white sf-nav") as header:
        ui.label("sofiaflow").classes("text-lg font-semibold mr-4")
        for name, path in NAV:
            button = ui.button(name, on_click=lambda p=path: ui.navigate.to(p)).props(
                "flat dense color=white"
            )
            if name == active:
                button.classes("bg-slate-600")
        ui.space()
        if extra is not None:
            extra()
        user = current_user() or ""
        with (
            ui.button(icon="account_circle")
            .props('flat dense color=white aria-label="User menu"')
            .props(testid("user-menu"))
            .tooltip(f"User menu: signed in as {user}")
        ):
            with ui.menu():
                ui.menu_item(f"Signed in as {user}").props("disable role=menuitem")
                ui.menu_item("Log out", on_click=_logout).props(testid("logout")).props("role=menuitem")
    return header


def _logout() -> None:
    log_out()
    ui.navigate.to("/login")
