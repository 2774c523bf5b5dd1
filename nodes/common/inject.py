"""inject: starts a flow with a message built from `props`, by hand, once, on an interval or a cron (20-inject.js).

The editor's button (and `POST /inject/:id`) calls `trigger()`; a request body holding
`__user_inject_props__` replaces the configured properties for that one message, as Node-RED's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from pydantic import Field

from sofiaflow.nodes.jsvalues import iso_date, js_number_string
from sofiaflow.runtime.api import (
    FIRING_SLOTS,
    UNDEFINED,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    NRFloat,
    SofiaflowError,
    compile_expression,
    evaluate_jsonata,
    new_message,
    props,
    typed_getter,
)

MAX_REPEAT = 2147483
"""Seconds; Node-RED refuses longer intervals (setInterval's 32-bit millisecond limit)."""


class InjectConfig(NodeConfig):
    props: list[dict[str, Any]] = [{"p": "payload"}, {"p": "topic", "vt": "str"}]
    repeat: NRFloat = Field(None, title="Repeat every (seconds)", description="Blank: no repeat.")
    crontab: str | None = Field(
        "",
        title="Repeat on a schedule (cron)",
        description="e.g. 0 8 * * 1-5 for 08:00 on weekdays; blank: none.",
    )
    once: NRBool = Field(False, title="Inject once after the deploy")
    onceDelay: NRFloat = Field(0.1, title="After (seconds)", json_schema_extra={"x-show-if": {"once": True}})
    topic: Any = ""
    payload: Any = ""
    payloadType: str | None = "date"


class InjectNode(Node[InjectConfig]):
    type = "inject"
    category = "common"
    color = "#a6bbcf"
    inputs = 0
    outputs = 1
    is_source = True
    Config = InjectConfig
    help = (
        "Injects a message built from its properties (payload, topic, ...) when its button is pressed, "
        "once after deploy, every `repeat` seconds or on a `crontab` schedule."
    )

    def setup(self) -> None:
        cfg = self.config
        compiled = (_compile(self, p, f"props[{i}]") for i, p in enumerate(self._effective_props()))
        self._props = [c for c in compiled if c is not None]
        repeat = cfg.repeat
        if repeat is not None and repeat > MAX_REPEAT:
            raise NodeError(
                f"repeat: Interval too large ({js_number_string(repeat)} s; at most {MAX_REPEAT} s)"
            )
        self._repeat = repeat if repeat and repeat > 0 else None
        self._cron: str | None = None
        self._cron_seconds = False
        crontab = (cfg.crontab or "").strip()
        if self._repeat is None and crontab:
            fields = len(crontab.split())
            if fields not in (5, 6):
                raise NodeError(
                    f"crontab: {crontab!r} needs 5 fields (or 6 with seconds first), not {fields}"
                )
            self._cron_seconds = fields == 6
            try:
                croniter(
                    crontab, datetime.now().astimezone(), second_at_beginning=self._cron_seconds
                ).get_next(float)
            except (ValueError, KeyError, TypeError) as exc:
                raise NodeError(f"crontab: invalid expression {crontab!r}: {exc}") from None
            self._cron = crontab
        self._once_delay = cfg.onceDelay or 0.1
        self._timer: Any = None
        self._due = 0.0

    def _effective_props(self) -> list[dict[str, Any]]:
        """`props`, with the legacy `payload`/`payloadType`/`topic` filling entries that lack a value."""
        cfg = self.config
        out = []
        for prop in cfg.props or []:
            prop = dict(prop) if isinstance(prop, dict) else {}
            if prop.get("p") == "payload" and "v" not in prop:
                prop["v"], prop["vt"] = cfg.payload, cfg.payloadType
            elif prop.get("p") == "topic" and prop.get("vt") == "str" and "v" not in prop:
                prop["v"] = cfg.topic
            out.append(prop)
        return out

    # -- timers --
    async def start(self) -> None:
        try:  # in a cluster, each scheduled firing runs on the one worker that claims its slot
            self._slots: Any = self.service(FIRING_SLOTS)
        except NodeError:
            self._slots = None
        if self.config.once:
            self._due = self.now() + self._once_delay
            self._timer = self.call_later(self._once_delay, self._fire_once)
        else:
            self._arm(self.now())

    def _scheduled(self, due: float, period: float | None) -> None:
        """A scheduled firing (`due` 0: the one after deploy): here, or where the cluster's slot is claimed."""
        if self._slots is None:
            self.trigger()
        else:
            self._slots.fire(self.id, due, period, self.trigger)

    def _fire_once(self) -> None:
        self._timer = None
        self._scheduled(0.0, None)
        self._arm(max(self.now(), self._due))

    def _arm(self, base: float) -> None:
        if self._repeat is not None:
            self._due = base + self._repeat
            if self._due < self.now():  # the loop was held up: skip the missed ticks, as setInterval does
                self._due = self.now() + self._repeat
        elif self._cron is not None:
            start = datetime.fromtimestamp(base).astimezone()
            self._due = croniter(self._cron, start, second_at_beginning=self._cron_seconds).get_next(float)
        else:
            return
        self._timer = self.call_later(self._due - self.now(), self._tick)

    def _tick(self) -> None:
        self._timer = None
        due = self._due
        self._scheduled(due, self._repeat)
        self._arm(max(due, self.now()) if self._cron is not None else due)

    async def close(self, removed: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- injecting --
    def trigger(self, overrides: dict[str, Any] | list[dict[str, Any]] | None = None) -> Msg | None:
        """Inject one message now; returns it, or None when a property failed (reported as an error).

        `overrides` is the body of `POST /inject/:id`: when it holds `__user_inject_props__` (a list of
        `{p, v, vt}`), those properties replace the configured ones and the rest of the body starts
        the message, as Node-RED's `node.receive(req.body)`. A bare list is taken as the props.
        """
        if self._closed:
            return None
        plan = self._props
        msg = new_message()
        if isinstance(overrides, list):
            plan = [
                c for i, p in enumerate(overrides) if (c := _compile(self, p, f"props[{i}]", lenient=True))
            ]
        elif isinstance(overrides, dict) and isinstance(overrides.get("__user_inject_props__"), list):
            user = overrides["__user_inject_props__"]
            msg.update((k, v) for k, v in overrides.items() if k != "__user_inject_props__")
            plan = [c for i, p in enumerate(user) if (c := _compile(self, p, f"props[{i}]", lenient=True))]
        errors: list[str] = []
        for path, getter in plan:
            if isinstance(getter, str):  # a property that failed to compile (user-supplied)
                errors.append(getter)
                continue
            try:
                value = getter(msg)
                if value is UNDEFINED:  # as setMessageProperty: parents made, the property left out
                    props.set_path(msg, path, None)
                    props.delete_path(msg, path)
                else:
                    props.set_path(msg, path, value)
            except Exception as exc:  # noqa: BLE001 - Node-RED collects every property's error
                errors.append(str(exc) or type(exc).__name__)
        if errors:
            self.error(NodeError("; ".join(errors)), msg)
            return None
        self.send(msg)
        return msg


def _compile(node: InjectNode, prop: Any, where: str, lenient: bool = False) -> tuple | None:
    """(path, getter) for one `{p, v, vt}` entry; None to skip it. With `lenient`, errors become the getter text."""
    try:
        if not isinstance(prop, dict):
            raise NodeError(f"{where}: expected an object with p, v and vt, not {prop!r}")
        path = prop.get("p")
        if not path:
            return None
        path = str(path)
        if path.startswith("msg."):
            path = path[4:]
        try:
            props.parse_path(path)
        except props.PropertyPathError as exc:
            raise NodeError(f"{where}: {exc}") from None
        value = prop.get("v")
        value = "" if value is None else value
        vtype = prop.get("vt") or "str"
        return path, _getter(node, value, vtype, where)
    except _Skip:
        return None
    except NodeError as exc:
        if lenient:
            return ("", str(exc))
        raise


def _getter(node: InjectNode, value: Any, vtype: str, where: str) -> Any:
    if vtype == "jsonata":
        if not value:
            raise _Skip
        expr = str(value)
        try:
            compile_expression(expr)
        except NodeError as exc:
            raise NodeError(f"{where}: Invalid JSONata expression: {exc}") from None
        return lambda msg: evaluate_jsonata(expr, msg, node, undefined=UNDEFINED)
    if vtype in ("flow", "global"):  # a context key not set is undefined (a stored null reads the same)
        inner = typed_getter(node, value, vtype)
        return lambda msg: _undefined_if_none(inner(msg))
    if vtype == "date":
        fmt = "" if value is None else str(value)
        return lambda msg: _date(node, fmt)
    if vtype == "str":
        text = value if isinstance(value, str) else _js_text(value)
        return lambda msg: text
    if vtype == "num" and (value == "" or (isinstance(value, str) and not value.strip())):
        return lambda msg: 0  # Number("") is 0
    if vtype == "env":
        inner = typed_getter(node, value, "env")
        return lambda msg: _or_empty(inner(msg))
    try:
        return typed_getter(node, value, vtype)
    except NodeError as exc:
        raise NodeError(f"{where}: {exc}") from None


class _Skip(SofiaflowError):
    """An empty JSONata property: Node-RED leaves it out."""


def _undefined_if_none(value: Any) -> Any:
    return UNDEFINED if value is None else value


def _or_empty(value: Any) -> Any:
    return "" if value is None else value


def _js_text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number_string(value)
    return str(value)


def _date(node: Node, fmt: str) -> Any:
    """The `date` type on the runtime clock: ms timestamp, `iso`, `object` (a datetime) or a moment.js format."""
    now = node.now()
    if fmt == "":
        return int(now * 1000)
    if fmt in ("iso", "object"):
        stamp = datetime.fromtimestamp(now, tz=UTC)
        return stamp if fmt == "object" else iso_date(stamp)
    return moment_format(datetime.fromtimestamp(now).astimezone(), fmt)


_MOMENT_TOKENS = (
    "YYYY",
    "YY",
    "MMMM",
    "MMM",
    "MM",
    "M",
    "DDDD",
    "DD",
    "Do",
    "D",
    "dddd",
    "ddd",
    "dd",
    "d",
    "HH",
    "H",
    "hh",
    "h",
    "mm",
    "m",
    "ss",
    "s",
    "SSS",
    "SS",
    "S",
    "A",
    "a",
    "ZZ",
    "Z",
    "X",
    "x",
    "E",
    "e",
)


def moment_format(dt: datetime, fmt: str) -> str:
    """`moment().format(fmt)` for the common tokens; `[text]` is copied as is."""
    out: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] == "[":
            end = fmt.find("]", i)
            if end > 0:
                out.append(fmt[i + 1 : end])
                i = end + 1
                continue
        for token in _MOMENT_TOKENS:
            if fmt.startswith(token, i):
                out.append(_moment_token(dt, token))
                i += len(token)
                break
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


def _moment_token(dt: datetime, token: str) -> str:
    offset = dt.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    hh, mm = divmod(abs(minutes), 60)
    day = dt.day
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    table = {
        "YYYY": f"{dt.year:04d}",
        "YY": f"{dt.year % 100:02d}",
        "MMMM": dt.strftime("%B"),
        "MMM": dt.strftime("%b"),
        "MM": f"{dt.month:02d}",
        "M": str(dt.month),
        "DDDD": f"{dt.timetuple().tm_yday:03d}",
        "DD": f"{day:02d}",
        "Do": f"{day}{suffix}",
        "D": str(day),
        "dddd": dt.strftime("%A"),
        "ddd": dt.strftime("%a"),
        "dd": dt.strftime("%a")[:2],
        "d": str((dt.weekday() + 1) % 7),
        "e": str((dt.weekday() + 1) % 7),
        "E": str(dt.isoweekday()),
        "HH": f"{dt.hour:02d}",
        "H": str(dt.hour),
        "hh": f"{(dt.hour % 12) or 12:02d}",
        "h": str((dt.hour % 12) or 12),
        "mm": f"{dt.minute:02d}",
        "m": str(dt.minute),
        "ss": f"{dt.second:02d}",
        "s": str(dt.second),
        "SSS": f"{dt.microsecond // 1000:03d}",
        "SS": f"{dt.microsecond // 10000:02d}",
        "S": str(dt.microsecond // 100000),
        "A": "AM" if dt.hour < 12 else "PM",
        "a": "am" if dt.hour < 12 else "pm",
        "ZZ": f"{sign}{hh:02d}{mm:02d}",
        "Z": f"{sign}{hh:02d}:{mm:02d}",
        "X": str(int(dt.timestamp())),
        "x": str(int(dt.timestamp() * 1000)),
    }
    return table[token]
