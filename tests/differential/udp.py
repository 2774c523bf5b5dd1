"""UDP for the differential tests: per runtime, a `udp in` port the test sends to and a socket of the test's that
the runtime's `udp out` sends back to.

The flow: udp in (utf8) -> function (what arrived, as JSON text) -> split (lines) -> udp out to the test's socket.
"""

from __future__ import annotations

import socket
import time


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Endpoint:
    """The test's side of one runtime's UDP round trip; closed by `close()`."""

    def __init__(self) -> None:
        self.inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.inbox.bind(("127.0.0.1", 0))
        self.reply_port = self.inbox.getsockname()[1]
        self.flow_port = free_udp_port()
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, datagram: bytes) -> None:
        self.sender.sendto(datagram, ("127.0.0.1", self.flow_port))

    def drain(self) -> None:
        self.inbox.setblocking(False)
        try:
            while True:
                self.inbox.recv(65536)
        except BlockingIOError:
            pass
        finally:
            self.inbox.setblocking(True)

    def settle(self, first: float = 3.0, quiet: float = 0.75, limit: float = 8.0) -> list[bytes]:
        """Every datagram that comes back: waits up to `first` s for one, then until none came for `quiet` s."""
        out, start, wait = [], time.monotonic(), first
        while time.monotonic() - start < limit:
            self.inbox.settimeout(wait)
            try:
                out.append(self.inbox.recv(65536))
            except TimeoutError:
                break
            wait = quiet
        return out

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Send probes until the runtime's `udp in` answers (it binds some time after the runtime starts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send(b"probe")
            if self.settle(first=0.3, quiet=0.3):
                return
        raise TimeoutError(f"nothing answered on udp port {self.flow_port}")

    def close(self) -> None:
        self.inbox.close()
        self.sender.close()


def udp_flow(endpoint: Endpoint) -> list[dict]:
    tab = "tab-udp"

    def node(id_, type_, wires, **props):
        return {
            "id": f"udp.{id_}",
            "type": type_,
            "z": tab,
            "name": "",
            "x": 100,
            "y": 100,
            "wires": [[f"udp.{t}" for t in port_] for port_ in wires],
            **props,
        }

    body = (
        "var lines = msg.payload.split('\\n');"
        " msg.payload = lines.map(function (l, i) { return JSON.stringify({line: l, i: i, ip: msg.ip,"
        " port: typeof msg.port, keys: Object.keys(msg).sort()}); }).join('\\n'); return msg;"
    )
    return [
        {"id": tab, "type": "tab", "label": "udp", "disabled": False, "info": ""},
        node(
            "in",
            "udp in",
            [["fn"]],
            iface="",
            port=str(endpoint.flow_port),
            ipv="udp4",
            multicast="false",
            group="",
            datatype="utf8",
        ),
        node(
            "fn",
            "function",
            [["split"]],
            func=body,
            outputs=1,
            timeout=0,
            noerr=0,
            initialize="",
            finalize="",
            libs=[],
        ),
        node(
            "split",
            "split",
            [["out"]],
            splt="\\n",
            spltType="str",
            arraySplt=1,
            arraySpltType="len",
            stream=False,
            addname="",
            property="payload",
        ),
        node(
            "out",
            "udp out",
            [],
            addr="127.0.0.1",
            iface="",
            port=str(endpoint.reply_port),
            ipv="udp4",
            outport="",
            base64=False,
            multicast="false",
        ),
    ]
