"""`/users` (administrators): create users, change their role or password, delete them; read the audit log."""

from __future__ import annotations

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._access import audit, current_role
from sofiaflow.editor.session import editor_page
from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.security.auth import ROLES

AUDIT_ROWS = 200


class UsersView:
    """The user list, the new-user form and the audit log inside `container`."""

    def __init__(self, container: ui.element) -> None:
        self.auth = get_context().auth
        with container:
            with ui.card().classes("w-full").props("flat bordered"):
                ui.label("New user").classes("text-lg font-semibold")
                with ui.row().classes("w-full items-start gap-3"):
                    self.name = ui.input("User name").props("data-testid=user-name")
                    self.password = ui.input("Password", password=True, password_toggle_button=True).props(
                        "data-testid=user-password"
                    )
                    self.role = (
                        ui.select(list(ROLES), value="developer", label="Role")
                        .classes("w-40")
                        .props("data-testid=user-role")
                    )
                    ui.button("Create", icon="person_add", on_click=self.create).props(
                        "data-testid=user-create"
                    )
                self.problem = ui.label("").classes("text-red-600").props("data-testid=user-error")
            self.list_area = ui.column().classes("w-full gap-1")
            ui.label("Audit log").classes("text-lg font-semibold mt-4")
            with ui.row().classes("items-center gap-3"):
                self.outcome = (
                    ui.select(
                        ["all", "ok", "denied", "failed"],
                        value="all",
                        label="Outcome",
                        on_change=lambda: self.render_audit(),
                    )
                    .classes("w-40")
                    .props("data-testid=audit-outcome")
                )
                ui.button("Refresh", icon="refresh", on_click=lambda: self.render_audit()).props("flat")
            self.audit_area = ui.column().classes("w-full")
        self.render()
        self.render_audit()

    def fail(self, text: str) -> None:
        self.problem.set_text(text)

    def create(self) -> None:
        name, password, role = (self.name.value or "").strip(), self.password.value or "", self.role.value
        try:
            self.auth.add_user(name, password, role)
        except AuthError as exc:
            self.fail(str(exc))
            return
        audit("user.create", name, detail={"role": role})
        self.fail("")
        self.name.value = self.password.value = ""
        self.render()

    def change(self, what: str, action, username: str, *args) -> None:
        try:
            action(username, *args)
        except AuthError as exc:
            self.fail(str(exc))
            self.render()
            return
        engine = get_context().runtime.engine
        permissions = engine.services.get("permissions") if engine is not None else None
        if permissions is not None:
            permissions.forget()
        audit(what, username, detail={"role": args[0]} if what == "user.change" else None)
        self.fail("")
        self.render()

    def reset_password(self, username: str) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label(f"New password for {username}").classes("font-semibold")
            field = ui.input("Password", password=True, password_toggle_button=True).props(
                "data-testid=new-password"
            )

            def save() -> None:
                dialog.close()
                self.change("user.password", self.auth.set_password, username, field.value or "")

            with ui.row():
                ui.button("Save", on_click=save).props("data-testid=save-password")
                ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.open()

    def render(self) -> None:
        self.list_area.clear()
        with self.list_area:
            for user in self.auth.users():
                name = user["username"]
                with ui.row().classes("w-full items-center gap-3").props(f"data-testid=user-{name}"):
                    ui.label(name).classes("w-48 font-semibold")
                    ui.select(
                        list(ROLES),
                        value=user["role"],
                        on_change=lambda e, n=name: self.change(
                            "user.change", self.auth.set_role, n, e.value
                        ),
                    ).classes("w-40").props(f"dense data-testid=role-{name}")
                    ui.label(f"since {user['created'][:10]}").classes("text-sm text-gray-500")
                    ui.button("Password", on_click=lambda n=name: self.reset_password(n)).props("flat dense")
                    ui.button(
                        "Delete",
                        color="negative",
                        on_click=lambda n=name: self.change("user.delete", self.auth.delete_user, n),
                    ).props(f"flat dense data-testid=delete-user-{name}")

    def render_audit(self) -> None:
        log = getattr(get_context().runtime, "audit", None)
        outcome = None if self.outcome.value == "all" else self.outcome.value
        rows = (
            []
            if log is None
            else [
                {**e, "detail": "" if e["detail"] is None else str(e["detail"])[:200]}
                for e in log.entries(outcome=outcome, limit=AUDIT_ROWS)
            ]
        )
        columns = [
            {"name": k, "label": k.capitalize(), "field": k, "align": "left"}
            for k in ("at", "user", "action", "target", "outcome", "detail")
        ]
        self.audit_area.clear()
        with self.audit_area:
            ui.table(columns=columns, rows=rows, row_key="id", pagination=25).classes("w-full").props(
                "dense flat bordered data-testid=audit-table"
            )


@editor_page("/users", title="sofiaflow: users")
def users_page() -> None:
    page_header("Users")
    with ui.column().classes("w-full p-4 gap-3") as body:
        if current_role() != "administrator":
            audit("open users page", None, "denied", {"message": "administrators only"})
            ui.label("Users and the audit log are for administrators.").props("data-testid=users-refused")
            return
        UsersView(body)
