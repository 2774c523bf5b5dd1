"""file: writes or appends msg.payload to a file, or deletes it, as Node-RED's 10-file.js (`file`).

Every name is confined to the files folder (see confine.py). Messages are handled one at a time in arrival
order (the node's ordered worker), so writes to one file never interleave.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_json_stringify, js_number_string
from sofiaflow.nodes.storage import confine
from sofiaflow.nodes.storage.text import codec, encode
from sofiaflow.runtime.api import UNDEFINED, Msg, Node, NodeConfig, NodeError, NRBool

_MODES = ("false", "true", "delete")


class FileConfig(NodeConfig):
    filename: str = ""
    filenameType: str = "str"
    appendNewline: NRBool = Field(True, title="Add a newline (\\n) to each payload")
    createDir: NRBool = Field(False, title="Create the directory if it does not exist")
    overwriteFile: str | bool = Field(
        "false",
        title="Action",
        json_schema_extra={
            "x-choices": [["false", "append to file"], ["true", "overwrite file"], ["delete", "delete file"]]
        },
    )
    encoding: str = Field(
        "none",
        title="Encoding",
        json_schema_extra={
            "x-choices": [
                ["none", "default"],
                ["utf8", "UTF-8"],
                ["latin1", "Latin-1"],
                ["ascii", "ASCII"],
                ["utf16le", "UTF-16LE"],
                ["base64", "Base64"],
                ["hex", "hex"],
            ]
        },
    )


def filename_source(filename: str, filename_type: str | None) -> tuple[str, str]:
    """Node-RED's upgrade of flows saved before typed file names: no type and no name mean msg.filename."""
    if not filename_type:
        return ("filename", "msg") if filename == "" else (filename, "str")
    return filename, filename_type


def payload_text(data: Any) -> str | bytes:
    """msg.payload as Node-RED writes it: Buffers as they are, objects as JSON, numbers and booleans as text."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, (int, float)):
        return js_number_string(data)
    if isinstance(data, str):
        return data
    return js_json_stringify(data)


class FileNode(Node[FileConfig]):
    type = "file"
    category = "storage"
    label = "write file"
    color = "BurlyWood"
    Config = FileConfig
    help = """Writes `msg.payload` to a file, appends it, or deletes the file.

**Inputs**: `payload` (string, Buffer, object: written as JSON, number or boolean: as text);
`filename` when the file name is set to come from the message; `encoding` when set by msg.

**Outputs**: the message, with `msg.filename`, once written (or deleted).

**Details**: the file name may come from the config or from any typed input (msg, flow, env...).
Names are relative to the files folder (setting `filesDir` / `SOFIAFLOW_FILES_DIR`, by default
`files` in the data dir); names leading outside it (`..`, other absolute paths, symlinks pointing
out) are refused with an error. *Action*: append (the default), overwrite, or delete.
*Add newline* ends each string payload with `\\n` (except the last part of a string sequence).
*Create directory* makes missing folders on the way. *Encoding*: `none` (UTF-8), a codec name
(`latin1`, `utf16le`, `win1252`...) or `setbymsg` (msg.encoding)."""

    def setup(self) -> None:
        mode = str(self.config.overwriteFile).lower()
        if mode not in _MODES:
            raise NodeError(f"file: overwriteFile must be one of {', '.join(_MODES)}, not {mode!r}")
        self._mode = mode
        self._source = filename_source(self.config.filename, self.config.filenameType)
        self._encoding = (
            "setbymsg" if self.config.encoding == "setbymsg" else codec(self.config.encoding, "file")
        )

    async def on_input(self, msg: Msg) -> None:
        raw = self.evaluate(self._source[0], self._source[1], msg)
        filename = "" if raw is None or raw is UNDEFINED else str(raw)
        msg["filename"] = filename
        if self._source[1] != "str":
            self.status("grey", "dot", filename)
        if filename == "":
            self.warn("No filename specified")
            return
        root = confine.files_root(self)
        real = confine.resolve(root, filename)
        if self._mode == "delete":
            try:
                await asyncio.to_thread(confine.unlink, root, real)
            except OSError as err:
                raise NodeError(
                    "failed to delete file: Error: " + confine.describe(err, "unlink", filename)["message"]
                ) from err
            self.send(msg)
            return
        if msg.get("payload", UNDEFINED) is UNDEFINED:
            return
        data = self._bytes(msg)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if self._mode == "true" else os.O_APPEND)
        try:
            await asyncio.to_thread(self._write, root, real, flags, data)
        except OSError as err:
            action = "write" if self._mode == "true" else "append"
            raise NodeError(
                f"failed to {action} to file: Error: " + confine.describe(err, "open", filename)["message"]
            ) from err
        self.send(msg)

    def _bytes(self, msg: Msg) -> bytes:
        data = payload_text(msg["payload"])
        if isinstance(data, bytes):
            return data
        parts = msg.get("parts")
        last_of_string = (
            isinstance(parts, dict)
            and parts.get("type") == "string"
            and parts.get("count") is not None
            and parts.get("count") == (parts.get("index") or 0) + 1
        )
        if self.config.appendNewline and not last_of_string:
            data += "\n"
        name = self._encoding
        if name == "setbymsg":
            name = codec(msg.get("encoding") or "none", "file: msg.encoding")
        try:
            return encode(data, name)
        except ValueError as err:
            raise NodeError(f"file: payload cannot be encoded as {name}: {err}") from err

    def _write(self, root: str, real: str, flags: int, data: bytes) -> None:
        os.makedirs(root, exist_ok=True)
        with confine.open_file(root, real, flags, create_dirs=self.config.createDir) as fd:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
