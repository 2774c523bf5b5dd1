"""csv: converts between CSV text and objects, as Node-RED's 70-CSV.js in its RFC 4180 mode.

Text is read with Python's csv module (quotes doubled inside quoted fields, separators and line
breaks inside quotes, any of CR, LF and CRLF ending a row). Each row becomes an object keyed by the
columns template, the header row (`hdrin`) or `col1`, `col2`...; `multi: one` sends a message per
row with `msg.parts` like split, `mult` one message with the array. Multi-part input (lines from a
split node) is gathered the way Node-RED does: the header comes from the first part, `mult` sends
the array with the last part. Objects, arrays of objects and arrays of arrays become CSV text,
fields quoted only when they hold the separator, a quote or a line break.

A node stored without `spec: "rfc"` (Node-RED's legacy mode, flows from before 4.0) is run the same
way, with legacy's default row ending (LF instead of CRLF); legacy's parser quirks are not copied.

Where Node-RED differs: on Python < 3.12 the csv module cannot tell an empty quoted field (`""`,
Node-RED's empty string) from an empty unquoted one (its null), so both are null here.
"""

from __future__ import annotations

import csv
import io
import math
import re
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_json_stringify, js_number, js_string
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, clone_message

_NOT_NULL = getattr(csv, "QUOTE_NOTNULL", None)  # Python 3.12+: unquoted empty fields read as None
_NO_NUMBER = re.compile(r"^ *(\+|-0\d|0\d)")  # kept as text: `+1`, `007`, `-01`
_CSV_JS = "This node only handles CSV strings or js objects."
_BAD_TEMPLATE = "Malformed columns template."


class CsvConfig(NodeConfig):
    spec: str = Field("", title="Parser", json_schema_extra={"x-widget": "hidden"})
    sep: str = Field(
        ",",
        title="Separator",
        json_schema_extra={
            "x-choices": [
                [",", "comma"],
                ["\\t", "tab"],
                [" ", "space"],
                [";", "semicolon"],
                [":", "colon"],
                ["#", "hashtag"],
            ]
        },
    )
    hdrin: NRBool = Field(False, title="First row contains column names")
    hdrout: str | bool = Field(
        "none",
        title="Send column names",
        json_schema_extra={
            "x-choices": [["none", "never"], ["all", "always"], ["once", "once, then when msg.reset is set"]]
        },
    )
    multi: str = Field(
        "one",
        title="Output",
        json_schema_extra={"x-choices": [["one", "a message per row"], ["mult", "a single message (array)"]]},
    )
    ret: str = Field(
        "",
        title="Newline",
        json_schema_extra={
            "x-choices": [
                ["\\n", "Linux (\\n)"],
                ["\\r", "Mac (\\r)"],
                ["\\r\\n", "Windows (\\r\\n)"],
                ["", "default"],
            ]
        },
    )
    temp: str = Field(
        "", title="Columns", description="Column names separated by commas; blank: col1, col2, ..."
    )
    skip: str | int = Field("0", title="Skip first lines", json_schema_extra={"x-widget": "text"})
    strings: NRBool = Field(True, title="Parse numerical values")
    include_empty_strings: NRBool = Field(False, title="Include empty strings")
    include_null_values: NRBool = Field(False, title="Include null values")


def _unescape(text: str) -> str:
    return text.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")


def quote_cell(cell: str, sep: str, quoteables: tuple[str, ...] | None = None) -> str:
    """A field as RFC 4180 writes it: quoted when it holds a quote, the separator or a line break."""
    quoteables = quoteables or ('"', sep, "\r", "\n")
    if any(q in cell for q in quoteables):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def read_rows(text: str, sep: str, strict: bool = False) -> list[list[str | None]]:
    """The non-empty rows of CSV text; with Python 3.12+, unquoted empty fields are None."""
    options: dict[str, Any] = {"delimiter": sep, "quotechar": '"', "doublequote": True, "strict": strict}
    if _NOT_NULL is not None:
        options["quoting"] = _NOT_NULL
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), **options))
    except csv.Error as exc:
        raise NodeError(f"CSV: {exc}") from None
    return [[cell if cell != "" or _NOT_NULL is not None else None for cell in row] for row in rows if row]


def header_string(headers: list[str]) -> str:
    """msg.columns: the non-empty column names, quoted as needed, joined by commas."""
    return ",".join(quote_cell(h, ",") for h in headers if h)


def _number(cell: str) -> Any:
    if _NO_NUMBER.match(cell):
        return cell
    value = js_number(cell)
    if isinstance(value, float) and math.isnan(value):
        return cell
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _ensure_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if value is None or isinstance(value, (dict, list, tuple)):
        return js_json_stringify(value)
    return js_string(value)


class CsvNode(Node[CsvConfig]):
    type = "csv"
    category = "parser"
    color = "#DEBD5C"
    Config = CsvConfig
    help = (
        "Converts between CSV text (RFC 4180) and objects. **Text to objects**: each row becomes an "
        "object keyed by the columns template (`temp`, e.g. `a,b,c`), by the first row when `hdrin` "
        "is set, or `col1`, `col2`...; numbers are parsed unless `strings` is off; empty fields are "
        "left out unless `include_null_values` / `include_empty_strings`; `skip` drops leading lines. "
        "`multi: one` sends a message per row with `msg.parts`, `mult` one message with the array; "
        "multi-part input from a split node is handled. **Objects to text**: an object, an array of "
        "objects (columns from the template, `msg.columns` or the first object's keys) or an array of "
        "arrays, with a header line `none`, `all` or `once` (`msg.reset` sends it again), rows ending "
        "with `ret`. `msg.columns` carries the column names both ways."
    )

    def setup(self) -> None:
        cfg = self.config
        if cfg.multi not in ("one", "mult"):
            raise NodeError(f"multi must be 'one' or 'mult', not {cfg.multi!r}")
        self._sep = _unescape(cfg.sep or ",")
        if not 1 <= len(self._sep) <= 2:
            raise NodeError(f"sep must be one or two characters, not {cfg.sep!r}")
        default_ret = "\r\n" if cfg.spec == "rfc" else "\n"
        self._ret = (cfg.ret or default_ret).replace("\\n", "\n").replace("\\r", "\r")
        hdrout = cfg.hdrout
        self._hdrout = {False: "none", True: "all", "": "none"}.get(hdrout, hdrout)  # type: ignore[arg-type]
        if self._hdrout not in ("none", "all", "once"):
            raise NodeError(f"hdrout must be 'none', 'all' or 'once', not {cfg.hdrout!r}")
        self._hdrin = cfg.hdrin
        try:
            self._skip = int(cfg.skip or 0)
        except ValueError:
            raise NodeError(f"skip must be a whole number of lines, not {cfg.skip!r}") from None
        self._empty = cfg.include_empty_strings
        self._nulls = cfg.include_null_values
        self._base = self._columns(cfg.temp)
        self._template = list(self._base)
        self._hdr_sent = False
        self._warned = False
        self._store: list[dict[str, Any]] = []

    def _columns(self, text: str) -> list[str]:
        """A columns template (`a,"b,c",d`) as a list of names; [] for none."""
        if not text:
            return []
        try:
            rows = read_rows(text, ",", strict=True)
        except NodeError:
            self.status("red", "dot", _BAD_TEMPLATE)
            raise NodeError(f"temp: {_BAD_TEMPLATE}") from None
        if len(rows) != 1:
            raise NodeError(f"temp: {_BAD_TEMPLATE} (a template is one line)")
        names = [c or "" for c in rows[0]]
        return [] if names == [""] else names

    # ----- input --------------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        self.status({})
        if "reset" in msg:
            self._hdr_sent = False
        if "payload" not in msg:
            if "reset" not in msg:
                self.send(msg)
            return
        value = msg["payload"]
        if isinstance(value, str):
            self._from_text(msg, value)
        elif isinstance(value, (dict, list, tuple)):
            self._to_text(msg, value)
        else:
            self.status("red", "dot", _CSV_JS)
            raise NodeError(_CSV_JS)

    # ----- objects -> CSV text ------------------------------------------------------------------------
    def _to_text(self, msg: Msg, value: Any) -> None:
        rows = [value] if isinstance(value, dict) else list(value)
        arrays = bool(rows) and not isinstance(rows[0], dict)
        if arrays and not isinstance(rows[0], (list, tuple)):
            rows = [rows]
        parts = msg.get("parts")
        later_part = isinstance(parts, dict) and isinstance(parts.get("index"), int) and parts["index"] > 0
        if not (not self._base and later_part):
            self._template = list(self._base)
        lines: list[str] = []
        if self._hdrout != "none" and not self._hdr_sent:
            if not self._template:
                if "columns" in msg:
                    self._template = self._columns(msg.get("columns") or "")
                elif rows:
                    first = rows[0]
                    self._template = (
                        list(first) if isinstance(first, dict) else [str(i) for i in range(len(first))]
                    )
                else:
                    raise NodeError("CSV: no column names for the header line (empty array, no template)")
            lines.append(self._sep.join(quote_cell(h or "", self._sep) for h in self._template))
            if self._hdrout == "once":
                self._hdr_sent = True
        for row in rows:
            lines.append(self._array_line(row) if arrays else self._object_line(msg, row, rows[0]))
        msg["payload"] = self._ret.join(lines) + self._ret
        msg["columns"] = header_string(self._template)
        self.send(msg)

    def _array_line(self, row: Any) -> str:
        cells = list(row) if isinstance(row, (list, tuple)) else []
        count = len(self._template) if self._template else len(cells)
        out = []
        for t in range(count):
            if self._template and not self._template[t]:
                out.append("")
                continue
            cell = cells[t] if t < len(cells) else ""
            out.append(quote_cell(_ensure_string(cell), self._sep))
        return self._sep.join(out)

    def _object_line(self, msg: Msg, row: Any, first: Any) -> str:
        if not isinstance(row, dict):
            raise NodeError("CSV: every row of an array of objects must be an object")
        if not self._template and "columns" in msg:
            self._template = self._columns(msg.get("columns") or "")
        if self._template:
            return self._sep.join(
                quote_cell(_ensure_string(row.get(h, "")), self._sep) if h else "" for h in self._template
            )
        if not self._warned:
            self.warn("No columns template specified for object -> CSV.")
            self._warned = True
        self._template = list(row)
        cells = [
            quote_cell(_ensure_string(row[h]), self._sep)
            for h in first
            if h in row and not isinstance(row[h], (dict, list, tuple)) and row[h] is not None
        ]
        return self._sep.join(cells)

    # ----- CSV text -> objects ------------------------------------------------------------------------
    def _from_text(self, msg: Msg, text: str) -> None:
        parts = msg.get("parts") if isinstance(msg.get("parts"), dict) else None
        first_line, last, linecount = True, False, 0
        if parts is not None:
            index = int(parts.get("index") or 0)
            linecount = index
            first_line = not index > self._skip
            last = "count" in parts and index + 1 >= int(parts["count"])
        cursor = 0
        if self._skip > 0 and linecount < self._skip:
            while cursor < len(text) and first_line and linecount < self._skip:
                if text[cursor] in "\r\n":
                    linecount += 1
                cursor += 1
            if cursor >= len(text):
                return
        text = text[cursor:]
        breaks = sum(text.count(c) for c in "\r\n")
        if parts is not None and self.config.multi == "mult" and breaks > 1:
            first_line = True
        rows = read_rows(text, self._sep)
        if first_line and self._hdrin:
            self._template = [c or "" for c in rows[0]] if rows else []
            rows = rows[1:]
        headers = self._template or [f"col{i + 1}" for i in range(len(rows[0]) if rows else 0)]
        data = [obj for obj in (self._object(headers, row) for row in rows) if obj]
        columns = header_string(headers)
        if self.config.multi == "mult":
            if parts is not None and breaks <= 1:
                self._store.extend(data)
                if int(parts.get("index") or 0) + 1 == parts.get("count"):
                    msg["payload"], msg["columns"] = self._store, columns
                    del msg["parts"]
                    self._store = []
                    self.send(msg)
            else:
                msg["payload"], msg["columns"] = data, columns
                self.send(msg)
            return
        for index, obj in enumerate(data):
            out = clone_message(msg)
            out["columns"], out["payload"] = columns, obj
            if parts is None:
                out["parts"] = {"id": msg["_msgid"], "index": index, "count": len(data)}
            else:
                shift = self._skip + (1 if self._hdrin else 0)
                out["parts"]["index"] -= shift
                out["parts"]["count"] = out["parts"].get("count", 0) - shift
            if last:
                out["complete"] = True
            self.send(out)
        if parts is not None and last and not data:
            self.send({"complete": True})

    def _object(self, headers: list[str], row: list[str | None]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for j, name in enumerate(headers):
            if not name:
                continue
            cell = row[j] if j < len(row) else None
            if cell is None:
                if not self._nulls:
                    continue
            elif cell == "":
                if not self._empty:
                    continue
            elif self.config.strings:
                cell = _number(cell)
            obj[name] = cell
        return obj
