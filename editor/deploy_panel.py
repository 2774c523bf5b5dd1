"""The deploy button: modes (full, modified flows, modified nodes), the change count, the runtime's answer."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

MODES = {"full": "Full", "flows": "Modified Flows", "nodes": "Modified Nodes"}


class DeployButton:
    """Header control: [Deploy (n)] [mode ▾]; shows problems in a dialog, each linked to its node."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.mode = "full"
        self.failure_panel: ui.card | None = None
        with ui.button_group().props("unelevated"):
            self.button = (
                ui.button("Deploy", icon="cloud_upload", on_click=self.deploy)
                .props("color=red-7 no-caps")
                .props(testid("deploy"))
            )
            with (
                ui.button(icon="arrow_drop_down")
                .props('color=red-8 dense aria-label="Deploy mode"')
                .props(testid("deploy-mode"))
                .tooltip("Deploy mode: full, modified flows or modified nodes")
            ):
                with ui.menu():
                    for mode, label in MODES.items():
                        ui.menu_item(label, on_click=lambda m=mode: self.set_mode(m)).props(
                            testid(f"deploy-mode-{mode}")
                        ).props("role=menuitem")
        ws.on_redraw.append(self.refresh)
        self.refresh()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.refresh()

    def refresh(self) -> None:
        doc = self.ws.doc
        count = len(doc.changed_ids() | doc.removed_ids())
        mode = "" if self.mode == "full" else f" ({MODES[self.mode]})"
        self.button.set_text(f"Deploy{mode}" + (f" · {count}" if count else ""))
        self.button.props(f"color={'red-7' if count else 'grey-7'}")

    async def deploy(self) -> None:
        from sofiaflow.runtime.errors import FlowValidationError, StaleRevisionError
        from sofiaflow.runtime.security.permissions import PermissionDenied

        ws = self.ws
        if ws.read_only:
            ui.notify(f"{ws.user!r} has the role 'user', which only reads: no deploy", type="warning")
            return
        try:
            flows = ws.flows_to_deploy()
            result = await ws.runtime.deploy(flows, self.mode, rev=ws.doc.deployed_rev or None, user=ws.user)
        except PermissionDenied as exc:
            ui.notify(f"Deploy refused: {exc}", type="negative", multi_line=True)
            return
        except FlowValidationError as exc:
            ws.invalid = {p.node_id for p in exc.problems if p.node_id}
            ws.redraw()
            self.show_problems("Deploy refused", exc.problems)
            return
        except StaleRevisionError:
            self.show_conflict()
            return
        except Exception as exc:  # noqa: BLE001 - anything else the runtime says, shown as is
            ui.notify(f"Deploy failed: {type(exc).__name__}: {exc}", type="negative", multi_line=True)
            return
        ws.doc.mark_deployed(result.rev)
        ws.deployed_here = True
        ws.invalid = {p.node_id for p in result.problems if p.node_id}
        ws.statuses = ws.current_statuses()
        ws.clear_highlight()
        ws.redraw()
        failures = list(getattr(result, "start_failures", []) or [])
        self.show_start_failures(failures)
        if result.problems:
            self.show_problems("Deployed, with warnings", result.problems)
        elif not failures:
            ui.notify("Successfully deployed", type="positive", position="top")

    def show_start_failures(self, failures: list[Any]) -> None:
        """A warning that stays until closed: each node that failed to start, its error; a click reveals it."""
        if self.failure_panel is not None:
            self.failure_panel.delete()
            self.failure_panel = None
        if not failures:
            return
        ids = [f.node_id for f in failures if f.node_id]
        with self.button.client.layout:
            with (
                ui.card()
                .classes(
                    "fixed top-24 left-1/2 -translate-x-1/2 z-[6000] w-[460px] max-w-[90vw] bg-orange-50 border-l-4 border-orange-500"
                )
                .props("role=alert aria-live=assertive")
            ) as panel:
                with ui.row().classes("w-full items-center no-wrap gap-2"):
                    ui.icon("warning", color="orange-8")
                    ui.link(f"Deployed, but {len(failures)} node(s) failed to start").classes(
                        "font-semibold text-orange-900 cursor-pointer"
                    ).on("click", lambda: self.ws.reveal(ids))
                    ui.space()
                    ui.button(icon="close", on_click=lambda: self.show_start_failures([])).props(
                        'flat dense round size=sm aria-label="dismiss"'
                    )
                for failure in failures:
                    node = self.ws.doc.get(failure.node_id) if failure.node_id else None
                    name = (node or {}).get("name") or failure.node_id or "?"
                    label = f"{failure.node_type or (node or {}).get('type', '')} {name!r}: {failure.message}"
                    ui.link(label).classes("text-sm text-gray-800 cursor-pointer break-words").on(
                        "click", lambda _e, i=failure.node_id: self.ws.reveal([i])
                    )
        self.failure_panel = panel

    def show_problems(self, title: str, problems: list[Any]) -> None:
        with ui.dialog() as dialog, ui.card().classes("min-w-[480px]").props(testid("deploy-problems")):
            ui.label(f"{title}: {len(problems)} problem(s)").classes("text-lg font-semibold")
            for problem in problems:
                node = self.ws.doc.get(problem.node_id) if problem.node_id else None
                name = (node or {}).get("name") or problem.node_type or problem.node_id or "flows"
                field = f" · {problem.field}" if problem.field else ""
                with ui.row().classes("items-start w-full no-wrap gap-2"):
                    icon = "error" if problem.severity == "error" else "warning"
                    ui.icon(icon, color="red" if icon == "error" else "orange")
                    with ui.column().classes("gap-0"):
                        if node is not None:
                            ui.link(f"{name}{field}").classes("font-medium cursor-pointer").on(
                                "click", lambda _e, i=problem.node_id: (dialog.close(), self.ws.focus(i))
                            )
                        else:
                            ui.label(f"{name}{field}").classes("font-medium")
                        ui.label(problem.message).classes("text-sm text-gray-700")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    def show_conflict(self) -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label("The flows were changed by someone else since you loaded them.")
            with ui.row():
                ui.button("Load theirs (drop my changes)", on_click=lambda: (self._reload(), dialog.close()))
                ui.button("Overwrite with mine", on_click=lambda: (self._overwrite(), dialog.close()))
                ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.open()

    def _reload(self) -> None:
        self.ws.doc.replace_all(self.ws.visible_flows(), self.ws.runtime.rev)
        self.ws.redraw()

    def _overwrite(self) -> None:
        self.ws.doc.deployed_rev = self.ws.runtime.rev
        ui.timer(0.01, self.deploy, once=True)
