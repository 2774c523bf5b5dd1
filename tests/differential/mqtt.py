"""MQTT for the differential tests: one mosquitto per runtime (so the same flows can use the same
topics), a paho client per broker, and the MQTT flow both runtimes run.

The flow: `mqtt in` (diff/in/<case>) -> nodes under test -> `mqtt out` (diff/out/<case>). A test
publishes the same messages to both brokers and compares what each runtime published back.
"""

from __future__ import annotations

import getpass
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from bench.nodered import free_port


class Mosquitto:
    """A mosquitto broker on 127.0.0.1 (anonymous, no persistence), stopped by pid."""

    def __init__(self, executable: str, persistent: bool = False) -> None:
        self.executable = executable
        self.port = free_port()
        self.persistent = persistent
        """Keep sessions and queued messages across `pause()` and the next `start()` (saved on stop)."""
        self.proc: subprocess.Popen | None = None
        self.dir: Path | None = None

    def start(self) -> Mosquitto:
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="sofiaflow-diff-mqtt-"))
        conf = self.dir / "mosquitto.conf"
        persistence = (
            # as root mosquitto would switch to the 'mosquitto' user, who may not write the database here
            f"persistence true\npersistence_location {self.dir}/\nautosave_interval 0\n"
            + (f"user {getpass.getuser()}\n" if os.geteuid() == 0 else "")
            if self.persistent
            else "persistence false\n"
        )
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{persistence}")
        self.proc = subprocess.Popen(
            [self.executable, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            try:
                client.connect("127.0.0.1", self.port)
                client.disconnect()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("mosquitto did not start")

    def pause(self) -> None:
        """Stop the broker process (by its pid), keeping its directory and port for the next `start()`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def stop(self) -> None:
        self.pause()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


class Probe:
    """A paho client subscribed to diff/out/# on one broker; `publish` sends to diff/in/<case>."""

    def __init__(self, port: int, client_id: str = "") -> None:
        """With `client_id`: a persistent session (the broker keeps QoS 1/2 messages while it is away)."""
        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not client_id
        )
        self.client.reconnect_delay_set(0.1, 0.5)
        subscribed = queue.Queue()
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, m.payload, m.qos, bool(m.retain))
        )
        self.client.on_subscribe = lambda *_a: subscribed.put(True)
        self.sessions: list[bool] = []
        """Per connect: whether the broker still had this client's session (persistent sessions)."""

        def on_connect(client, _userdata, flags, *_rest) -> None:
            self.sessions.append(bool(flags.session_present))
            # (again) on every connect: a broker that lost the session also lost the subscription
            client.subscribe("diff/out/#", qos=2)

        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        subscribed.get(timeout=5)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def drain(self) -> None:
        """Forget what came before (a late message of an earlier test must not count for the next)."""
        while True:
            try:
                self.messages.get_nowait()
            except queue.Empty:
                return

    def settle(self, first: float = 3.0, quiet: float = 0.75, limit: float = 8.0) -> list[tuple]:
        """Every message that comes: waits up to `first` s for one, then until none came for `quiet` s."""
        out, start = [], time.monotonic()
        wait = first
        while time.monotonic() - start < limit:
            try:
                out.append(self.messages.get(timeout=wait))
            except queue.Empty:
                break
            wait = quiet
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def mqtt_flow(port: int) -> list[dict]:
    """The MQTT tab, connected to the broker on `port` (the only thing that differs per runtime)."""
    tab = "tab-mqtt"
    broker = {
        "id": "mqtt.broker",
        "type": "mqtt-broker",
        "name": "diff",
        "broker": "127.0.0.1",
        "port": port,
        "clientid": "",
        "autoConnect": True,
        "usetls": False,
        "protocolVersion": 4,
        "keepalive": 60,
        "cleansession": True,
        "autoUnsubscribe": True,
        "birthTopic": "",
        "closeTopic": "",
        "willTopic": "",
    }

    def node(id_, type_, wires, **props):
        return {
            "id": f"mqtt.{id_}",
            "type": type_,
            "z": tab,
            "name": "",
            "x": 100,
            "y": 100,
            "wires": [[f"mqtt.{t}" for t in port_] for port_ in wires],
            **props,
        }

    fn_body = (
        "msg.payload = {got: msg.payload, type: typeof msg.payload, qos: msg.qos, retain: msg.retain,"
        " keys: Object.keys(msg).sort()}; msg.topic = msg.topic.replace('diff/in/', 'diff/out/');"
        " return msg;"
    )
    return [
        {"id": tab, "type": "tab", "label": "mqtt", "disabled": False, "info": ""},
        broker,
        node(
            "in-auto",
            "mqtt in",
            [["fn"]],
            topic="diff/in/auto/#",
            qos="2",
            datatype="auto-detect",
            broker="mqtt.broker",
            nl=False,
            rap=True,
            rh=0,
            inputs=0,
        ),
        node(
            "in-json",
            "mqtt in",
            [["sw"]],
            topic="diff/in/json",
            qos="1",
            datatype="json",
            broker="mqtt.broker",
            nl=False,
            rap=True,
            rh=0,
            inputs=0,
        ),
        node(
            "in-retain",
            "mqtt in",
            [["fn"]],
            topic="diff/in/retain",
            qos="1",
            datatype="auto-detect",
            broker="mqtt.broker",
            nl=False,
            rap=True,
            rh=0,
            inputs=0,
        ),
        node(
            "in-split",
            "mqtt in",
            [["split"]],
            topic="diff/in/split",
            qos="2",
            datatype="json",
            broker="mqtt.broker",
            nl=False,
            rap=True,
            rh=0,
            inputs=0,
        ),
        node(
            "split",
            "split",
            [["split-topic"]],
            splt="\\n",
            spltType="str",
            arraySplt=1,
            arraySpltType="len",
            stream=False,
            addname="",
            property="payload",
        ),
        node(
            "split-topic",
            "change",
            [["out"]],
            rules=[{"t": "set", "p": "topic", "pt": "msg", "to": "diff/out/split", "tot": "str"}],
            action="",
            property="",
            to="",
            reg=False,
        ),
        node(
            "fn",
            "function",
            [["out"]],
            func=fn_body,
            outputs=1,
            timeout=0,
            noerr=0,
            initialize="",
            finalize="",
            libs=[],
        ),
        node(
            "sw",
            "switch",
            [["hi"], ["lo"]],
            property="payload.n",
            propertyType="msg",
            rules=[{"t": "gte", "v": "10", "vt": "num"}, {"t": "else"}],
            checkall="false",
            repair=False,
            outputs=2,
        ),
        node(
            "hi",
            "change",
            [["out-fixed"]],
            rules=[{"t": "set", "p": "payload", "pt": "msg", "to": "payload.n * 2", "tot": "jsonata"}],
            action="",
            property="",
            to="",
            reg=False,
        ),
        node(
            "lo",
            "change",
            [["out-fixed"]],
            rules=[{"t": "set", "p": "payload", "pt": "msg", "to": "low", "tot": "str"}],
            action="",
            property="",
            to="",
            reg=False,
        ),
        node(
            "out",
            "mqtt out",
            [],
            topic="",
            qos="",
            retain="",
            respTopic="",
            contentType="",
            userProps="",
            correl="",
            expiry="",
            broker="mqtt.broker",
        ),
        node(
            "out-fixed",
            "mqtt out",
            [],
            topic="diff/out/json",
            qos="1",
            retain="false",
            respTopic="",
            contentType="",
            userProps="",
            correl="",
            expiry="",
            broker="mqtt.broker",
        ),
    ]
