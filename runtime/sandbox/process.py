"""One running worker process, host side: its pipes, the requests in flight, deadlines, and how it died."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from sofiaflow.runtime.sandbox import framing
from sofiaflow.runtime.sandbox.errors import SandboxCrashed, SandboxError, SandboxTimeout
from sofiaflow.runtime.sandbox.limits import EXIT_OUT_OF_MEMORY, EXIT_PROTOCOL_ERROR, EXIT_START_FAILED

log = logging.getLogger("sofiaflow.sandbox")

STDERR_LOG_BYTES = 64 * 1024
"""How much of a worker's stderr reaches the host log per process; the rest is dropped (and counted)."""
_UNSENDABLE = (TypeError, OverflowError, ValueError, msgspec.EncodeError, framing.FrameError)


@dataclass(eq=False)
class Pending:
    """A request waiting for its answer."""

    id: int
    future: asyncio.Future
    timeout: float
    progress_timeout: float | None = None
    timer: asyncio.TimerHandle | None = None
    deadline: float = 0.0


@dataclass
class Handlers:
    """The host's callbacks for worker calls and events, by handler name (shared by a worker's processes)."""

    calls: dict[str, Callable[[str, Any], Any]] = field(default_factory=dict)
    events: dict[str, Callable[[str, Any], None]] = field(default_factory=dict)


class WorkerProcess:
    """A started worker: feeds it requests in order and fails them all if it dies or overruns."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        generation: int,
        cwd: str,
        handlers: Handlers,
        memory_mb: int,
        label: str,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.generation = generation
        self.cwd = cwd
        self.handlers = handlers
        self.memory_mb = memory_mb
        self.label = label
        self.inflight: deque[Pending] = deque()
        self.dead = False
        self.answered = False
        self.killed_by_host = False
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self._loop = asyncio.get_running_loop()
        self._stderr_task = self._loop.create_task(self._read_stderr())
        self.reader = self._loop.create_task(self._read())

    # ----- requests --------------------------------------------------------------------------------
    def send(self, frame: bytes, pending: Pending) -> None:
        self.inflight.append(pending)
        if len(self.inflight) == 1:
            self._arm(pending, pending.progress_timeout or pending.timeout)
        self.proc.stdin.write(frame)

    def post(self, frame: bytes) -> None:
        if not self.dead:
            self.proc.stdin.write(frame)

    async def drain(self) -> None:
        try:
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError):
            pass  # the reader sees the death and fails what is in flight

    def _arm(self, pending: Pending, seconds: float) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        if not pending.deadline:
            pending.deadline = self._loop.time() + pending.timeout
        when = min(self._loop.time() + seconds, pending.deadline)
        pending.timer = self._loop.call_at(when, self._expired, pending)

    def _expired(self, pending: Pending) -> None:
        if self.inflight and self.inflight[0] is pending and not self.dead:
            if pending.progress_timeout and self._loop.time() < pending.deadline - 0.001:
                what = f"no progress within {pending.progress_timeout:g} s"
            else:
                what = f"no answer within {pending.timeout:g} s"
            self.kill(SandboxTimeout(f"{what}: the sandbox worker was killed"))

    def kill(self, error: SandboxError) -> None:
        """SIGKILL the worker's process group and fail every request in flight with `error`."""
        if not self.dead:
            self.dead = True
            self.killed_by_host = True
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._fail_all(error)

    def _fail_all(self, error: SandboxError) -> None:
        while self.inflight:
            pending = self.inflight.popleft()
            if pending.timer is not None:
                pending.timer.cancel()
            if not pending.future.done():
                pending.future.set_exception(error)

    # ----- what the worker writes ------------------------------------------------------------------------
    async def _read(self) -> None:
        stdout = self.proc.stdout
        problem = None
        try:
            while True:
                header = await stdout.readexactly(framing.HEADER.size)
                body = await stdout.readexactly(framing.frame_length(header))
                self._dispatch(framing.decode(body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except framing.FrameError as exc:
            problem = f"protocol error: {exc}"
        except Exception as exc:  # noqa: BLE001 - whatever the worker sent, the host keeps running
            log.exception("%s: reading the sandbox worker failed", self.label)
            problem = f"protocol error: {type(exc).__name__}: {exc}"
        await self._finish(problem)

    async def _finish(self, problem: str | None) -> None:
        if problem is not None and not self.dead:
            self.kill(SandboxCrashed(f"the sandbox worker broke the protocol and was killed ({problem})"))
        self.dead = True
        try:
            async with asyncio.timeout(2.0):
                returncode = await self.proc.wait()
        except TimeoutError:  # stdout closed but the process lives on: end it
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            returncode = await self.proc.wait()
        try:
            async with asyncio.timeout(1.0):
                await self._stderr_task
        except TimeoutError:
            self._stderr_task.cancel()
        reason = self.death_reason(returncode)
        if not self.killed_by_host:
            log.warning("%s: sandbox worker %d %s", self.label, self.pid, reason)
        self._fail_all(SandboxCrashed(f"the sandbox worker {reason}"))
        shutil.rmtree(self.cwd, ignore_errors=True)

    def death_reason(self, returncode: int | None) -> str:
        """Why the process ended, in words ("ran out of memory (512 MB)", "exited with code 1: ...")."""
        tail = "\n".join(self.stderr_tail)
        last = self.stderr_tail[-1] if self.stderr_tail else ""
        if returncode == EXIT_OUT_OF_MEMORY or "MemoryError" in tail:
            return f"ran out of memory ({self.memory_mb} MB)" if self.memory_mb else "ran out of memory"
        if returncode == EXIT_START_FAILED:
            return f"could not start: {last or 'no error text'}"
        if returncode == EXIT_PROTOCOL_ERROR:
            return f"broke the protocol: {last}"
        if returncode is not None and returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            if -returncode == signal.SIGKILL:
                return f"was killed ({name}; out of memory?)"
            if -returncode == signal.SIGABRT:
                return f"aborted ({name}; out of memory?)"
            return f"was killed by {name}"
        return f"exited with code {returncode}" + (f": {last}" if last else "")

    def _dispatch(self, frame: list[Any]) -> None:
        kind = frame[0]
        if kind == framing.ANSWER and len(frame) == 4:
            self._answer(frame[1], frame[2], frame[3])
        elif (
            kind == framing.CALL
            and len(frame) == 5
            and isinstance(frame[2], str)
            and isinstance(frame[3], str)
        ):
            self._call(frame[1], frame[2], frame[3], frame[4])
        elif (
            kind == framing.EVENT
            and len(frame) == 4
            and isinstance(frame[1], str)
            and isinstance(frame[2], str)
        ):
            fn = self.handlers.events.get(frame[1])
            if fn is None:
                log.warning("%s: event %r for handler %r, which takes none", self.label, frame[2], frame[1])
                return
            try:
                fn(frame[2], frame[3])
            except Exception:  # noqa: BLE001 - an event handler's bug is logged, not fatal
                log.exception("%s: handling sandbox event %r of %r failed", self.label, frame[2], frame[1])
        elif kind == framing.PROGRESS and len(frame) == 2:
            head = self.inflight[0] if self.inflight else None
            if head is not None and head.id == frame[1] and head.progress_timeout:
                self._arm(head, head.progress_timeout)
        else:
            raise framing.FrameError(f"unexpected frame kind {kind!r} of {len(frame)} items")

    def _answer(self, request_id: Any, ok: Any, value: Any) -> None:
        if not self.inflight or self.inflight[0].id != request_id:
            raise framing.FrameError(f"answer to request {request_id!r}, which is not the next one")
        pending = self.inflight.popleft()
        self.answered = True
        if pending.timer is not None:
            pending.timer.cancel()
        if self.inflight:
            head = self.inflight[0]
            self._arm(head, head.progress_timeout or head.timeout)
        if pending.future.done():
            return  # the caller went away (cancelled)
        if ok is True:
            pending.future.set_result(value)
        else:
            pending.future.set_exception(SandboxError(str(value)))

    def _call(self, call_id: Any, handler: str, op: str, payload: Any) -> None:
        fn = self.handlers.calls.get(handler)
        try:
            if fn is None:
                raise LookupError(f"the host takes no calls for handler {handler!r}")
            reply = [framing.CALL_REPLY, call_id, True, fn(op, payload)]
        except Exception as exc:  # noqa: BLE001 - the worker gets the error text
            reply = [framing.CALL_REPLY, call_id, False, str(exc) or type(exc).__name__]
        try:
            data = framing.encode(reply)
        except _UNSENDABLE as exc:
            data = framing.encode([framing.CALL_REPLY, call_id, False, f"the reply cannot be sent: {exc}"])
        self.post(data)

    async def _read_stderr(self) -> None:
        budget = STDERR_LOG_BYTES
        dropped = 0
        partial = b""
        stderr = self.proc.stderr
        while True:
            chunk = await stderr.read(65536)
            if not chunk:
                break
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            if len(partial) > 4096:
                lines.append(partial)
                partial = b""
            for raw in lines:
                text = raw[:2000].decode("utf-8", "replace").rstrip()
                if not text:
                    continue
                self.stderr_tail.append(text)
                if budget > 0:
                    budget -= len(raw) + 1
                    log.warning("%s: sandbox worker %d: %s", self.label, self.pid, text)
                else:
                    dropped += len(raw) + 1
        if partial:
            self.stderr_tail.append(partial[:2000].decode("utf-8", "replace"))
        if dropped:
            log.warning(
                "%s: sandbox worker %d: %d more bytes of stderr were not logged",
                self.label,
                self.pid,
                dropped,
            )
