"""A throwaway Mosquitto with the dynamic-security plugin, configured by deploy/mosquitto.conf (its listener moved to
a free 127.0.0.1 port and its data to a temp dir), stopped by its pid."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.rtdb_servers import _tail, _wait_port, free_port

DEPLOY_CONF = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto.conf"
PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
ADMIN = ("sofiaflow-admin", "dynsec-admin-pw-1")
PLATFORM = ("sofiaflow", "platform-client-pw-1")


class Mosquitto:
    def __init__(self, port: int, proc: subprocess.Popen, tmpdir: str) -> None:
        self.port = port
        self.proc = proc
        self.tmpdir = tmpdir
        self.url = f"mqtt://127.0.0.1:{port}"
        self.log = os.path.join(tmpdir, "log")

    def tail(self) -> str:
        return _tail(self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def deploy_config(port: int, data_dir: str) -> str:
    """deploy/mosquitto.conf with its listener on 127.0.0.1:`port` and its data in `data_dir`."""
    text = DEPLOY_CONF.read_text()
    text, listeners = re.subn(r"(?m)^listener 1883 0\.0\.0\.0$", f"listener {port} 127.0.0.1", text)
    assert listeners == 1, "deploy/mosquitto.conf has no 'listener 1883 0.0.0.0' line"
    return text.replace("/mosquitto/data/", data_dir.rstrip("/") + "/")


def _give_to_broker_user(tmp: str) -> None:
    """Started as root, Mosquitto drops to user mosquitto: it must read and write its files there."""
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    for root, _dirs, files in os.walk(tmp):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def start_mosquitto_dynsec() -> Mosquitto:
    exe = require_binary("mosquitto")
    ctrl = require_binary("mosquitto_ctrl")
    if not os.path.exists(PLUGIN):
        if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{PLUGIN} is required (SOFIAFLOW_REQUIRE_SERVERS=1)")
        pytest.skip(f"{PLUGIN} is not installed")
    tmp = tempfile.mkdtemp(prefix="mosquitto-dynsec-")
    subprocess.run(
        [ctrl, "dynsec", "init", os.path.join(tmp, "dynamic-security.json"), *ADMIN],
        check=True,
        capture_output=True,
    )
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    Path(conf).write_text(deploy_config(port, tmp))
    _give_to_broker_user(tmp)
    with open(os.path.join(tmp, "log"), "w") as out:
        proc = subprocess.Popen(
            [exe, "-c", conf], stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp
        )
    server = Mosquitto(port, proc, tmp)
    try:
        _wait_port(port, proc, 20, server.log)
    except Exception:
        server.stop()
        raise
    return server
