"""Completion tickets find messages by identity (runtime/core/completion.py): a message of a live ticket that the
flows let go must not hand its id, and with it the ticket, to a new message."""

from __future__ import annotations

import gc

from sofiaflow.runtime.core.completion import CAUSE, CompletionTracker


def test_a_freed_message_of_a_live_ticket_does_not_lend_its_ticket_to_a_new_one():
    tracker = CompletionTracker()
    done: list[str] = []
    source = {"payload": "in"}
    tracker.track(source, lambda: done.append("in"))
    ticket = tracker.ticket_of(source)
    token = CAUSE.set(ticket)
    try:
        caused = [{"payload": n} for n in range(50)]
        for msg in caused:
            tracker.hold(msg)  # each queued as caused by the source
    finally:
        CAUSE.reset(token)
    del source, msg
    caused_keep = caused[:1]  # one still in the flows keeps the ticket live
    del caused
    gc.collect()
    fresh = [{"payload": n} for n in range(5000)]  # new messages, where the freed ones lived
    assert [m for m in fresh if tracker.ticket_of(m) is not None] == []
    assert tracker.ticket_of(caused_keep[0]) is ticket and done == []
