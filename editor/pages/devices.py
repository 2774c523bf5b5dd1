"""`/devices`: register devices, show a new token once, add and revoke tokens, enable/disable, delete.

A device's topic filters are rows of inputs, and its ontology rights rows of two dropdowns: the ontology (those the
user holds a right on; administrators: all) and the right (READ = QUERY, INSERT, ALL)."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._access import audit, current_role, may_write
from sofiaflow.editor.pages._format import when
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


RIGHT_LABELS = {"QUERY": "READ", "INSERT": "INSERT", "ALL": "ALL"}
"""The rights a device may hold, as the form names them (onesait's QUERY reads)."""
assert set(RIGHT_LABELS) == set(RIGHTS)


def ontology_choices() -> list[str]:
    """The ontologies this user may give a device a right on: administrators all, others those they hold a
    right on."""
    engine = get_context().runtime.engine
    if engine is None:
        return []
    ontologies = engine.services.get("ontologies")
    permissions = engine.services.get("permissions")
    names = sorted(o.name for o in ontologies.list()) if ontologies is not None else []
    if current_role() == "administrator" or permissions is None:
        return names
    return [n for n in names if permissions.access(current_user(), n) is not None]


def rights_of(rows: list[tuple[Any, Any]]) -> dict[str, str]:
    """{ontology: right} from (ontology, right) pairs; ValueError names a half-filled row or a repeat."""
    out: dict[str, str] = {}
    for number, (ontology, right) in enumerate(rows, 1):
        if not ontology and not right:
            continue
        if not ontology or not right:
            raise ValueError(f"ontology right {number}: choose both the ontology and the right")
        if ontology in out:
            raise ValueError(f"ontology right {number}: {ontology} is already given a right above")
        if right not in RIGHTS:
            raise ValueError(f"ontology right {number}: {right!r} is not one of {', '.join(RIGHT_LABELS)}")
        out[str(ontology)] = str(right)
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
        ui.input("Device token", value=token).props("readonly outlined dense data-testid=new-token").classes(
            "w-full font-mono"
        )
        with ui.row():
            ui.button("Copy", icon="content_copy", on_click=lambda: ui.clipboard.write(token)).props(
                'flat aria-label="Copy token"'
            )
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
                self.name = ui.input("Name", placeholder="meter-1").props("data-testid=device-name")
                ui.label("MQTT topics").classes("font-semibold mt-2")
                self.topic_area = ui.column().classes("gap-1")
                self.topic_rows: list[tuple[ui.element, ui.input]] = []
                ui.button("Add topic", icon="add", on_click=lambda: self.add_topic()).props(
                    "flat dense no-caps"
                )
                ui.label("Ontology rights").classes("font-semibold mt-2")
                self.right_area = ui.column().classes("gap-1")
                self.right_rows: list[tuple[ui.element, ui.select, ui.select]] = []
                ui.button("Add ontology right", icon="add", on_click=lambda: self.add_right()).props(
                    "flat dense no-caps"
                )
                ui.button("Register", icon="add", on_click=self.register).props("data-testid=device-register")
                self.problem = ui.label("").classes("text-red-600").props("data-testid=device-error")
            self.list_area = ui.column().classes("w-full gap-2")
        self.add_topic()
        self.render()

    def add_topic(self, value: str = "") -> None:
        number = len(self.topic_rows) + 1
        with self.topic_area, ui.row().classes("items-center gap-2") as row:
            field = (
                ui.input(f"Topic filter {number}", value=value, placeholder="sensors/{device}/#")
                .classes("w-80")
                .props(f"dense data-testid=device-topic-{number}")
            )
            ui.button(icon="close", on_click=lambda: self.remove_topic(row)).props(
                f'flat dense round aria-label="Remove topic filter {number}"'
            ).tooltip("Remove this topic filter")
        self.topic_rows.append((row, field))

    def remove_topic(self, row: ui.element) -> None:
        self.topic_rows = [r for r in self.topic_rows if r[0] is not row]
        row.delete()

    def add_right(self) -> None:
        number = len(self.right_rows) + 1
        with self.right_area, ui.row().classes("items-center gap-2") as row:
            ontology = (
                ui.select(ontology_choices(), label=f"Ontology {number}", with_input=True)
                .classes("w-64")
                .props(f"dense data-testid=device-ontology-{number}")
            )
            right = (
                ui.select(RIGHT_LABELS, value="INSERT", label=f"Right {number}")
                .classes("w-36")
                .props(f"dense data-testid=device-right-{number}")
            )
            ui.button(icon="close", on_click=lambda: self.remove_right(row)).props(
                f'flat dense round aria-label="Remove ontology right {number}"'
            ).tooltip("Remove this ontology right")
        self.right_rows.append((row, ontology, right))

    def remove_right(self, row: ui.element) -> None:
        self.right_rows = [r for r in self.right_rows if r[0] is not row]
        row.delete()

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
            rights = rights_of([(o.value, r.value) for _row, o, r in self.right_rows])
        except ValueError as exc:
            self.fail(str(exc))
            return
        refusal = rights_refusal(rights)
        if refusal is not None:
            audit("device.create", name, "denied", {"message": refusal})
            self.fail(refusal)
            return
        try:
            topics = [t for _row, field in self.topic_rows if (t := (field.value or "").strip())]
            device, token = registry().create(name, rights, topics, owner=current_user())
        except (DeviceError, ValueError) as exc:
            self.fail(str(exc))
            return
        audit("device.create", device.name)
        self.fail("")
        self.name.value = ""
        for row, *_ in self.topic_rows + self.right_rows:
            row.delete()
        self.topic_rows, self.right_rows = [], []
        self.add_topic()
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
                rights = (
                    ", ".join(f"{k} ({RIGHT_LABELS.get(v, v)})" for k, v in device.ontologies.items())
                    or "none"
                )
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
                    ui.label(f"created {when(token.as_dict()['created'])}").classes("text-xs text-gray-500")
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
