"""exec: runs a shell command per message, with Node-RED's properties (90-exec.js).

Running commands on the server is a security hazard, so the node is refused at deploy unless an administrator
enables it (setting `execEnabled`, env `SOFIAFLOW_EXEC_ENABLED=1`), and even then it runs only in flows acting
for the platform (administrators' and ownerless flows: `node.tenant is None`).

Exec mode (`useSpawn` "false") runs `command [msg.<addpay>] [append]` through bash (sh without it) and sends,
when it ends, stdout, stderr (when not empty) and the return code (`{code}`, or `{code, message, signal}` on
failure) on three outputs. Spawn mode splits the line into arguments (double quotes group) and streams stdout
and stderr as they arrive. `timer` seconds kill the command; `msg.kill` ("SIGTERM", "SIGINT", ...) kills the
only running command or the one `msg.pid` names. The command and anything it started are one process group,
so a kill reaches the whole tree.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_string
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, clone_message, props

_ARG = re.compile(r'(?:[^\s"]+|"[^"]*")+')
_CHUNK = 65536
ENABLE_HINT = "an administrator enables it with the setting execEnabled (env SOFIAFLOW_EXEC_ENABLED=1)"


class ExecConfig(NodeConfig):
    command: str = Field("", title="Command", description="e.g. ls -l")
    addpay: str | bool | None = Field(
        True, title="Append msg.payload", json_schema_extra={"x-widget": "checkbox"}
    )
    append: str = Field("", title="Extra input parameters")
    useSpawn: str | bool = Field(
        "false",
        title="Output",
        json_schema_extra={
            "x-choices": [
                ["false", "when the command is complete - exec mode"],
                ["true", "while the command is running - spawn mode"],
            ]
        },
    )
    timer: str | float | int | None = Field(
        "", title="Timeout (seconds)", description="Blank: none.", json_schema_extra={"x-widget": "text"}
    )
    oldrc: NRBool = Field(False, title="Use the old style of output (compatibility mode)")
    winHide: NRBool = Field(
        False, title="Hide the console window (Windows)", json_schema_extra={"x-widget": "hidden"}
    )


def split_args(line: str) -> list[str]:
    """Node-RED's spawn argument split: runs of non-space characters, double-quoted parts kept together."""
    return [
        a[1:-1] if len(a) >= 2 and a.startswith('"') and a.endswith('"') else a for a in _ARG.findall(line)
    ]


def decoded(data: bytes) -> str | bytes:
    """Text when the bytes are UTF-8, else the bytes (Node-RED's isUtf8 check)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


class _Run:
    """One running command: its process once started, and a kill asked for before it started."""

    __slots__ = ("process", "pending_kill", "timer")

    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None
        self.pending_kill: int | None = None
        self.timer: Any = None

    def kill(self, signum: int = signal.SIGTERM) -> None:
        if self.process is None:
            self.pending_kill = signum
            return
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


class ExecNode(Node[ExecConfig]):
    type = "exec"
    category = "function"
    color = "darksalmon"
    outputs = 3
    auto_done = False
    Config = ExecConfig
    help = (
        "Runs a system command and sends its output: 1 stdout, 2 stderr, 3 return code (`{code}`; on failure "
        "`{code, message, signal}`; with `oldrc` the bare code). The command line is `command`, then the "
        "message property `addpay` (payload by default; blank for none), then `append`. `useSpawn` false "
        "(exec mode) sends the whole output when the command ends; true (spawn mode) streams it as it comes. "
        "`timer` seconds kill a command still running; `msg.kill` (a signal name such as SIGTERM or SIGINT) "
        "kills the running command, or the one whose process id is `msg.pid`.\n\n"
        "Refused at deploy unless " + ENABLE_HINT + "; even then it runs only in administrators' or "
        "ownerless flows, never in a developer's flow."
    )

    @classmethod
    def import_caveats(cls, config: ExecConfig) -> list[str]:
        """Shown by the import report: exec is off unless an administrator turns it on."""
        return [f"runs only when {ENABLE_HINT}, and only in administrators' or ownerless flows"]

    def setup(self) -> None:
        if not _enabled(self.setting("execEnabled", False)):
            raise NodeError(f"exec is disabled: running shell commands is a security hazard; {ENABLE_HINT}")
        if self.tenant is not None:
            raise NodeError(
                f"exec runs only in administrators' or ownerless flows; this flow acts for {self.tenant!r}"
            )
        cfg = self.config
        self._cmd = (cfg.command or "").strip()
        if not self._cmd:
            raise NodeError("command: empty; exec needs a command to run")
        self._addpay = "payload" if cfg.addpay is True else (cfg.addpay or "")
        self._append = (cfg.append or "").strip()
        self._spawn = str(cfg.useSpawn) == "true"
        try:
            self._timer = float(cfg.timer or 0)
        except ValueError:
            raise NodeError(f"timer: {cfg.timer!r} is not a number of seconds") from None
        if self._timer < 0:
            raise NodeError(f"timer: {cfg.timer!r} is negative")
        self._oldrc = bool(cfg.oldrc)
        self._shell = "/bin/bash" if os.path.exists("/bin/bash") else shutil.which("sh") or "/bin/sh"
        self._runs: list[_Run] = []

    async def close(self, removed: bool) -> None:
        for run in list(self._runs):
            run.kill()
        self._runs.clear()
        self.status({})

    # ----- input ---------------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        if "kill" in msg:
            self._kill(msg)
            self.done(msg)
            return
        line = self._cmd
        if self._addpay and props.has_path(msg, self._addpay):
            line += " " + js_string(props.get_path(msg, self._addpay))
        if self._append:
            line += " " + self._append
        run = _Run()
        self._runs.append(run)
        if self._timer > 0:
            run.timer = self.call_later(self._timer, run.kill)
        self.track(self._spawned(run, line, msg) if self._spawn else self._exec(run, line, msg))

    def _kill(self, msg: Msg) -> None:
        name = msg.get("kill")
        if not isinstance(name, str) or not name.upper().startswith("SIG"):
            name = "SIGTERM"
        try:
            signum = signal.Signals[name.upper()]
        except KeyError:
            raise NodeError(f"msg.kill: {name!r} is not a signal name") from None
        if "pid" in msg:
            runs = [r for r in self._runs if r.process is not None and r.process.pid == msg["pid"]]
        else:
            runs = self._runs if len(self._runs) == 1 else []
        for run in runs:
            run.kill(signum)
            self.status("red", "dot", "killed")

    async def _start(self, run: _Run, *args: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        run.process = process
        self.status("blue", "dot", f"pid:{process.pid}")
        if run.pending_kill is not None:
            run.kill(run.pending_kill)
        return process

    def _finished(self, run: _Run) -> None:
        if run.timer is not None:
            run.timer.cancel()
        if run in self._runs:
            self._runs.remove(run)

    async def _exec(self, run: _Run, line: str, msg: Msg) -> None:
        try:
            process = await self._start(run, self._shell, "-c", line)
            stdout, stderr = await process.communicate()
        except OSError as exc:
            self._finished(run)
            self.done(msg, NodeError(f"exec: cannot run {line!r}: {exc}"))
            return
        self._finished(run)
        code = process.returncode or 0
        msg.pop("payload", None)
        err_msg = None
        if stderr:
            err_msg = clone_message(msg)
            err_msg["payload"] = decoded(stderr)
        msg["payload"] = decoded(stdout)
        rc_msg = None
        if code != 0:
            rc_msg = clone_message(msg)
            message = f"Command failed: {line}\n{stderr.decode('utf-8', 'replace')}"
            rc: dict[str, Any] = {"code": code if code > 0 else None, "message": message}
            if code < 0:
                rc["signal"] = signal_name(-code)
            rc_msg["payload"] = rc
            self.status("red", "dot", "killed" if code < 0 else f"error:{code}")
        else:
            self.status({})
            if not self._oldrc:
                rc_msg = clone_message(msg)
                rc_msg["payload"] = {"code": 0}
        if rc_msg is not None:
            msg["rc"] = rc_msg["payload"]
            if err_msg is not None:
                err_msg["rc"] = rc_msg["payload"]
        self.send([msg, err_msg, rc_msg])
        self.done(msg)

    async def _spawned(self, run: _Run, line: str, msg: Msg) -> None:
        args = split_args(line)
        try:
            process = await self._start(run, *args)
        except OSError:  # unknown command: Node-RED's close with code -2 (ENOENT)
            self._finished(run)
            self._spawn_closed(msg, -2, None)
            return
        assert process.stdout is not None and process.stderr is not None
        await asyncio.gather(self._stream(process.stdout, msg, 0), self._stream(process.stderr, msg, 1))
        code = await process.wait()
        self._finished(run)
        self._spawn_closed(msg, code if code >= 0 else None, signal_name(-code) if code < 0 else None)

    async def _stream(self, pipe: asyncio.StreamReader, msg: Msg, port: int) -> None:
        while chunk := await pipe.read(_CHUNK):
            out = clone_message(msg)
            out["payload"] = decoded(chunk)
            sends: list[Any] = [None, None, None]
            sends[port] = out
            self.send(sends)

    def _spawn_closed(self, msg: Msg, code: int | None, signame: str | None) -> None:
        if self._oldrc:
            msg["payload"] = code
        else:
            msg["payload"] = {"code": code} if signame is None else {"code": code, "signal": signame}
        if code == 0:
            self.status({})
        elif code is None:
            self.status("red", "dot", "killed")
        elif code < 0:
            self.status("red", "dot", f"rc:{code}")
        else:
            self.status("yellow", "dot", f"rc:{code}")
        self.send([None, None, clone_message(msg)])
        self.done(msg)


def _enabled(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
