"""`/dead-letters`: the messages partition nodes gave up on (cluster mode), one card each: flow and node by name,
key, partition, deliveries, the last error, when, a preview of the payload that opens to the whole message;
filtered by partition node, replayed (processed again) or discarded (after a confirmation), refreshed live.

Administrators see and handle every letter, other users those of the flows they own (the admin API's rule:
runtime/cluster/dead_letters.py); users only read. In a single process there are no dead letters: the page says
how to run a cluster instead.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._access import audit, may_write
from sofiaflow.editor.pages._format import NONE
from sofiaflow.editor.session import current_role, current_user, editor_page

REFRESH_SECONDS = 2.0
"""How often the page reads the dead letters again (the cards are rebuilt only when the letters changed)."""
SHOWN = 200
"""At most this many letters are shown (the oldest first); the rest are counted."""
PREVIEW_CHARS = 120
EVERY_NODE = ""
WHAT_THEY_ARE = (
    "A partition node processes each message by its key, in order. When processing a message keeps failing "
    "(an error no catch node takes), the node delivers it again; after the node's Deliveries setting "
    "(5 by default) it moves the message here, so the rest of its partition flows on. Fix the cause, then "
    "replay the message to process it again, or discard it."
)


def when(ms: int | None) -> str:
    """Epoch milliseconds as `2026-12-06 16:20:05 UTC`."""
    if ms is None:
        return NONE
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A value as one line of JSON, cut at `limit` characters (with an ellipsis)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def whole(msg: Any) -> str:
    """The whole message as indented JSON (bytes as their repr)."""
    return json.dumps(msg, ensure_ascii=False, indent=2, default=repr)


def names(flows: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """(flow id -> its tab's label or subflow's name, node id -> its name) of the deployed flows."""
    flow_names: dict[str, str] = {}
    node_names: dict[str, str] = {}
    for item in flows:
        if item.get("type") == "tab":
            flow_names[item["id"]] = item.get("label") or item["id"]
        elif item.get("type") == "subflow":
            flow_names[item["id"]] = item.get("name") or item["id"]
        elif "id" in item:
            node_names[item["id"]] = item.get("name") or ""
    return flow_names, node_names


def key_of(engine: Any, node: str, msg: Any) -> str:
    """The message's key as the running partition node reads it; a dash when the node is not running here."""
    running = getattr(engine, "nodes", {}).get(node) if engine is not None else None
    read = getattr(running, "key_of", None)
    if read is None or not isinstance(msg, dict):
        return NONE
    try:
        key = read(msg)
    except Exception:  # noqa: BLE001 - a key that cannot be read is shown as unknown
        return NONE
    return key if isinstance(key, str) else preview(key, 60)


def letter_rows(
    letters: list[dict[str, Any]], flows: list[dict[str, Any]], engine: Any = None
) -> list[dict[str, Any]]:
    """What a card shows of each letter, in words."""
    from sofiaflow.runtime.cluster.dead_letters import dead_lettered_at

    flow_names, node_names = names(flows)
    rows = []
    for letter in letters:
        node = letter["node"]
        msg = letter.get("msg")
        named = node_names.get(node)
        rows.append(
            {
                "id": letter["id"],
                "node": node,
                "flow": flow_names.get(letter["flow"], f"{letter['flow']} (no longer deployed)"),
                "nodeName": named or ("partition" if named is not None else f"partition {node} (removed)"),
                "key": key_of(engine, node, msg),
                "partition": letter.get("partition"),
                "deliveries": letter.get("deliveries"),
                "error": letter.get("error") or None,
                "at": when(dead_lettered_at(letter["id"])),
                "preview": preview(msg.get("payload") if isinstance(msg, dict) else msg),
                "message": whole(msg),
            }
        )
    return rows


class DeadLettersView:
    """The filter, the letters' cards and their actions inside `container`, read again every few seconds."""

    def __init__(self, container: ui.element, user: str | None, role: str) -> None:
        self.user, self.role = user, role
        self.runtime = get_context().runtime
        self.writable = may_write()
        self.seen: tuple[Any, ...] | None = None
        self.rows: list[dict[str, Any]] = []
        with container:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Dead letters").classes("text-lg font-semibold")
                self.node = (
                    ui.select({EVERY_NODE: "Every partition node"}, value=EVERY_NODE, label="Partition node")
                    .classes("w-80")
                    .props("data-testid=dead-letter-node")
                )
                self.node.on_value_change(lambda _: self.show())
                ui.button("Refresh", icon="refresh", on_click=lambda: self.refresh(force=True)).props(
                    "flat no-caps data-testid=dead-letter-refresh"
                )
                ui.space()
                self.summary = ui.label("").classes("text-gray-700").props("data-testid=dead-letter-summary")
            ui.label(WHAT_THEY_ARE).classes("text-gray-700 max-w-4xl")
            if not self.writable:
                ui.label("Your role only reads: dead letters cannot be replayed or discarded.").classes(
                    "text-gray-700"
                )
            self.problem = ui.label("").classes("text-red-700").props("data-testid=dead-letter-error")
            self.cards = ui.column().classes("w-full gap-3").props("data-testid=dead-letter-list")
        ui.timer(REFRESH_SECONDS, self.refresh)

    async def read(self) -> list[dict[str, Any]]:
        from sofiaflow.runtime.cluster.dead_letters import visible_dead_letters

        return await visible_dead_letters(self.runtime, self.user, self.role)

    async def refresh(self, force: bool = False) -> None:
        try:
            letters = await self.read()
        except Exception as exc:  # noqa: BLE001 - Redis away: said, read again at the next tick
            self.problem.set_text(f"The dead letters cannot be read now: {exc}")
            return
        seen = tuple((d["id"], d.get("error"), d.get("deliveries")) for d in letters)
        if seen == self.seen and not force:
            return
        self.seen = seen
        self.rows = letter_rows(letters, self.runtime.flows, self.runtime.engine)
        options = {EVERY_NODE: "Every partition node"}
        for row in self.rows:
            options.setdefault(row["node"], f"{row['nodeName']} in {row['flow']}")
        self.node.set_options(options, value=self.node.value if self.node.value in options else EVERY_NODE)
        if force:
            self.problem.set_text("")
        self.show()

    def show(self) -> None:
        chosen = self.node.value or EVERY_NODE
        rows = [r for r in self.rows if chosen == EVERY_NODE or r["node"] == chosen]
        total = len(rows)
        rows = rows[:SHOWN]
        shown = f" (the oldest {len(rows)} shown)" if total > len(rows) else ""
        self.summary.set_text(f"{total} dead letter{'s' if total != 1 else ''}{shown}")
        self.cards.clear()
        with self.cards:
            if not rows:
                self.empty(filtered=bool(self.rows))
            for row in rows:
                self.card(row)

    def empty(self, filtered: bool) -> None:
        with ui.card().classes("w-full max-w-4xl").props("flat bordered data-testid=dead-letter-empty"):
            with ui.row().classes("items-center gap-2"):
                ui.icon("mark_email_read", size="md").classes("text-green-700")
                ui.label(
                    "No dead letter of this partition node." if filtered else "No dead letters."
                ).classes("text-base font-semibold")
            ui.label(
                "Every message your partition nodes received was processed, or is still being processed."
            ).classes("text-gray-700")

    def card(self, row: dict[str, Any]) -> None:
        with (
            ui.card()
            .classes("w-full")
            .props(f'flat bordered data-testid=dead-letter data-letter="{row["id"]}"')
        ):
            with ui.row().classes("w-full items-center gap-2"):
                ui.icon("report", size="sm").classes("text-red-700")
                ui.label(row["nodeName"]).classes("text-base font-semibold")
                ui.label(f"partition node in flow “{row['flow']}”").classes("text-gray-700")
                ui.space()
                if self.writable:
                    ui.button("Replay", icon="replay", on_click=lambda r=row: self.replay(r)).props(
                        f'no-caps unelevated color=primary aria-label="Replay the message of key {row["key"]}"'
                    )
                    ui.button("Discard", icon="delete", on_click=lambda r=row: self.confirm_discard(r)).props(
                        f'no-caps flat color=negative aria-label="Discard the message of key {row["key"]}"'
                    )
            with ui.grid(columns="auto 1fr").classes("gap-x-4 gap-y-1 text-sm"):
                for label, value in (
                    ("Key", row["key"]),
                    ("Partition", str(row["partition"])),
                    ("Delivered", f"{row['deliveries']} times, failed each time"),
                    ("Moved here", row["at"]),
                ):
                    ui.label(label).classes("text-gray-700")
                    ui.label(value).props(f"data-testid=dead-letter-{label.split()[0].lower()}")
                ui.label("Last error").classes("text-gray-700")
                if row["error"]:
                    ui.label(row["error"]).classes("text-red-800 font-medium").props(
                        "data-testid=dead-letter-cause"
                    )
                else:
                    ui.label("not recorded (the message failed on a worker that has stopped since)").classes(
                        "text-gray-700 italic"
                    ).props("data-testid=dead-letter-cause")
                ui.label("Payload").classes("text-gray-700")
                ui.label(row["preview"]).classes("font-mono break-all").props(
                    "data-testid=dead-letter-payload"
                )
            with (
                ui.expansion("Show the whole message", icon="data_object")
                .classes("w-full")
                .props("dense data-testid=dead-letter-whole")
            ):
                code = ui.code(row["message"], language="json").classes("w-full")
                code.copy_button.props('aria-label="Copy the message"').tooltip("Copy the message")

    async def replay(self, row: dict[str, Any]) -> None:
        from sofiaflow.runtime.cluster.dead_letters import replay

        if not self.writable:
            audit("partition.replay", row["id"], "denied", {"message": "role only reads"})
            self.problem.set_text("Your role only reads: dead letters cannot be replayed.")
            return
        try:
            found, stream_id = await replay(self.runtime, self.user, self.role, row["id"])
        except (LookupError, PermissionError, ValueError) as exc:
            self.problem.set_text(str(exc))
            await self.refresh(force=False)
            return
        audit("partition.replay", row["id"], detail={"partition": found["partition"], "streamId": stream_id})
        self.problem.set_text("")
        ui.notify(f"Replayed: the message of key {row['key']} is processed again.", type="positive")
        await self.refresh(force=True)

    def confirm_discard(self, row: dict[str, Any]) -> None:
        with ui.dialog() as dialog, ui.card().props("data-testid=dead-letter-confirm"):
            ui.label("Discard this dead letter?").classes("text-base font-semibold")
            ui.label(
                f"The message of key {row['key']} ({row['nodeName']} in {row['flow']}) is deleted and will "
                "never be processed."
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=dialog.close).props("flat no-caps")

                async def discard() -> None:
                    dialog.close()
                    await self.discard(row)

                ui.button("Discard", on_click=discard).props("no-caps unelevated color=negative")
        dialog.open()

    async def discard(self, row: dict[str, Any]) -> None:
        from sofiaflow.runtime.cluster.dead_letters import discard

        if not self.writable:
            audit("partition.delete", row["id"], "denied", {"message": "role only reads"})
            self.problem.set_text("Your role only reads: dead letters cannot be discarded.")
            return
        try:
            await discard(self.runtime, self.user, self.role, row["id"])
        except (LookupError, PermissionError, ValueError) as exc:
            self.problem.set_text(str(exc))
            await self.refresh(force=False)
            return
        audit("partition.delete", row["id"])
        self.problem.set_text("")
        ui.notify(f"Discarded: the message of key {row['key']}.")
        await self.refresh(force=True)


def single_process_notice() -> None:
    with ui.card().classes("w-full max-w-4xl").props("flat bordered data-testid=dead-letter-single"):
        with ui.row().classes("items-center gap-2"):
            ui.icon("info", size="md").classes("text-blue-800")
            ui.label("Dead letters exist in cluster mode").classes("text-base font-semibold")
        ui.label(WHAT_THEY_ARE).classes("text-gray-700")
        ui.label(
            "This server runs as a single process: its partition nodes pass messages straight on, so nothing "
            "ends up here. To run a cluster, start every worker with SOFIAFLOW_REDIS_URL set to a shared Redis "
            "(for example redis://127.0.0.1:6379/0) and SOFIAFLOW_DB_URL set to a shared PostgreSQL; the "
            "README's Cluster section has the whole setup."
        ).classes("text-gray-700")


@editor_page("/dead-letters", title="sofiaflow: dead letters")
async def dead_letters_page() -> None:
    page_header("Dead letters")
    with ui.column().classes("w-full p-4 gap-3") as body:
        runtime = get_context().runtime
        if getattr(runtime, "redis", None) is None:
            ui.label("Dead letters").classes("text-lg font-semibold")
            single_process_notice()
            return
        user = current_user()
        view = DeadLettersView(body, user, current_role() if user else "user")
        await view.refresh(force=True)
