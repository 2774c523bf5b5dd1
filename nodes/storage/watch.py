"""watch: a message for every change to files or folders, as Node-RED's 23-watch.js (node-watch).

Changes come from the `watchfiles` library (inotify, FSEvents, ReadDirectoryChangesW; polling where none
exists). Watched names are confined to the files folder (see confine.py) when the node starts, and every
change is checked again: a change seen through a symlink that leads outside the folder is never reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from typing import Any

import watchfiles
from pydantic import Field

from sofiaflow.nodes.jsvalues import js_json_stringify
from sofiaflow.nodes.storage import confine
from sofiaflow.runtime.api import Node, NodeConfig, NodeError, NRBool

DEBOUNCE_MS = 50
"""Changes seen within this many milliseconds are reported together (each still as its own message)."""

_STOP_TIMEOUT = 5.0


class WatchConfig(NodeConfig):
    files: str = Field("", title="Files", description="Files or directories to watch, separated by commas.")
    recursive: NRBool = Field(False, title="Watch sub-directories recursively")


def kind(mode: int) -> str:
    """Node-RED's msg.type for a stat mode."""
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISBLK, "blockdevice"),
        (stat.S_ISCHR, "characterdevice"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISDIR, "directory"),
    ):
        if test(mode):
            return name
    return "n/a"


class WatchNode(Node[WatchConfig]):
    type = "watch"
    category = "storage"
    color = "BurlyWood"
    inputs = 0
    is_source = True
    Config = WatchConfig
    help = """Watches files and folders and sends a message whenever one changes.

**Outputs**: `payload` and `filename`: the changed path (the watched name, joined with the path
below it for a change inside a watched folder); `file`: its last component; `topic`: the watched
name (a JSON list of names when several are watched); `event`: `update` (created or changed) or
`remove`; `type`: `file`, `directory`, ... or `none` when it no longer exists; `size` for files.

**Details**: *File(s)*: a comma-separated list of files and folders, relative to the files folder
(setting `filesDir` / `SOFIAFLOW_FILES_DIR`, by default `files` in the data dir); names leading
outside it refuse the deploy. *Recursive* also watches sub-folders. A watched name that does not
exist when the node starts is reported as an error."""

    def setup(self) -> None:
        self._names = [name.strip() for name in (self.config.files or "").split(",")]
        self._topic = self._names[0] if len(self._names) == 1 else js_json_stringify(self._names)
        if not any(self._names):
            raise NodeError("watch: no file or folder to watch (files is empty)")
        self._root = confine.files_root(self)
        try:
            self._targets = {confine.resolve(self._root, name): name for name in self._names}
        except confine.PathRefused as err:
            raise NodeError(f"watch: {err}") from None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self, removed: bool) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._task, _STOP_TIMEOUT)
            self._task = None

    async def _run(self) -> None:
        try:
            async for changes in watchfiles.awatch(
                *self._targets,
                watch_filter=None,
                debounce=DEBOUNCE_MS,
                stop_event=self._stop,
                recursive=self.config.recursive,
            ):
                for change, path in sorted(changes, key=lambda c: (c[1], c[0].value)):
                    msg = self._message(change, path)
                    if msg is not None:
                        self.send(msg)
        except (OSError, RuntimeError) as err:
            self.status("red", "ring", "error")
            self.error(NodeError(f"watch: cannot watch {self._topic}: {err}"), {"payload": ""})

    def _message(self, change: watchfiles.Change, path: str) -> dict[str, Any] | None:
        real = os.path.realpath(path)
        if not confine.inside(self._root, real):
            return None
        shown = self._shown(path)
        msg: dict[str, Any] = {
            "payload": shown,
            "topic": self._topic,
            "file": os.path.basename(shown),
            "filename": shown,
            "event": "remove" if change == watchfiles.Change.deleted else "update",
        }
        try:
            info = os.stat(real)
        except OSError:
            msg["type"] = "none"
            return msg
        msg["type"] = kind(info.st_mode)
        if msg["type"] == "file":
            msg["size"] = info.st_size
        return msg

    def _shown(self, path: str) -> str:
        """The changed path as the flow names it: the watched name, joined with the part below it."""
        for watched, name in self._targets.items():
            if path == watched:
                return name
            if path.startswith(watched.rstrip(os.sep) + os.sep):
                return os.path.join(name, os.path.relpath(path, watched))
        return path
