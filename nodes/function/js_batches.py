"""The JavaScript function node's evaluations: messages (and timer callbacks) in as few evaluations as it takes.

An evaluation gets the message as JSON, the context values the code reads by name (fetched before it runs) and
gives back the script's operations (send, done, context writes, ...). A backlog crosses in one request to the
worker (the engine hands `on_batch` up to MAX_BATCH waiting messages); the worker stops at the first entry that
fails or asks for a context value not fetched, and the rest goes again.

Messages whose source waits for the flows to finish them (`mqtt in` at QoS 1) come in batches too (the node sets
`batch_causes`): each entry's operations are applied inside `sending_for` its message, so what it sends, the
errors it reports and the timers it arms are its own; an operation of another open call (a promise of an earlier
message settled meanwhile) is applied as that call's (js_ops).
"""

from __future__ import annotations

from typing import Any

from sofiaflow.nodes.function.js_bridge import split_slot
from sofiaflow.nodes.function.js_host import OUT_OF_MEMORY, ScriptStopped, _OwnCrash
from sofiaflow.nodes.function.js_isolate import JsError, JsMemoryLimit, JsTimeout
from sofiaflow.nodes.function.js_json import decode_answer
from sofiaflow.runtime.api import Msg, NodeError

MAX_FETCH_ROUNDS = 20
MAX_LEARNED_SLOTS = 256
MAX_OPEN_CALLS = 10_000
MAX_BATCH = 256
"""Messages per request to the worker at most (when that many wait)."""
CALL_IN = "__sf.callIn()"
"""The constant code of a call whose message and context values are given as data (strict JSON)."""
_NULL = ("null", False, True)
"""No message: JSON null, no bytes, strict JSON."""


class Evaluations:
    """Part of JsFunctionNode: evaluating messages and callbacks, fetching the context values they read."""

    def _open_call(self, msg: Msg) -> int:
        call_id = next(self._call_ids)
        self._calls[call_id] = msg
        if len(self._calls) > MAX_OPEN_CALLS:  # bodies that never finish must not hold messages forever
            del self._calls[next(iter(self._calls))]
        return call_id

    def _evaluate(self, msg: Msg | None, template: str, call_id: int | None = None) -> None:
        """Run `template` (with {msg}, {ctx}, {buffers} filled in), fetching context it needs, and apply ops."""
        msg_text, *flags = self._json.encode_value(msg) if msg is not None else _NULL
        extra: set[str] = set()
        for _ in range(MAX_FETCH_ROUNDS):
            code, data = self._code(msg_text, flags, template, call_id, extra)
            ops = self._run(code, call_id, data)
            if self._needs(ops, extra):
                continue
            self._apply(ops)
            if self._drain_always or (ops and ops[-1][0] == "pending" and ops[-1][1] > 0):
                self._apply(self._run("__sf.drain()", call_id))
            return
        raise NodeError("function: too many context values read by name at run time")

    async def _evaluate_in_worker(self, msg: Msg | None, template: str, call_id: int | None = None) -> None:
        """`_evaluate` with the isolate in the worker (the lock is held)."""
        outcome = (await self._evaluate_all([(msg, template, call_id)]))[0]
        if outcome is not None:
            raise outcome

    async def _evaluate_all(
        self, entries: list[tuple[Msg | None, str, int | None]]
    ) -> list[BaseException | None]:
        """Evaluate (msg, template, call id) entries in order in the worker; one outcome per entry (None: ok).

        One request carries every entry: the first gets the context values fetched now, the others go on
        with those values as the earlier ones left them. The worker stops at the first entry that fails or
        asks for a value not fetched; the rest is sent again with values fetched anew. After a crash, the
        entries are sent one by one, so only the one that kills the worker again fails.
        """
        outcomes: list[BaseException | None] = [None] * len(entries)
        encoded: list[tuple[str, bool, bool] | None] = [None] * len(entries)
        rounds = [0] * len(entries)
        extra: set[str] = set()
        one_by_one = len(entries) == 1
        i = 0
        while i < len(entries):
            end = i + 1 if one_by_one else len(entries)
            items = []
            watched = "true" if self._watched else "false"
            for k in range(i, end):
                coded = encoded[k]
                if coded is None:
                    msg = entries[k][0]
                    coded = encoded[k] = self._json.encode_value(msg) if msg is not None else _NULL
                msg_text, has_buffers, strict = coded
                call_id = entries[k][2]
                if k != i and strict and call_id is not None:  # most of a backlog: what `_code` gives, sooner
                    buffers = "true" if has_buffers else "false"
                    items.append([CALL_IN, f'[{call_id},{msg_text},"same",{buffers},{watched}]'])
                    continue
                items.append(
                    list(self._code(msg_text, [has_buffers, strict], entries[k][1], call_id, extra, k == i))
                )
            try:
                answer = await self._request(items, entries[i][2])
            except _OwnCrash as crash:
                if not one_by_one:
                    one_by_one = True
                    continue
                answer, failure = [], crash.error
            except NodeError as exc:  # the worker was lost or timed out: these entries fail with it
                answer, failure = [], exc
            else:
                failure = None
            if not answer:
                for k in range(i, end):
                    outcomes[k] = failure or NodeError("function: the JavaScript worker answered nothing")
                    self._forget(entries[k][2])
                i = end
                continue
            i = self._settle(entries, answer, i, outcomes, rounds, extra)
        return outcomes

    def _settle(
        self, entries: list, answer: list, first: int, outcomes: list, rounds: list[int], extra: set[str]
    ) -> int:
        """Apply the worker's results for entries from `first`; the index to go on from."""
        results = self._per_entry(answer)
        for offset, (kind, ops, drained, failure) in enumerate(results):
            k = first + offset
            call_id = entries[k][2]
            self._current = call_id
            try:
                if kind != "ok":
                    self._stopped(kind, ops, call_id)
                if self._needs(ops, extra):
                    rounds[k] += 1
                    if rounds[k] < MAX_FETCH_ROUNDS:
                        return k  # again from this one, with the value fetched
                    raise NodeError("function: too many context values read by name at run time")
                # what the entry's message did is caused by it (its source, if it waits, waits for that too):
                # sends, errors to catch, and the timers it arms (js_timers keeps the cause for their callbacks)
                with self.sending_for(entries[k][0]):
                    self._apply(ops)
                    if drained is not None:
                        self._apply(drained)
                if failure is not None:
                    self._stopped(failure[0], failure[1], call_id)
            except NodeError as exc:
                outcomes[k] = exc
                self._forget(call_id)
            finally:
                self._current = None
        return first + len(results)

    def _per_entry(self, answer: list) -> list[tuple[str, Any, list | None, list | None]]:
        """The worker's results, one (kind, ops or error text, drained ops, failure) per entry."""
        held = self._held
        results = []
        for result in answer:
            kind = result[0]
            if kind == "many":
                _count, _stop, each = decode_answer(result[1], held)
                last = len(each) - 1
                for j, ops in enumerate(each):
                    tail = j == last
                    results.append(
                        (
                            "ok",
                            ops,
                            decode_answer(result[2], held) if tail and result[2] else None,
                            result[3] if tail else None,
                        )
                    )
            elif kind == "ok":
                results.append(
                    (
                        "ok",
                        decode_answer(result[1], held),
                        decode_answer(result[2], held) if result[2] else None,
                        result[3],
                    )
                )
            else:
                results.append((kind, result[1], None, None))
        return results

    def _forget(self, call_id: int | None) -> None:
        if call_id is not None:
            self._calls.pop(call_id, None)

    def _code(
        self,
        msg_text: str,
        flags: list[bool],
        template: str,
        call_id: int | None,
        extra: set[str],
        fresh: bool = True,
    ) -> tuple[str, str | None]:
        """The code to evaluate (and its `__sfIn` data) with the context values fetched now (or, not
        `fresh`, with the values the previous evaluation left)."""
        has_buffers, strict = flags  # the message's; with the context values' when they are sent
        if fresh:
            ctx_text, ctx_buffers, ctx_strict = self._json.encode_value(self._fetch(self._slots | extra))
            has_buffers, strict = has_buffers or ctx_buffers, strict and ctx_strict
        else:
            ctx_text = '"same"'
        buffers = "true" if has_buffers else "false"
        watched = "true" if self._watched else "false"
        if call_id is not None and strict:
            # strict JSON: pass it as data to constant code (compiled once)
            return CALL_IN, f"[{call_id},{msg_text},{ctx_text},{buffers},{watched}]"
        return template.format(msg=msg_text, ctx=ctx_text, buffers=buffers, watched=watched), None

    def _needs(self, ops: list, extra: set[str]) -> bool:
        """True when the script asked for a context value not fetched (learned for the next round)."""
        if not ops or ops[0][0] != "need":
            return False
        slot = ops[0][1]
        if slot in extra or slot in self._slots:
            raise NodeError(f"function: cannot read {slot!r}")
        if len(self._slots) < MAX_LEARNED_SLOTS:
            self._slots = self._slots | {slot}
        else:
            extra.add(slot)
        return True

    def _run(self, code: str, call_id: int | None, data: str | None = None) -> list:
        try:
            text = self._isolate.run(code, self._limit, data)
        except (JsTimeout, JsMemoryLimit) as exc:
            self._stopped("timeout" if isinstance(exc, JsTimeout) else "memory", str(exc), call_id)
        except JsError as exc:
            raise NodeError(f"function: {exc}") from None
        return decode_answer(text, self._held) if isinstance(text, str) else []

    def _stopped(self, kind: str, text: str, call_id: int | None) -> None:
        """Raise the error of an evaluation that failed (`kind`: timeout, memory, error, crashed)."""
        if kind == "error":
            raise NodeError(f"function: {text}")
        self.status("red", "ring", "stopped: " + ("out of memory" if kind == "crashed" else kind))
        if call_id is not None:
            self._calls.pop(call_id, None)
        if kind == "crashed":
            raise ScriptStopped(OUT_OF_MEMORY, kind)
        raise ScriptStopped(f"Error: {text}", kind)  # Node-RED's text: the Error's toString()

    def _fetch(self, slots: set[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for slot in slots:
            scope, store, key = split_slot(slot)
            if scope == "env":
                value = self.env(key)
            else:
                target = self.context if scope == "node" else self.flow if scope == "flow" else self.global_
                value = target.keys(store) if key == "*keys" else target.get(key, store)
            values[slot] = value
        return values
