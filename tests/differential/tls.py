"""TLS on the tcp nodes for the differential tests: each runtime serves TLS on a port of its own (tcp in ->
change -> tcp out reply) and answers POST /diff-tls/echo by sending the request's text over TLS (tcp request)
to the port the request names: its own server, or the other runtime's.

Both runtimes get the same tls-config (files of a CA and a server certificate for 127.0.0.1 made by the test).
"""

from __future__ import annotations

from pathlib import Path


def tls_flow(port: int, ca: Path, cert: Path, key: Path) -> list[dict]:
    tab = "tab-tls"

    def node(id_, type_, wires, **props):
        return {
            "id": f"tls.{id_}",
            "type": type_,
            "z": tab,
            "name": "",
            "x": 100,
            "y": 100,
            "wires": [[f"tls.{t}" for t in port_] for port_ in wires],
            **props,
        }

    def change(id_, wires, *rules):
        return node(id_, "change", wires, rules=list(rules), action="", property="", to="", reg=False)

    def set_(prop, to, tot):
        return {"t": "set", "p": prop, "pt": "msg", "to": to, "tot": tot}

    return [
        {"id": tab, "type": "tab", "label": "tls", "disabled": False, "info": ""},
        {
            "id": "tls.config",
            "type": "tls-config",
            "name": "",
            "cert": str(cert),
            "key": str(key),
            "ca": str(ca),
            "certname": "",
            "keyname": "",
            "caname": "",
            "servername": "",
            "verifyservercert": True,
            "alpnprotocol": "",
        },
        node(
            "server",
            "tcp in",
            [["answer"]],
            server="server",
            host="",
            port=str(port),
            datamode="stream",
            datatype="utf8",
            newline="\\n",
            topic="",
            trim=False,
            base64=False,
            tls="tls.config",
        ),
        change(
            "answer",
            [["reply"]],
            set_("payload", '"over tls: " & payload & " (" & $type(_session.id) & ")\\n"', "jsonata"),
        ),
        node("reply", "tcp out", [], host="", port="", beserver="reply", base64=False, end=False, tls=""),
        node(
            "in",
            "http in",
            [["ask"]],
            url="/diff-tls/echo",
            method="post",
            upload=False,
            skipBodyParsing=False,
            swaggerDoc="",
        ),
        change(
            "ask",
            [["request"]],
            set_("port", "payload.v.port", "jsonata"),
            set_("payload", 'payload.v.text & "\\n"', "jsonata"),
        ),
        node(
            "request",
            "tcp request",
            [["res"]],
            server="127.0.0.1",
            port="",
            out="char",
            splitc="\\n",
            ret="string",
            newline="",
            trim=False,
            tls="tls.config",
        ),
        node("res", "http response", [], statusCode="", headers={}),
    ]
