"""`/devices`: register devices, show a new token once, add and revoke tokens, enable/disable, delete."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._access import audit, current_role, may_write
from sofiaflow.editor.session import current_user, editor_page
from sofiaflow.runtime.security.devices import RIGHTS, Device, DeviceError, DeviceRegistry


def rights_refusal(rights: dict[str, str]) -> str | None:
    """Why this user may not give a device these ontology rights (the admin API's rule), or None."""
    engine = get_context().runtime.engine
    permissions = engine.services.get("permissions") if engine is not None else None
    if permissions is None:
        return None
    return permissions.device_rights_refusal(current_user(), current_role(), rights)


def parse_topics(text: str) -> list[str]:
    """`a/{device}/#, b/+` -> ["a/{device}/#", "b/+"] (commas or new lines between filters)."""
    return [t.strip() for t in text.replace("\n", ",").split(",") if t.strip()]


def parse_rights(text: str) -> dict[str, str]:
    """`Reading:INSERT, Alarm:ALL` -> {"Reading": "INSERT", "Alarm": "ALL"}; ValueError names a bad entry."""
    out: dict[str, str] = {}
    for item in (t.strip() for t in text.replace("\n", ",").split(",")):
        if not item:
            continue
        name, sep, right = item.partition(":")
        if not sep or not name.strip() or not right.strip():
            raise ValueError(f"ontologies: {item!r} should read Ontology:RIGHT ({'|'.join(RIGHTS)})")
        out[name.strip()] = right.strip().upper()
    return out


def registry() -> DeviceRegistry:
    engine = get_context().runtime.engine
    devices = engine.services.get("devices") if engine is not None else None
    if devices is None:
        raise RuntimeError("the device registry is not running")
    return devices


def show_token_once(device: str, token: str) -> None:
    """A dialog with a new token; it is not kept anywhere the page could show it again."""
    with (
        ui.dialog().props("persistent") as dialog,
        ui.card().classes("w-[36rem]").props("data-testid=token-dialog"),
    ):
        ui.label(f"Token for {device}").classes("text-lg font-semibold")
        ui.label("Copy it now: it is shown only this once and cannot be retrieved later.").classes(
            "text-orange-700"
        )
        ui.input(value=token).props("readonly outlined dense data-testid=new-token").classes(
            "w-full font-mono"
        )
        with ui.row():
            ui.button("Copy", icon="content_copy", on_click=lambda: ui.clipboard.write(token)).props("flat")
            ui.button("Done", on_click=lambda: (dialog.close(), dialog.delete())).props(
                "data-testid=token-done"
            )
    dialog.open()


class DevicesView:
    """The registration form and the device list inside `container`."""

    def __init__(self, container: ui.element) -> None:
        self.writable = may_write()
        with container:
            if not self.writable:
                ui.label("Your role only reads: devices cannot be registered or changed.").classes(
                    "text-gray-500"
                )
            with ui.card().classes("w-full").props("flat bordered") as form:
                form.set_visibility(self.writable)
                ui.label("Register a device").classes("text-lg font-semibold")
                with ui.row().classes("w-full items-start gap-3"):
                    self.name = ui.input("Name", placeholder="meter-1").props("data-testid=device-name")
                    self.topics = (
                        ui.input("MQTT topics", placeholder="sensors/{device}/#")
                        .classes("w-72")
                        .props("data-testid=device-topics")
                    )
                    self.rights = (
                        ui.input("Ontologies", placeholder="Reading:INSERT, Alarm:ALL")
                        .classes("w-72")
                        .props("data-testid=device-ontologies")
                    )
                    ui.button("Register", icon="add", on_click=self.register).props(
                        "data-testid=device-register"
                    )
                self.problem = ui.label("").classes("text-red-600").props("data-testid=device-error")
            self.list_area = ui.column().classes("w-full gap-2")
        self.render()

    def fail(self, text: str) -> None:
        self.problem.set_text(text)

    def allowed(self, action: str, target: str | None) -> bool:
        if may_write():
            return True
        audit(action, target, "denied", {"message": "role only reads"})
        self.fail("Your role only reads: devices cannot be changed.")
        return False

    def register(self) -> None:
        name = self.name.value.strip()
        if not self.allowed("device.create", name):
            return
        try:
            rights = parse_rights(self.rights.value or "")
        except ValueError as exc:
            self.fail(str(exc))
            return
        refusal = rights_refusal(rights)
        if refusal is not None:
            audit("device.create", name, "denied", {"message": refusal})
            self.fail(refusal)
            return
        try:
            device, token = registry().create(
                name, rights, parse_topics(self.topics.value or ""), owner=current_user()
            )
        except (DeviceError, ValueError) as exc:
            self.fail(str(exc))
            return
        audit("device.create", device.name)
        self.fail("")
        self.name.value = ""
        self.render()
        show_token_once(device.name, token)

    def add_token(self, name: str) -> None:
        if not self.allowed("device.token", name):
            return
        try:
            token_id, token = registry().add_token(name)
        except DeviceError as exc:
            self.fail(str(exc))
            return
        audit("device.token", name, detail={"token": token_id})
        self.render()
        show_token_once(name, token)

    def act(self, what: str, action: Any, *args: Any) -> None:
        if not self.allowed(what, args[0] if args else None):
            return
        try:
            action(*args)
        except DeviceError as exc:
            self.fail(str(exc))
            return
        audit(what, args[0] if args else None, detail=list(args[1:]) or None)
        self.fail("")
        self.render()

    def render(self) -> None:
        self.list_area.clear()
        with self.list_area:
            devices = [
                d for d in registry().list() if current_role() == "administrator" or d.owner == current_user()
            ]
            if not devices:
                ui.label("No device registered yet.").classes("text-gray-500")
            for device in devices:
                self._device_card(device)

    def _device_card(self, device: Device) -> None:
        reg = registry()
        with ui.card().classes("w-full").props(f"flat bordered data-testid=device-{device.name}"):
            with ui.row().classes("w-full items-center gap-3"):
                ui.label(device.name).classes("text-base font-semibold")
                ui.badge(
                    "enabled" if device.enabled else "disabled", color="green" if device.enabled else "grey"
                )
                ui.label(f"topics: {', '.join(device.topics) or 'none'}").classes("text-sm text-gray-600")
                rights = ", ".join(f"{k}:{v}" for k, v in device.ontologies.items()) or "none"
                ui.label(f"ontologies: {rights}").classes("text-sm text-gray-600")
                ui.label(f"last seen: {device.as_dict()['last_seen'] or 'never'}").classes(
                    "text-sm text-gray-600"
                )
                ui.space()
                with ui.row().classes("gap-1") as actions:
                    actions.set_visibility(self.writable)
                    ui.button("New token", on_click=lambda n=device.name: self.add_token(n)).props(
                        "flat dense"
                    )
                    ui.button(
                        "Disable" if device.enabled else "Enable",
                        on_click=lambda d=device: self.act(
                            "device.update", lambda n, on: reg.update(n, enabled=on), d.name, not d.enabled
                        ),
                    ).props("flat dense")
                    ui.button(
                        "Delete",
                        color="red",
                        on_click=lambda n=device.name: self.act("device.delete", reg.delete, n),
                    ).props(f"flat dense data-testid=delete-{device.name}")
            for token in device.tokens or []:
                with ui.row().classes("items-center gap-3 pl-2").props(f"data-testid=token-{token.id}"):
                    ui.label(token.id).classes("font-mono text-sm")
                    ui.label(f"created {token.as_dict()['created']}").classes("text-xs text-gray-500")
                    if token.active:
                        ui.badge("active", color="green")
                        ui.button(
                            "Revoke",
                            on_click=lambda n=device.name, t=token.id: self.act(
                                "device.revoke", reg.revoke, n, t
                            ),
                        ).props(f"flat dense color=red data-testid=revoke-{token.id}").set_visibility(
                            self.writable
                        )
                    else:
                        ui.badge(f"revoked {token.as_dict()['revoked_at']}", color="grey")


@editor_page("/devices", title="sofiaflow: devices")
def devices_page() -> None:
    page_header("Devices")
    with ui.column().classes("w-full p-4 gap-3") as body:
        DevicesView(body)
