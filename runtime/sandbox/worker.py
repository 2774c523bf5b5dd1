"""The worker process: `python -I -m sofiaflow.runtime.sandbox.worker '<json options>'` (started by the pool).

It imports the handler modules it is given, applies its limits (see `limits`), then answers requests in
order on stdin/stdout frames (see `framing`), calling `module.handle(op, payload, host)` in the main thread.
Anything a handler raises goes back as text. A MemoryError ends the process with a known exit code so the
host can say "out of memory" and start a fresh one. Text written to stdout by handler code goes to stderr:
stdout is the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import deque
from importlib import import_module
from typing import Any

from sofiaflow.runtime.sandbox import framing
from sofiaflow.runtime.sandbox.limits import (
    EXIT_OUT_OF_MEMORY,
    EXIT_PROTOCOL_ERROR,
    EXIT_START_FAILED,
    WorkerLimits,
    apply,
)


class WorkerHost:
    """What a handler sees of the host: synchronous calls and one-way events, for its own handler name."""

    def __init__(self, loop: WorkerLoop, handler: str) -> None:
        self._loop = loop
        self.handler = handler

    def call(self, op: str, payload: Any = None) -> Any:
        """Ask the host (e.g. context get/set); returns its reply or raises RuntimeError with its error text."""
        return self._loop.call(self.handler, op, payload)

    def event(self, op: str, payload: Any = None) -> None:
        """Tell the host something (e.g. a timer's send); no reply."""
        self._loop.channel.write([framing.EVENT, self.handler, op, payload])

    def progress(self) -> None:
        """Tell the host the current request is still moving (restarts its per-item deadline, if any)."""
        self._loop.channel.write([framing.PROGRESS, self._loop.current])


class WorkerLoop:
    """Reads requests, runs handlers, answers."""

    def __init__(self, channel: framing.BlockingChannel, modules: dict[str, str]) -> None:
        self.channel = channel
        self.modules = dict(modules)
        self.loaded: dict[str, Any] = {}
        self.hosts: dict[str, WorkerHost] = {}
        self.waiting: deque[list[Any]] = deque()
        self.current: int | None = None
        self._next_call = 0

    def load(self, handler: str) -> Any:
        module = self.loaded.get(handler)
        if module is None:
            name = self.modules.get(handler)
            if name is None:
                raise LookupError(f"no sandbox handler named {handler!r} is registered")
            module = self.loaded[handler] = import_module(name)
            prepare = getattr(module, "prepare", None)
            if prepare is not None:
                prepare()
        return module

    def call(self, handler: str, op: str, payload: Any) -> Any:
        self._next_call += 1
        call_id = self._next_call
        self.channel.write([framing.CALL, call_id, handler, op, payload])
        while True:
            frame = self.channel.read()
            if frame is None:
                sys.exit(0)
            kind = frame[0]
            if kind == framing.CALL_REPLY and frame[1] == call_id:
                if frame[2]:
                    return frame[3]
                raise RuntimeError(str(frame[3]))
            if kind == framing.REQUEST:
                self.waiting.append(frame)
            elif kind == framing.REGISTER:
                self.modules[frame[1]] = frame[2]
            else:
                raise framing.FrameError(f"unexpected frame kind {kind} while waiting for call {call_id}")

    def run(self) -> None:
        while True:
            frame = self.waiting.popleft() if self.waiting else self.channel.read()
            if frame is None:
                return
            kind = frame[0]
            if kind == framing.REGISTER:
                self.modules[frame[1]] = frame[2]
                continue
            if kind != framing.REQUEST:
                raise framing.FrameError(f"unexpected frame kind {kind}")
            _, request_id, handler, op, payload = frame
            self.current = request_id
            try:
                host = self.hosts.get(handler) or self.hosts.setdefault(handler, WorkerHost(self, handler))
                answer = self.load(handler).handle(op, payload, host)
            except MemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - every handler failure goes back as text
                del payload
                self.channel.write([framing.ANSWER, request_id, False, _describe(exc)])
                continue
            del payload
            try:
                self.channel.write([framing.ANSWER, request_id, True, answer])
            except (TypeError, OverflowError, ValueError) as exc:
                self.channel.write([framing.ANSWER, request_id, False, f"the answer cannot be sent: {exc}"])


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def main(argv: list[str]) -> int:
    options = json.loads(argv[0]) if argv else {}
    protocol_out = os.dup(1)
    os.dup2(2, 1)  # stray prints of handler code land in stderr, never in the protocol
    sys.stdout = sys.stderr
    try:
        modules: dict[str, str] = dict(options.get("handlers", {}))
        loop = WorkerLoop(framing.BlockingChannel(0, protocol_out), modules)
        for handler in modules:
            loop.load(handler)
        for name in options.get("preload", ()):
            try:
                import_module(name)
            except Exception as exc:  # noqa: BLE001 - the handler reports it if it ever needs the module
                print(f"sandbox worker: cannot preload {name}: {exc}", file=sys.stderr)
        apply(WorkerLimits.from_dict(options.get("limits", {})))
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return EXIT_START_FAILED
    try:
        loop.run()
    except MemoryError:
        os.write(2, b"sandbox worker: MemoryError, out of memory\n")
        os._exit(EXIT_OUT_OF_MEMORY)
    except framing.FrameError as exc:
        print(f"sandbox worker: protocol error: {exc}", file=sys.stderr)
        return EXIT_PROTOCOL_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
