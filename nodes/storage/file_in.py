"""file in: reads a file into msg.payload, whole or as a sequence, as Node-RED's 10-file.js (`file in`).

Every name is confined to the files folder (see confine.py).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from pydantic import Field

from sofiaflow.nodes.storage import confine
from sofiaflow.nodes.storage.file_out import filename_source
from sofiaflow.nodes.storage.text import codec, decode
from sofiaflow.runtime.api import UNDEFINED, Msg, Node, NodeConfig, NodeError, NRBool, clone_message

CHUNK = 64 * 1024
"""Bytes per message in "stream" format: Node.js's file stream chunk (highWaterMark)."""

_FORMATS = ("utf8", "lines", "", "stream")


class FileInConfig(NodeConfig):
    filename: str = ""
    filenameType: str = "str"
    format: str = Field(
        "utf8",
        title="Output",
        json_schema_extra={
            "x-choices": [
                ["utf8", "a single utf8 string"],
                ["lines", "a msg per line"],
                ["", "a single Buffer object"],
                ["stream", "a stream of Buffers"],
            ]
        },
    )
    chunk: NRBool = Field(False, title="Chunk", json_schema_extra={"x-widget": "hidden"})
    sendError: NRBool | None = Field(
        None, title="Send a message on error (legacy)", json_schema_extra={"x-widget": "hidden"}
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
    allProps: NRBool = Field(
        False,
        title="Keep the message's other properties on each line",
        json_schema_extra={"x-show-if": {"format": ["lines", "stream"]}},
    )


class FileInNode(Node[FileInConfig]):
    type = "file in"
    category = "storage"
    label = "read file"
    color = "BurlyWood"
    Config = FileInConfig
    help = """Reads a file into `msg.payload`.

**Inputs**: `filename` when the file name is set to come from the message.

**Outputs**: *a single utf8 string* or *a single Buffer*: the message with the file's content in
`payload` and `filename`; *a msg per line*: one message per line (split on `\\n`) with
`parts` {index, count on the last, ch: "\\n", type: "string", id}; *a stream of Buffers*: 64 KiB
chunks with `parts` (type "buffer"). Sequence messages carry `topic` and `filename`, or all of
the input's properties with *include all existing properties*.

**Details**: names are relative to the files folder (setting `filesDir` / `SOFIAFLOW_FILES_DIR`,
by default `files` in the data dir); names leading outside it (`..`, other absolute paths, symlinks
pointing out) are refused with an error. A file that cannot be read is an error (to catch nodes);
with *send message on error* the message also goes on, without payload and with `msg.error`.
*Encoding* decodes text (`none`: UTF-8)."""

    def setup(self) -> None:
        if self.config.format not in _FORMATS:
            raise NodeError(
                f"file in: format must be one of utf8, lines, stream or '', not {self.config.format!r}"
            )
        self._source = filename_source(self.config.filename, self.config.filenameType)
        self._encoding = codec(self.config.encoding, "file in")
        self._send_error = True if self.config.sendError is None else self.config.sendError

    async def on_input(self, msg: Msg) -> None:
        raw = self.evaluate(self._source[0], self._source[1], msg)
        filename = "" if raw is None or raw is UNDEFINED else str(raw)
        for char in "\t\r\n":
            filename = filename.replace(char, "")
        if self._source[1] != "str":
            self.status("grey", "dot", filename)
        if filename == "":
            self.warn("No filename specified")
            return
        msg["filename"] = filename
        root = confine.files_root(self)
        real = confine.resolve(root, filename)
        try:
            chunks = await asyncio.to_thread(_read, root, real)
        except OSError as err:
            error = confine.describe(err, "open", filename)
            self.error(NodeError(error["message"]), msg)
            if self._send_error:
                out = clone_message(msg)
                out.pop("payload", None)
                out["error"] = error
                self.send(out)
            return
        fmt = self.config.format
        if fmt == "lines":
            self._send_lines(msg, decode(b"".join(chunks), self._encoding))
        elif fmt == "stream":
            self._send_chunks(msg, chunks)
        else:
            data = b"".join(chunks)
            msg["payload"] = decode(data, self._encoding) if fmt == "utf8" else data
            self.send(msg)

    def _part(self, msg: Msg, payload: Any, parts: dict[str, Any]) -> Msg:
        if self.config.allProps:
            out = clone_message(msg)
        else:
            out = {key: msg[key] for key in ("topic", "filename") if key in msg}
        out["payload"] = payload
        out["parts"] = {**parts, "id": msg.get("_msgid")}
        out.pop("_msgid", None)
        return out

    def _send_lines(self, msg: Msg, text: str) -> None:
        lines = text.split("\n")
        for index, line in enumerate(lines):
            parts = {"index": index, "ch": "\n", "type": "string"}
            if index == len(lines) - 1:
                parts["count"] = len(lines)
            self.send(self._part(msg, line, parts))

    def _send_chunks(self, msg: Msg, chunks: list[bytes]) -> None:
        for index, chunk in enumerate(chunks):
            parts: dict[str, Any] = {"index": index, "ch": "", "type": "buffer"}
            if len(chunk) < CHUNK:
                parts["count"] = index + 1
            self.send(self._part(msg, chunk, parts))
        if chunks and len(chunks[-1]) == CHUNK:
            # the last chunk was full: like Node-RED, close the sequence with a message without payload
            count = len(chunks)
            self.send(
                {
                    "parts": {
                        "index": count,
                        "count": count,
                        "ch": "",
                        "type": "buffer",
                        "id": msg.get("_msgid"),
                    }
                }
            )


def _read(root: str, real: str) -> list[bytes]:
    """The file's bytes in CHUNK-sized pieces."""
    chunks: list[bytes] = []
    with confine.open_file(root, real, os.O_RDONLY) as fd:
        while True:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                return chunks
            while len(chunk) < CHUNK:
                more = os.read(fd, CHUNK - len(chunk))
                if not more:
                    break
                chunk += more
            chunks.append(chunk)
