"""The flows both runtimes run: one tab per case, `http in` (POST /diff/<case>) -> nodes -> `http response`.

A case's nodes use short ids; `build()` prefixes them with the case name, and the id "res" is
the case's http response node (`Case.response` sets its status and headers). Each request body
becomes msg.payload; the answer compared is the response (status, the headers the flow decides,
body with exact JSON types). Requests are sent as `{"v": value}` and a change node first sets
msg.payload to the value. A case with `differs` documents an answer that differs on purpose:
each side must give its own documented answer.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Differs:
    """A documented difference: the answer (status, body value; ... for any body) each side must give per request."""

    why: str
    node_red: list[tuple[int, object]]
    sofiaflow: list[tuple[int, object]]


@dataclass
class Case:
    name: str
    nodes: list[dict]
    requests: list = field(default_factory=list)
    pause: float = 0.0
    """Seconds between requests (for nodes that keep state for a while, such as trigger)."""
    query: str = ""
    """Query string added to every request's URL."""
    response: dict = field(default_factory=dict)
    """Properties of the case's `http response` node (statusCode, headers)."""
    method: str = "POST"
    differs: Differs | None = None
    """Set when the answers differ on purpose (README); the test then checks each side's documented answer."""
    env: list = field(default_factory=list)
    """The case tab's env entries ({name, value, type}), for `${VAR}` properties and env look-ups."""


def n(id_: str, type_: str, wires: list[list[str]] | None = None, **props) -> dict:
    return {"id": id_, "type": type_, "wires": wires if wires is not None else [["res"]], **props}


def plain_delay(timeout: str, units: str) -> dict:
    """Delay node "a" (wired to "b") holding each message `timeout` `units`, Node-RED's other fields at their
    defaults."""
    return n(
        "a",
        "delay",
        [["b"]],
        pauseType="delay",
        timeout=timeout,
        timeoutUnits=units,
        rate="1",
        nbRateUnits="1",
        rateUnits="second",
        randomFirst="1",
        randomLast="5",
        randomUnits="seconds",
        drop=False,
        allowrate=False,
        outputs=1,
    )


def change(id_: str, *rules: dict, wires=None) -> dict:
    return n(
        id_, "change", wires, rules=list(rules), action="", property="", **{"from": ""}, to="", reg=False
    )


def set_(prop: str, to, tot: str = "str", pt: str = "msg") -> dict:
    return {"t": "set", "p": prop, "pt": pt, "to": to, "tot": tot}


def fn(id_: str, body: str, outputs: int = 1, wires=None, **props) -> dict:
    defaults = {"timeout": 0, "noerr": 0, "initialize": "", "finalize": "", "libs": []}
    return n(
        id_,
        "function",
        wires if wires is not None else [["res"]] * outputs,
        func=body,
        outputs=outputs,
        **{**defaults, **props},
    )


def join(id_: str, wires=None, **props) -> dict:
    base = {
        "mode": "auto",
        "build": "object",
        "property": "payload",
        "propertyType": "msg",
        "key": "topic",
        "joiner": "\\n",
        "joinerType": "str",
        "useparts": False,
        "accumulate": False,
        "timeout": "",
        "count": "",
        "reduceRight": False,
        "reduceExp": "",
        "reduceInit": "",
        "reduceInitType": "",
        "reduceFixup": "",
    }
    return n(id_, "join", wires, **{**base, **props})


def split(id_: str, wires) -> dict:
    return n(
        id_,
        "split",
        wires,
        splt="\\n",
        spltType="str",
        arraySplt=1,
        arraySpltType="len",
        stream=False,
        addname="",
        property="payload",
    )


def file_write(id_: str, filename: str, overwrite: str, wires=None, **props) -> dict:
    base = {"filenameType": "str", "appendNewline": True, "createDir": False, "encoding": "none"}
    return n(id_, "file", wires, filename=filename, overwriteFile=overwrite, **{**base, **props})


def file_read(id_: str, filename: str, fmt: str, wires=None, **props) -> dict:
    base = {"filenameType": "str", "chunk": False, "sendError": False, "encoding": "none", "allProps": False}
    return n(id_, "file in", wires, filename=filename, format=fmt, **{**base, **props})


def catch_to_response(id_: str = "catch") -> list[dict]:
    return [
        n(id_, "catch", [["errtext"]], scope=None, uncaught=False),
        change("errtext", set_("payload", "error.message", "msg"), set_("statusCode", "500", "num")),
    ]


CASES = [
    Case("ping", [change("a", set_("payload", "pong"))], [], method="GET"),
    Case(
        "httpin",
        [
            fn(
                "a",
                "msg.payload = {keys: Object.keys(msg).sort(), body: msg.payload,"
                " method: msg.req.method, type: typeof msg.res}; return msg;",
            )
        ],
        [{"x": 1}, [1, 2]],
    ),
    Case(
        "change",
        [
            change(
                "a",
                set_("payload.total", "$sum(payload.values)", "jsonata"),
                set_("payload.name", "$uppercase(payload.name)", "jsonata"),
                {
                    "t": "change",
                    "p": "payload.text",
                    "pt": "msg",
                    "from": "cat",
                    "fromt": "str",
                    "to": "dog",
                    "tot": "str",
                },
                {"t": "delete", "p": "payload.secret", "pt": "msg"},
                {"t": "move", "p": "payload.old", "pt": "msg", "to": "payload.new", "tot": "msg"},
                set_("payload.flag", "true", "bool"),
                set_("payload.num", "1.5", "num"),
                set_("payload.obj", '{"a":[1,2]}', "json"),
            )
        ],
        [
            {"values": [1, 2, 3.5], "name": "ab", "text": "cat and cat", "secret": 1, "old": "x"},
            {"values": [], "name": "", "text": "", "old": None},
        ],
    ),
    Case(
        "jsonata",
        [
            change(
                "a",
                set_(
                    "payload",
                    '{"doubled": $map(payload, function($v){$v*2}),'
                    ' "big": payload[$ > 1], "count": $count(payload),'
                    ' "joined": $join($map(payload, $string), "-"), "avg": $average(payload),'
                    ' "sorted": $sort(payload), "str": $string(payload)}',
                    "jsonata",
                ),
            )
        ],
        [[3, 1, 2], [1.5, 0.25]],
    ),
    Case(
        "switch",
        [
            n(
                "a",
                "switch",
                [["r1"], ["r2"], ["r3"]],
                property="payload.v",
                propertyType="msg",
                rules=[
                    {"t": "gt", "v": "10", "vt": "num"},
                    {"t": "regex", "v": "^ab", "vt": "str", "case": False},
                    {"t": "else"},
                ],
                checkall="false",
                repair=False,
                outputs=3,
            ),
            change("r1", set_("payload", "big")),
            change("r2", set_("payload", "ab")),
            change("r3", set_("payload", "else")),
        ],
        [{"v": 11}, {"v": "abc"}, {"v": 5}, {"v": "10"}, {"v": "ABx"}],
    ),
    Case(
        "template",
        [
            n(
                "a",
                "template",
                field="payload",
                fieldType="msg",
                format="handlebars",
                syntax="mustache",
                output="str",
                template="Hi {{payload.name}}! {{#payload.items}}<{{.}}>{{/payload.items}} "
                "{{^payload.none}}none{{/payload.none}} {{{payload.html}}} {{payload.html}}",
            )
        ],
        [{"name": "Ann", "items": [1, 2], "html": "<b>&</b>"}, {"name": "", "items": []}],
    ),
    Case(
        "template-json",
        [
            n(
                "a",
                "template",
                field="payload",
                fieldType="msg",
                format="json",
                syntax="mustache",
                output="json",
                template='{"n": {{payload.n}}, "s": "{{payload.s}}"}',
            )
        ],
        [{"n": 3, "s": "x"}],
    ),
    Case(
        "change-jsonata-undefined",
        [
            change(
                "a",
                set_("payload.total", "$sum(payload.nothing)", "jsonata"),
                set_("payload.gone", "payload.missing.deep", "jsonata"),
                set_("payload.none", "null", "jsonata"),
                set_("k", "1", "num", "flow"),
                set_("k", "$sum(payload.nothing)", "jsonata", "flow"),
                set_("payload.k", "k", "flow"),
                set_("payload.obj", '{"x": nothing, "y": null, "z": [null, payload.nothing]}', "jsonata"),
            )
        ],
        [{"total": 5, "gone": 1, "a": 1, "k": 2}, {"none": 7}],
    ),
    Case(
        "switch-jsonata-undefined",
        [
            n(
                "a",
                "switch",
                [["r1"], ["r2"], ["r3"], ["r4"]],
                property="payload.x",
                propertyType="jsonata",
                rules=[
                    {"t": "lt", "v": "$sum(payload.nothing)", "vt": "jsonata"},
                    {"t": "istype", "v": "undefined", "vt": "undefined"},
                    {"t": "istype", "v": "null", "vt": "null"},
                    {"t": "else"},
                ],
                checkall="false",
                repair=False,
                outputs=4,
            ),
            change("r1", set_("payload", "lt undefined")),
            change("r2", set_("payload", "undefined")),
            change("r3", set_("payload", "null")),
            change("r4", set_("payload", "else")),
        ],
        [{}, {"x": None}, {"x": -1}],
    ),
    Case(
        "template-jsonata-undefined",
        [
            change(
                "a",
                set_(
                    "payload",
                    '{"items": [{"label": "a", "name": payload.nothing}, {"label": "b", "name": null}]}',
                    "jsonata",
                ),
                set_("name", "outer"),
                set_("gone", "$sum(payload.nothing)", "jsonata"),
                wires=[["b"]],
            ),
            n(
                "b",
                "template",
                field="payload",
                fieldType="msg",
                format="handlebars",
                syntax="mustache",
                output="str",
                template="{{#payload.items}}{{label}}={{name}};{{/payload.items}} [{{gone}}]{{^gone}}gone{{/gone}}",
            ),
        ],
        [{}],
    ),
    Case(
        "range",
        [
            n(
                "a",
                "range",
                minin="0",
                maxin="10",
                minout="0",
                maxout="100",
                action="scale",
                round=False,
                property="payload",
            )
        ],
        [5, 12.5, -1, "7"],
    ),
    Case(
        "range-clamp",
        [
            n(
                "a",
                "range",
                minin="0",
                maxin="10",
                minout="0",
                maxout="1",
                action="clamp",
                round=True,
                property="payload",
            )
        ],
        [5, 12.5, -1],
    ),
    Case(
        "split-join",
        [
            split("a", [["b"]]),
            change("b", set_("payload", "payload * 2", "jsonata"), wires=[["c"]]),
            join("c"),
        ],
        [[1, 2, 3], [5]],
    ),
    Case("split-string-join", [split("a", [["c"]]), join("c")], ["a\nb\nc"]),
    Case("split-object-join", [split("a", [["c"]]), join("c")], [{"x": 1, "y": "z"}]),
    Case(
        "join-manual",
        [split("a", [["c"]]), join("c", mode="custom", build="array", count="3", timeout="")],
        [[1, 2, 3]],
    ),
    Case(
        "sort",
        [
            split("a", [["b"]]),
            n(
                "b",
                "sort",
                [["c"]],
                order="descending",
                as_num=True,
                target="payload",
                targetType="seq",
                msgKey="payload",
                msgKeyType="elem",
                seqKey="payload",
                seqKeyType="msg",
            ),
            join("c"),
        ],
        [[3, 10, 1, 2], ["b", "a", "c"]],
    ),
    Case(
        "sort-array",
        [
            n(
                "a",
                "sort",
                order="ascending",
                as_num=False,
                target="payload",
                targetType="msg",
                msgKey="payload",
                msgKeyType="elem",
                seqKey="payload",
                seqKeyType="msg",
            )
        ],
        [[3, 10, 1, 2], ["b", "a", "C"]],
    ),
    # batch by count: each message out carries its payload and its place in its new sequence; the join waits
    # for exactly as many messages as the batches hold (a count too high would leave both sides silent)
    *(
        Case(
            name,
            [
                split("a", [["b"]]),
                n(
                    "b",
                    "batch",
                    [["c"]],
                    mode="count",
                    count=count,
                    overlap=overlap,
                    interval=10,
                    allowEmptySequence=False,
                    honourParts=False,
                    topics=[],
                ),
                change(
                    "c",
                    set_("payload", '{"p": payload, "i": parts.index, "n": parts.count}', "jsonata"),
                    wires=[["d"]],
                ),
                join("d", mode="custom", build="array", count=str(out), timeout=""),
            ],
            [items],
        )
        for name, count, overlap, items, out in (
            ("batch", 2, 0, [1, "two", {"t": 3}, None, 5], 4),
            ("batch-overlap", 3, 1, [1, 2, 3, 4, 5, 6], 6),
        )
    ),
    Case(
        "rbe",
        [
            split("a", [["b"]]),
            n(
                "b",
                "rbe",
                [["c"]],
                func="rbe",
                gap="",
                start="",
                inout="out",
                septopics=True,
                property="payload",
                topi="topic",
            ),
            join("c", mode="custom", build="array", count="3", timeout=""),
        ],
        [[1, 1, 2, 2, 3]],
    ),
    Case(
        "deadband",
        [
            split("a", [["b"]]),
            n(
                "b",
                "rbe",
                [["c"]],
                func="deadband",
                gap="5",
                start="",
                inout="out",
                septopics=True,
                property="payload",
                topi="topic",
            ),
            join("c", mode="custom", build="array", count="3", timeout=""),
        ],
        [[0, 3, 6, 7, 20, 26]],
    ),
    Case(
        "delay",
        [
            n(
                "a",
                "delay",
                pauseType="delay",
                timeout="30",
                timeoutUnits="milliseconds",
                rate="1",
                nbRateUnits="1",
                rateUnits="second",
                randomFirst="1",
                randomLast="5",
                randomUnits="seconds",
                drop=False,
                allowrate=False,
                outputs=1,
            )
        ],
        [{"d": 1}],
    ),
    Case(
        "trigger-first",
        [
            n(
                "a",
                "trigger",
                op1="started",
                op2="0",
                op1type="str",
                op2type="nul",
                duration="20",
                extend=False,
                overrideDelay=False,
                units="ms",
                reset="",
                bytopic="all",
                topic="topic",
                outputs=1,
            )
        ],
        [1, 2],
        pause=0.1,
    ),
    Case(
        "trigger-second",
        [
            n(
                "a",
                "trigger",
                op1="",
                op2="",
                op1type="nul",
                op2type="payl",
                duration="20",
                extend=False,
                overrideDelay=False,
                units="ms",
                reset="",
                bytopic="all",
                topic="topic",
                outputs=1,
            )
        ],
        [{"p": 1}],
        pause=0.1,
    ),
    Case(
        "link",
        [
            n("a", "link out", [], mode="link", links=["b"]),
            n("b", "link in", [["c"]], links=["a"]),
            change("c", set_("payload", "linked")),
        ],
        [1],
    ),
    Case(
        "link-call",
        [
            n("a", "link call", [["res"]], links=["b"], linkType="static", timeout="5"),
            n("b", "link in", [["c"]], links=[]),
            change("c", set_("payload", "payload & '!'", "jsonata"), wires=[["d"]]),
            n("d", "link out", [], mode="return", links=[]),
        ],
        ["called"],
    ),
    Case("catch", [change("a", set_("payload", "$error('nope')", "jsonata"))] + catch_to_response(), [1]),
    # ----- JavaScript function nodes ----------------------------------------------------------------
    Case(
        "js-basic",
        [
            fn(
                "a",
                "msg.payload = {n: msg.payload.n * 2, t: typeof msg.payload, s: String(msg.payload.n),"
                " f: 0.1 + 0.2, big: 1e21, neg: -0, arr: [1, 'a', null, true], date: new Date(0),"
                " undef: undefined, nested: {k: [{}]}}; return msg;",
            )
        ],
        [{"n": 2}, {"n": 1.5}],
    ),
    Case(
        "js-context",
        [
            fn(
                "a",
                "var c = (context.get('c') || 0) + 1; context.set('c', c);"
                "var f = flow.get('f') || []; f.push(msg.payload); flow.set('f', f);"
                "global.set('g', c * 10);"
                "msg.payload = {c: c, f: flow.get('f'), g: global.get('g'), keys: context.keys()};"
                "return msg;",
            )
        ],
        ["a", "b", "c"],
    ),
    Case(
        "js-outputs",
        [
            fn(
                "a",
                "if (msg.payload > 0) { return [msg, null]; } return [null, msg];",
                outputs=2,
                wires=[["p"], ["m"]],
            ),
            change("p", set_("payload", "positive")),
            change("m", set_("payload", "not positive")),
        ],
        [1, -1, 0],
    ),
    Case(
        "js-async",
        [
            fn(
                "a",
                "setTimeout(function () { msg.payload = 'later ' + msg.payload; node.send(msg); }, 20);"
                " return null;",
            )
        ],
        ["x"],
    ),
    Case(
        "js-await",
        [
            fn(
                "a",
                "await new Promise(resolve => setTimeout(resolve, 10));"
                " msg.payload = {awaited: msg.payload}; return msg;",
            )
        ],
        [5],
    ),
    Case(
        "js-error",
        [
            fn(
                "a",
                "if (msg.payload === 1) { throw new Error('boom ' + msg.payload); }"
                " if (msg.payload === 2) { undefinedThing.x = 1; } return msg;",
            )
        ]
        + catch_to_response(),
        [1, 2, 3],
    ),
    Case(
        "js-clone",
        [fn("a", "var c = RED.util.cloneMessage(msg); c.payload = {clone: msg.payload}; return c;")],
        ["orig"],
    ),
    Case(
        "js-buffer",
        [
            fn(
                "a",
                "var b = Buffer.from(msg.payload.s); msg.payload = {b64: b.toString('base64'),"
                " hex: b.toString('hex'), len: b.length, back: Buffer.from(b.toString('base64'),"
                " 'base64').toString(), json: JSON.parse(JSON.stringify(b))}; return msg;",
            )
        ],
        [{"s": "héllo"}, {"s": ""}],
    ),
    Case(
        "js-env-node",
        [
            fn(
                "a",
                "msg.payload = {id: node.id, name: node.name, outputs: node.outputCount,"
                " envId: env.get('NR_NODE_ID'), envName: env.get('NR_NODE_NAME'),"
                " flowName: env.get('NR_FLOW_NAME')}; return msg;",
                name="envy",
            )
        ],
        [1],
    ),
    Case(
        "switch-ops",
        [
            n(
                "a",
                "switch",
                [["r1"], ["r2"], ["r3"], ["r4"], ["r5"], ["r6"]],
                property="payload",
                propertyType="msg",
                rules=[
                    {"t": "btwn", "v": "1", "vt": "num", "v2": "5", "v2t": "num"},
                    {"t": "cont", "v": "needle", "vt": "str"},
                    {"t": "istype", "v": "array", "vt": "array"},
                    {
                        "t": "jsonata_exp",
                        "v": "$type(payload) = 'object' and payload.k = 'v'",
                        "vt": "jsonata",
                    },
                    {"t": "null"},
                    {"t": "else"},
                ],
                checkall="false",
                repair=False,
                outputs=6,
            ),
            change("r1", set_("payload", "between")),
            change("r2", set_("payload", "contains")),
            change("r3", set_("payload", "array")),
            change("r4", set_("payload", "jsonata")),
            change("r5", set_("payload", "null")),
            change("r6", set_("payload", "else")),
        ],
        [3, "5", "a needle here", [1], {"k": "v"}, None, 7, True],
    ),
    Case(
        "change-context",
        [
            change(
                "a",
                set_("greeting", "payload", "msg", pt="flow"),
                set_("payload", "greeting", "flow"),
                {
                    "t": "change",
                    "p": "payload",
                    "pt": "msg",
                    "from": "[aeiou]",
                    "fromt": "re",
                    "to": "_",
                    "tot": "str",
                },
                {"t": "delete", "p": "nothing.here", "pt": "msg"},
                set_("payload", "payload & '/' & $flowContext('greeting')", "jsonata"),
            )
        ],
        ["hello", "sky"],
    ),
    Case(
        "template-context",
        [
            change("a", set_("name", "payload", "msg", pt="flow"), wires=[["b"]]),
            n(
                "b",
                "template",
                field="payload",
                fieldType="msg",
                format="handlebars",
                syntax="mustache",
                output="str",
                template="Dear {{flow.name}}: {{payload}}",
            ),
        ],
        ["Bo"],
    ),
    Case(
        "template-plain",
        [
            n(
                "a",
                "template",
                field="out",
                fieldType="msg",
                format="text",
                syntax="plain",
                output="str",
                template="no {{mustache}} here",
            ),
            change("b", set_("payload", "out", "msg")),
        ],
        [1],
    ),
    Case(
        "range-roll",
        [
            n(
                "a",
                "range",
                minin="0",
                maxin="10",
                minout="0",
                maxout="100",
                action="roll",
                round=False,
                property="payload",
            )
        ],
        [12.5, -1, 25],
    ),
    Case(
        "split-text-comma",
        [
            n(
                "a",
                "split",
                [["c"]],
                splt=",",
                spltType="str",
                arraySplt=1,
                arraySpltType="len",
                stream=False,
                addname="",
                property="payload",
            ),
            join(
                "c",
                mode="custom",
                build="string",
                joiner="+",
                joinerType="str",
                count="",
                timeout="",
                useparts=True,
            ),
        ],
        ["a,b,c"],
    ),
    Case(
        "split-array-chunks",
        [
            n(
                "a",
                "split",
                [["c"]],
                splt="\n",
                spltType="str",
                arraySplt=2,
                arraySpltType="len",
                stream=False,
                addname="",
                property="payload",
            ),
            join("c"),
        ],
        [[1, 2, 3, 4, 5]],
    ),
    Case(
        "join-reduce",
        [
            split("a", [["c"]]),
            join(
                "c",
                mode="reduce",
                reduceExp="$A + payload",
                reduceInit="0",
                reduceInitType="num",
                reduceFixup="$A * 10",
            ),
        ],
        [[1, 2, 3]],
    ),
    Case(
        "join-object",
        [
            split("a", [["b"]]),
            change("b", set_("topic", "'k' & payload", "jsonata"), wires=[["c"]]),
            join("c", mode="custom", build="object", count="3", timeout="", key="topic"),
        ],
        [[1, 2, 3]],
    ),
    Case(
        "deadband-percent",
        [
            split("a", [["b"]]),
            n(
                "b",
                "rbe",
                [["c"]],
                func="deadbandEq",
                gap="10%",
                start="",
                inout="out",
                septopics=True,
                property="payload",
                topi="topic",
            ),
            join("c", mode="custom", build="array", count="3", timeout=""),
        ],
        [[100, 105, 110, 111, 125]],
    ),
    Case(
        "delay-rate",
        [
            n(
                "a",
                "delay",
                pauseType="rate",
                timeout="5",
                timeoutUnits="seconds",
                rate="10",
                nbRateUnits="1",
                rateUnits="second",
                randomFirst="1",
                randomLast="5",
                randomUnits="seconds",
                drop=False,
                allowrate=False,
                outputs=1,
            )
        ],
        [1, 2],
        pause=0.15,
    ),
    Case(
        "js-query",
        [
            fn(
                "a",
                "msg.payload = {q: msg.req.query, m: msg.req.method, ct: msg.req.headers['content-type'],"
                " pay: msg.payload}; return msg;",
            )
        ],
        [1],
        query="?a=1&b=two&b=three",
    ),
    Case(
        "js-many",
        [
            fn(
                "a",
                "for (var i = 0; i < 3; i++) { node.send({payload: i, parts: {id: 'p', index: i,"
                " count: 3}, res: msg.res, req: msg.req}); } return null;",
                wires=[["c"]],
            ),
            join("c"),
        ],
        [1],
    ),
    Case(
        "js-return-array-of-arrays", [fn("a", "return [[{payload: 'a', res: msg.res, req: msg.req}]];")], [1]
    ),
    # tcp request to the runtime's own HTTP port (from the Host header: each runtime listens on its own port),
    # an HTTP/1.0 POST written by hand to the echo case below; the body after the headers is the answer
    Case(
        "tcp-request-echo",
        [
            change(
                "a",
                set_("host", "127.0.0.1"),
                set_("port", '$number($substringAfter(req.headers.host, ":"))', "jsonata"),
                set_(
                    "payload",
                    '($b := $string({"v": payload}); "POST /diff/tcp-echo-target HTTP/1.0\\r\\n'
                    'Content-Type: application/json\\r\\nContent-Length: " & $length($b) & "\\r\\n\\r\\n" & $b)',
                    "jsonata",
                ),
                wires=[["req"]],
            ),
            n(
                "req",
                "tcp request",
                [["b"]],
                server="",
                port="",
                out="time",
                splitc="500",
                ret="string",
                newline="",
                trim=False,
                tls="",
            ),
            change("b", set_("payload", '$substringAfter(payload, "\\r\\n\\r\\n")', "jsonata")),
        ],
        ["hello tcp", "second"],
    ),
    Case("tcp-echo-target", [change("a", set_("payload", "'echo: ' & payload", "jsonata"))], []),
    Case(
        "js-numbers",
        [
            fn(
                "a",
                "msg.payload = {nan: String(NaN), inf: String(1/0), int: 2**53, frac: 1/3,"
                " str: (0.1).toFixed(20), exp: (1e-7).toString(), parse: parseFloat('3.14abc'),"
                " sorted: [10, 9, 1].sort(), json: JSON.stringify({a: [1, {b: null}]})}; return msg;",
            )
        ],
        [1],
    ),
    Case(
        "js-timeout",
        [fn("a", "if (msg.payload === 'loop') { while (true) {} } return msg;", timeout=0.3)]
        + catch_to_response(),
        ["loop", "fine"],
    ),
    Case(
        "js-complete",
        [
            fn(
                "a",
                "setTimeout(function () { msg.payload = 'finished'; node.done(); }, 10); return null;",
                wires=[[]],
            ),
            n("done", "complete", [["res"]], scope=["a"], uncaught=False),
        ],
        ["x"],
    ),
    Case(
        "js-status-done",
        [fn("a", "node.status({fill: 'green', shape: 'dot', text: 'seen'}); node.send(msg); node.done();")],
        [1],
    ),
    # file / file in: relative names resolve in Node-RED's working directory (its throw-away user dir) and in
    # sofiaflow's files folder (files/ in its throw-away data dir): the same relative names on both sides
    Case(
        "file-write-append-read",
        [
            file_write("w", "diff-file.txt", "true", wires=[["a"]]),
            file_write("a", "diff-file.txt", "false", wires=[["r"]]),
            file_read("r", "diff-file.txt", "utf8"),
        ],
        ["hello", 42, {"k": [1, "x"]}],
    ),
    Case(
        "file-msg-filename-lines",
        [
            change("f", set_("filename", "diff-dir/sub/lines.txt"), wires=[["w"]]),
            file_write("w", "filename", "true", filenameType="msg", createDir=True, wires=[["r"]]),
            file_read("r", "filename", "lines", filenameType="msg", allProps=True, wires=[["j"]]),
            join("j", mode="auto"),
        ],
        ["one\ntwo"],
    ),
    Case(
        "csv-parse",
        [
            n(
                "a",
                "csv",
                [["b"]],
                spec="rfc",
                sep=",",
                hdrin=True,
                hdrout="none",
                multi="mult",
                ret="\\r\\n",
                temp="",
                skip="0",
                strings=True,
                include_empty_strings="",
                include_null_values="",
            ),
            change("b", set_("payload", '{"rows": payload, "columns": columns}', "jsonata")),
        ],
        [
            'name,"note, quoted",n\r\nann,"said ""hi""",1.5\nbob,"two\nlines",007\r\n"c, d",,+1\n\n',
            "a;b\n1;2",
            "x,y\n1e3,0x1F\n-2, 3 \n",
        ],
    ),
    Case(
        "csv-parts",
        [
            split("s", [["a"]]),
            n(
                "a",
                "csv",
                [["b"]],
                spec="rfc",
                sep=",",
                hdrin=True,
                hdrout="none",
                multi="mult",
                ret="\\n",
                temp="",
                skip="0",
                strings=True,
                include_empty_strings="",
                include_null_values="",
            ),
            change("b", set_("payload", '{"rows": payload, "columns": columns, "parts": parts}', "jsonata")),
        ],
        ['a,b\n1,x\n2,"y, z"\n3,', "skip,me\nh1,h2\n5,6"],
    ),
    Case(
        "csv-parts-one",
        [
            split("s", [["a"]]),
            n(
                "a",
                "csv",
                [["j"]],
                spec="rfc",
                sep=",",
                hdrin=True,
                hdrout="none",
                multi="one",
                ret="\\n",
                temp="",
                skip="1",
                strings=True,
                include_empty_strings=True,
                include_null_values=True,
            ),
            join("j", [["res"]], mode="custom", build="array", count="", accumulate=False),
        ],
        ["junk\nname,n\nann,1\nbob,\n,2"],
    ),
    # an empty quoted field is "" and an empty unquoted one null: Python's csv module tells them apart from 3.12
    *(
        [
            Case(
                "csv-quoted-empty",
                [
                    n(
                        "a",
                        "csv",
                        [["res"]],
                        spec="rfc",
                        sep=",",
                        hdrin=True,
                        hdrout="none",
                        multi="mult",
                        ret="\\n",
                        temp="",
                        skip="0",
                        strings=True,
                        include_empty_strings=True,
                        include_null_values=True,
                    ),
                ],
                ['a,b,c\n"",,x\n,"",""'],
            )
        ]
        if sys.version_info >= (3, 12)
        else []
    ),
    Case(
        "csv-legacy",
        [
            n(
                "a",
                "csv",
                [["b"]],
                sep=",",
                hdrin=True,
                hdrout="all",
                multi="mult",
                ret="\\n",
                temp="",
                skip="0",
                strings=True,
            ),
            change("b", set_("payload", '{"rows": payload, "columns": columns}', "jsonata")),
        ],
        ['a,b,c\n1,"x, y",\n"q""",2.5,z\n', [{"a": 1, "b": "x,y"}]],
    ),
    Case(
        "csv-rows",
        [
            n(
                "a",
                "csv",
                [["j"]],
                spec="rfc",
                sep=",",
                hdrin="",
                hdrout="none",
                multi="one",
                ret="\\n",
                temp='a,,"c,d"',
                skip="1",
                strings=False,
                include_empty_strings=True,
                include_null_values=True,
            ),
            join("j", [["b"]]),
            change("b", set_("payload", "payload", "msg")),
        ],
        ['skipped line\n1,2,3\n4,,"six"\n'],
    ),
    Case(
        "csv-write",
        [
            n(
                "a",
                "csv",
                [["b"]],
                spec="rfc",
                sep=",",
                hdrin="",
                hdrout="all",
                multi="one",
                ret="\\r\\n",
                temp="",
                skip="0",
                strings=True,
                include_empty_strings="",
                include_null_values="",
            ),
            change("b", set_("payload", '{"text": payload, "columns": columns}', "jsonata")),
        ],
        [
            [
                {"name": "ann", "note": 'said "hi"', "n": 1.5},
                {"name": "c, d", "note": "two\nlines", "n": None},
            ],
            {"k": "v", "flag": True, "obj": {"x": 1}},
            [[1, "a,b", None], ["x", 'q"', True]],
            [1, "two", 3],
        ],
    ),
    Case(
        "csv-write-template",
        [
            n(
                "a",
                "csv",
                [["b"]],
                spec="rfc",
                sep=";",
                hdrin="",
                hdrout="all",
                multi="one",
                ret="\\n",
                temp='name,,"n;x"',
                skip="0",
                strings=True,
                include_empty_strings="",
                include_null_values="",
            ),
            change("b", set_("payload", '{"text": payload, "columns": columns}', "jsonata")),
        ],
        [[{"name": "a;b", "n;x": 2, "other": 1}, {"name": 'q"', "n;x": {"deep": [1]}}]],
    ),
    Case(
        "xml",
        [n("a", "xml", property="payload", attr="", chr="")],
        [
            '<order id="7" xmlns:p="urn:p">\n  <p:item sku="a&amp;b">two &lt; three</p:item>\n'
            "  <p:item>plain</p:item>\n  <note/>\n  <blank>  </blank>\n  <mixed>a<b/>c</mixed>\n</order>",
            {
                "order": {
                    "$": {"id": 7, "q": 'say "hi"\n'},
                    "item": ["a", {"_": "b & c", "$": {"n": "2"}}],
                    "x": None,
                }
            },
            {"a": 1, "b": [True, 2.5], "c": ""},
        ],
    ),
    Case(
        "xml-keys",
        [n("a", "xml", property="payload", attr="@", chr="#")],
        ['<a k="v">t<b x="1"/>u<c>in</c></a>'],
    ),
    Case(
        "yaml",
        [n("a", "yaml", property="payload")],
        [
            "a: 1\nb:\n  - x\n  - {c: true, d: null}\ns: 'quoted: yes'\nf: 1.5\nl: |\n  line one\n  line two\n",
            {"a": 1, "b": ["x", {"c": None}], "n": "123", "t": "true", "e": {}, "l": [], "u": "é", "f": 2.5},
            [1, [2, 3], {"k": [{"deep": "v"}]}],
            {
                "long": "word " * 30 + "end",
                "spaced": "trailing space " * 6,
                "multi": "line1\nline2\n",
                "colon": "a: b",
                "hash": "x #y",
                "lead": " sp",
                "y": "n",
                "time": "1:20",
                "empty": "",
                "neg": -0.5,
                "big": 1e21,
            },
        ],
    ),
    Case(
        "html",
        [
            change("p", set_("page", "payload", "msg"), wires=[["a"]]),
            n(
                "a",
                "html",
                [["b"]],
                property="payload",
                outproperty="payload",
                tag="li",
                ret="html",
                **{"as": "single"},
                chr="_",
            ),
            n(
                "b",
                "html",
                [["c"]],
                property="page",
                outproperty="texts",
                tag="li, p",
                ret="text",
                **{"as": "single"},
                chr="_",
            ),
            n(
                "c",
                "html",
                [["d"]],
                property="page",
                outproperty="attrs",
                tag="#list > li",
                ret="attr",
                **{"as": "single"},
                chr="_",
            ),
            n(
                "d",
                "html",
                [["e"]],
                property="page",
                outproperty="compl",
                tag="li[data-n]",
                ret="compl",
                **{"as": "single"},
                chr="inner",
            ),
            change(
                "e",
                set_(
                    "payload", '{"html": payload, "texts": texts, "attrs": attrs, "compl": compl}', "jsonata"
                ),
            ),
        ],
        [
            '<html><head><title>T</title></head><body><ul id="list">'
            '<li class="a  b" data-n="1">H\u00e9llo <b>w&amp;"r\'ld</b><br>x &lt; y</li>'
            '<li data-n="2"><img src="a&b.png" alt=\'q"\'><!-- c --></li><li> </li></ul>'
            "<p>t<script>var a=1<2;</script></p><table><tr><td>cell</td></tr></table></body></html>"
        ],
    ),
    Case(
        "html-multi",
        [
            n(
                "a",
                "html",
                [["j"]],
                property="payload",
                outproperty="payload",
                tag="li",
                ret="text",
                **{"as": "multi"},
                chr="_",
            ),
            join("j", [["res"]]),
        ],
        ["<ul><li>one</li><li>two &amp; more</li><li>three</li></ul>"],
    ),
    # ----- undefined is not null: inject (once, at start), sort ---------------------------------------------------
    Case(
        "inject-undefined",
        [
            fn(
                "a",
                "msg.payload = global.get('injected') || 'not injected yet'; return msg;",
            ),
            n(
                "i",
                "inject",
                [["s"]],
                props=[
                    {"p": "payload", "v": "nothing.here", "vt": "jsonata"},
                    {"p": "topic", "v": "null", "vt": "jsonata"},
                    {"p": "deep.gone", "v": "$lookup({}, 'x')", "vt": "jsonata"},
                    {"p": "fromflow", "v": "unset", "vt": "flow"},
                    {"p": "fromglobal", "v": "unset", "vt": "global"},
                    {"p": "env", "v": "SOFIAFLOW_DIFF_NOT_SET", "vt": "env"},
                    {"p": "n", "v": "1 + 1", "vt": "jsonata"},
                ],
                repeat="",
                crontab="",
                once=True,
                onceDelay="0.1",
                topic="",
            ),
            fn(
                "s",
                "global.set('injected', {keys: Object.keys(msg).filter(k => k !== '_msgid').sort(),"
                " payload: typeof msg.payload, topic: msg.topic, deep: msg.deep, env: msg.env, n: msg.n});"
                " return null;",
                wires=[[]],
            ),
        ],
        [1],
    ),
    *(
        Case(
            f"sort-undefined-keys{suffix}",
            [
                n(
                    "a",
                    "sort",
                    order=order,
                    as_num=as_num,
                    target="payload",
                    targetType="msg",
                    msgKey="k",
                    msgKeyType="jsonata",
                    seqKey="payload",
                    seqKeyType="msg",
                )
            ],
            [
                [
                    {"i": 0, "k": 2},
                    {"i": 1},
                    {"i": 2, "k": 1},
                    {"i": 3, "k": None},
                    {"i": 4},
                    {"i": 5, "k": 0},
                ],
                [{"i": i, **({} if i % 3 == 0 else {"k": (i * 7) % 5})} for i in range(14)],
                [{"i": 0}, {"i": 1, "k": "b"}, {"i": 2, "k": "a"}, {"i": 3}, {"i": 4, "k": None}],
            ],
        )
        for suffix, order, as_num in (("", "ascending", False), ("-desc-num", "descending", True))
    ),
    Case(
        "sort-seq-undefined-keys",
        [
            split("a", [["b"]]),
            n(
                "b",
                "sort",
                [["c"]],
                order="ascending",
                as_num=False,
                target="payload",
                targetType="seq",
                msgKey="payload",
                msgKeyType="elem",
                seqKey="payload.k",
                seqKeyType="jsonata",
            ),
            change("c", set_("payload", "payload.i", "msg"), wires=[["d"]]),
            join("d"),
        ],
        [[{"i": 0, "k": 2}, {"i": 1}, {"i": 2, "k": 1}, {"i": 3, "k": None}, {"i": 4}, {"i": 5, "k": 0}]],
    ),
    # debug: what the sidebar shows (compared by test_same_debug_events over each runtime's /comms)
    Case(
        "debug-undefined",
        [
            change("a", set_("topic", "t"), wires=[["d1", "d2", "d3", "d4", "d5", "res"]]),
            *(
                n(
                    f"d{i}",
                    "debug",
                    [],
                    active=True,
                    tosidebar=True,
                    console=False,
                    tostatus=False,
                    complete=complete,
                    targetType=target,
                    statusVal="",
                    statusType="auto",
                )
                for i, (complete, target) in enumerate(
                    [
                        ("payload.nothing", "jsonata"),
                        ("payload.missing.deeper", "msg"),
                        ("payload", "msg"),
                        ('{"a": payload.nothing, "b": payload.x, "c": [payload.nothing, null]}', "jsonata"),
                        ("payload.x", "msg"),
                    ],
                    start=1,
                )
            ),
        ],
        [{"x": None}, {"x": [1, None, {"y": None}]}, {"x": "text"}],
    ),
    # ----- what a client sees besides the body: status, headers and cookies the flow sets --------------------------
    Case(
        "headers",
        [
            change(
                "a",
                set_("statusCode", "201", "num"),
                set_(
                    "headers",
                    '{"X-Custom": "a b", "Cache-Control": "no-store", "content-type": "text/csv", "X-Num": 5}',
                    "json",
                ),
                set_(
                    "cookies",
                    '{"session": {"value": "abc", "path": "/p", "httpOnly": true, "maxAge": 60000},'
                    ' "plain": "v 1", "gone": null}',
                    "json",
                ),
            )
        ],
        ["a,b\n1,2", ""],
    ),
    Case(
        "redirect",
        [
            change(
                "a",
                set_("statusCode", "302", "num"),
                set_("headers", '{"Location": "/elsewhere?a=1&b=%C3%A9"}', "json"),
            )
        ],
        ["moved"],
    ),
    Case(
        "response-node-headers",
        [change("a", set_("headers", '{"x-from-msg": "m"}', "json"))],
        ["teapot", {"k": [1, 2.5]}],
        response={"statusCode": "418", "headers": {"x-from-node": "n", "Cache-Control": "max-age=60"}},
    ),
    Case(
        "response-types",
        [
            fn(
                "a",
                "var v = msg.payload; if (v === 'buf') { v = Buffer.from('bytes'); } msg.payload = v; return msg;",
            )
        ],
        [
            42,
            1.5,
            None,
            "buf",
            "",
            [1, "a"],
            0,
        ],  # (a boolean payload: Node-RED's http response never answers)
    ),
    # ----- documented differences (README): each side must give its own documented answer ------------------------
    Case(
        "no-response",
        [change("a", set_("payload", "nobody answers"), wires=[[]])],
        ["x"],
        differs=Differs(
            "A request no flow answers gets 504 here; Node-RED leaves it hanging",
            node_red=[(0, ...)],
            sofiaflow=[(504, ...)],
        ),
    ),
    Case(
        "response-boolean",
        [fn("a", "return msg;")],
        [True, False],
        differs=Differs(
            "A boolean payload in http response is answered as JSON here; Node-RED's http response fails on it"
            " and leaves the request hanging",
            node_red=[(0, ...), (0, ...)],
            sofiaflow=[(200, True), (200, False)],
        ),
    ),
    Case(
        "js-json-boundary",
        [
            fn(
                "a",
                "msg.payload = {d: new Date(0), nan: NaN, inf: -Infinity, f: function () {}, big: 2 ** 53 + 2,"
                " m: new Map([[1, 2]]), b60: 2 ** 60, b70: 2 ** 70}; return msg;",
                wires=[["b"]],
            ),
            fn(
                "b",
                "var p = msg.payload; msg.payload = {date: typeof p.d, isDate: typeof p.d.getTime,"
                " nan: String(p.nan), inf: String(p.inf), f: typeof p.f, map: typeof (p.m && p.m.get), big: p.big,"
                " b60: p.b60, b70: p.b70, s60: String(p.b60)};"
                " return msg;",
            ),
        ],
        [1],
        differs=Differs(
            "JSON boundary: values leave a JavaScript function as JSON (Date -> ISO string, NaN/Infinity -> null,"
            " functions and class instances dropped; whole numbers beyond 2^53 are written with every digit)",
            node_red=[
                (
                    200,
                    {
                        "date": "object",
                        "isDate": "function",
                        "nan": "NaN",
                        "inf": "-Infinity",
                        "f": "function",
                        "map": "function",
                        "big": 9007199254740994,
                        "b60": 1152921504606847000,
                        "b70": 1.1805916207174113e21,
                        "s60": "1152921504606847000",
                    },
                )
            ],
            sofiaflow=[
                (
                    200,
                    {
                        "date": "string",
                        "isDate": "undefined",
                        "nan": "null",
                        "inf": "null",
                        "f": "undefined",
                        "map": "undefined",
                        "big": 9007199254740994,
                        "b60": 1152921504606846976,  # the same double, written with all its digits
                        "b70": 1.1805916207174113e21,
                        "s60": "1152921504606847000",
                    },
                )
            ],
        ),
    ),
    Case(
        "js-missing-modules",
        [
            fn(
                "a",
                "msg.payload = {require: typeof require, util: typeof util, URL: typeof URL,"
                " URLSearchParams: typeof URLSearchParams, process: typeof process, promisify: typeof promisify,"
                " byteLength: typeof Buffer.byteLength, from: typeof Buffer.from}; return msg;",
            )
        ],
        [1],
        differs=Differs(
            "Missing Node.js modules: util, URL, URLSearchParams and promisify do not exist here (require and"
            " process exist in neither); Buffer has only from, isBuffer, alloc, concat and toString",
            node_red=[
                (
                    200,
                    {
                        "require": "undefined",
                        "util": "object",
                        "URL": "function",
                        "URLSearchParams": "function",
                        "process": "undefined",
                        "promisify": "function",
                        "byteLength": "function",
                        "from": "function",
                    },
                )
            ],
            sofiaflow=[
                (
                    200,
                    {
                        "require": "undefined",
                        "util": "undefined",
                        "URL": "undefined",
                        "URLSearchParams": "undefined",
                        "process": "undefined",
                        "promisify": "undefined",
                        "byteLength": "undefined",
                        "from": "function",
                    },
                )
            ],
        ),
    ),
    Case(
        "js-time-limit",
        [
            fn(
                "a",
                "var t = Date.now(); while (Date.now() - t < 1500) {} msg.payload = 'finished'; return msg;",
                timeout=0,
            )
        ]
        + catch_to_response(),
        [1],
        differs=Differs(
            "Time limit: a function with timeout 0 is still limited to SOFIAFLOW_FUNCTION_TIME_LIMIT (1 s) here",
            node_red=[(200, "finished")],
            sofiaflow=[(500, ...)],
        ),
    ),
    Case(
        "js-context-after-await",
        [
            change("a", set_("late", "here", "str", pt="flow"), wires=[["b"]]),
            fn(
                "b",
                "var k = 'key-' + msg.payload; await new Promise(r => setTimeout(r, 5));"
                " msg.payload = {late: String(flow.get('late')), dyn: String(flow.get(k))}; return msg;",
            ),
        ]
        + catch_to_response(),
        [1],
        differs=Differs(
            "Context keys computed at run time: after an await only keys already read are available (a key"
            " named in the code is; one computed from the message is not)",
            node_red=[(200, {"late": "here", "dyn": "undefined"})],
            sofiaflow=[(500, 'context or env value "flow||key-1" is not available after an await')],
        ),
    ),
    Case(
        "js-stored-null",
        [
            fn(
                "a",
                "context.set('k', null); var v = context.get('k');"
                " msg.payload = {undef: v === undefined, isNull: v === null}; return msg;",
            )
        ],
        [1],
        differs=Differs(
            "Stored nulls: a context value stored as null reads back as undefined inside scripts",
            node_red=[(200, {"undef": False, "isNull": True})],
            sofiaflow=[(200, {"undef": True, "isNull": False})],
        ),
    ),
    Case(
        "fan-out-buffer",
        [
            fn("a", "msg.payload = Buffer.from('abc'); return msg;", wires=[["m", "r"]]),
            fn("m", "msg.payload[0] = 122; return null;", wires=[[]]),
            fn(
                "r",
                "setTimeout(function () { msg.payload = msg.payload.toString(); node.send(msg); }, 50);"
                " return null;",
            ),
        ],
        [1],
        differs=Differs(
            "Fan-out copies buffers: in Node-RED the receivers' clones share one Buffer's memory (issue #5953)",
            node_red=[(200, "zbc")],
            sofiaflow=[(200, "abc")],
        ),
    ),
    # ----- ${VAR} properties: filled from the env before the node checks them -------------------------------------
    Case(
        "env-number-and-bool-props",
        [
            plain_delay("${DIFF_WAIT_MS}", "milliseconds"),
            n("b", "json", action="str", property="payload", pretty="${DIFF_PRETTY}"),
        ],
        [{"a": [1, 2]}],
        env=[
            {"name": "DIFF_WAIT_MS", "value": "5", "type": "num"},
            {"name": "DIFF_PRETTY", "value": "true", "type": "bool"},
        ],
    ),
    Case(
        "env-prop-not-set",
        [change("a", set_("payload", "${SOFIAFLOW_DIFF_NOT_SET}"))],  # not set: the property stays as written
        [1],
    ),
]


def build(cases: list[Case]) -> list[dict]:
    """The flow JSON of every case (one tab each), for both runtimes."""
    flows: list[dict] = []
    for i, case in enumerate(cases):
        tab = f"tab-{case.name}"

        def full(short: str, case: Case = case) -> str:
            return f"{case.name}.{short}"

        flows.append({"id": tab, "type": "tab", "label": case.name, "disabled": False, "info": ""})
        if case.env:
            flows[-1]["env"] = case.env
        method = case.method.lower()
        flows.append(
            {
                "id": full("in"),
                "type": "http in",
                "z": tab,
                "name": "",
                "url": f"/diff/{case.name}",
                "method": method,
                "upload": False,
                "skipBodyParsing": False,
                "swaggerDoc": "",
                "x": 100,
                "y": 40,
                "wires": [[full("unwrap")]],
            }
        )
        # requests carry {"v": value} (a JSON body must be an object): msg.payload = value
        flows.append(
            {
                **change("unwrap", set_("payload", "payload.v", "msg"), wires=[[full(case.nodes[0]["id"])]]),
                "id": full("unwrap"),
                "z": tab,
                "name": "",
                "x": 150,
                "y": 40,
            }
        )
        flows.append(
            {
                "id": full("res"),
                "type": "http response",
                "z": tab,
                "name": "",
                "statusCode": "",
                "headers": {},
                **case.response,
                "x": 600,
                "y": 40,
                "wires": [],
            }
        )
        for j, node in enumerate(case.nodes):
            obj = {
                **node,
                "id": full(node["id"]),
                "z": tab,
                "name": node.get("name", ""),
                "x": 200 + 60 * j,
                "y": 80 + 20 * i,
                "wires": [[full(t) for t in port] for port in node["wires"]],
            }
            for listed in ("links", "scope"):
                if isinstance(node.get(listed), list):
                    obj[listed] = [full(t) for t in node[listed]]
            flows.append(obj)
    return flows
