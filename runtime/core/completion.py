"""Knowing when a message and everything it caused in the flows is done (Node-RED's "complete", flow-wide).

A source `track`s a message with a callback. Each delivery of a tracked message (or of a clone made for a
fan-out, or of a new message a node sends while handling a tracked one) adds a hold to its `Ticket`; each
delivery is released when its node finishes it: on return for nodes with `auto_done`, on `done(msg)` for the
others, on error (a failure to catch counts as handled, as in Node-RED), or when the node is removed with the
message still queued. The source releases its own first hold once it has sent the message on. At zero holds
the callback runs once (e.g. the MQTT acknowledgement goes out).

What a node sends from a task or timer it started while handling a tracked message belongs to that message
too while it is still in progress (the cause travels in a context variable). Tickets are looked up by the
identity of the message object, only while some ticket is live: untracked flows pay one dict check a hop.

`abandon()` gives up every live ticket (a cluster deploy whose drain time ran out, runtime/cluster/drain.py): each
callback runs at once with `failed` set to `Abandoned`, and the engine drops every later delivery of what the
ticket holds, so nothing the old revision still had in hand produces output after it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from sofiaflow.runtime.errors import SofiaflowError


class Abandoned(SofiaflowError):  # noqa: N818 - a state, as the message's failure
    """A tracked message given up by `CompletionTracker.abandon`: not finished, not to be acknowledged."""


def _nothing() -> None:
    return None


class Ticket:
    """Holds on one tracked message and what it caused; `on_done()` when none is left."""

    __slots__ = ("abandoned", "failed", "holds", "keys", "messages", "on_done")

    def __init__(self, on_done: Callable[[], None]) -> None:
        self.holds = 1
        self.keys: list[int] = []
        self.messages: list[Any] = []
        """The messages of `keys`, alive while the ticket is: the id of one freed could go to a new message,
        which would then be taken for this ticket's."""
        self.on_done = on_done
        self.failed: BaseException | None = None
        """The first error no catch node took while handling the message or what it caused."""
        self.abandoned = False
        """Given up (`CompletionTracker.abandon`): the engine drops its deliveries."""


CAUSE: ContextVar[Ticket | None] = ContextVar("sofiaflow_cause", default=None)


class CompletionTracker:
    """The engine's live tickets by message identity; see the module docstring."""

    __slots__ = ("tickets",)

    def __init__(self) -> None:
        self.tickets: dict[int, Ticket] = {}

    def track(self, msg: Any, on_done: Callable[[], None]) -> None:
        """Start tracking `msg` (one hold, the caller's: `release(msg)` once it has been sent on)."""
        ticket = Ticket(on_done)
        key = id(msg)
        ticket.keys.append(key)
        ticket.messages.append(msg)
        self.tickets[key] = ticket

    def ticket_of(self, msg: Any) -> Ticket | None:
        return self.tickets.get(id(msg))

    def hold(self, msg: Any) -> None:
        """A delivery of `msg` was queued: hold its ticket (or the ticket of the message being handled)."""
        key = id(msg)
        tickets = self.tickets
        ticket = tickets.get(key)
        if ticket is None:
            ticket = CAUSE.get()
            if ticket is None or ticket.holds <= 0:
                return
            tickets[key] = ticket
            ticket.keys.append(key)
            ticket.messages.append(msg)
        ticket.holds += 1

    def release(self, msg: Any) -> None:
        """A node finished one delivery of `msg`."""
        ticket = self.tickets.get(id(msg))
        if ticket is None:
            return
        ticket.holds -= 1
        if ticket.holds == 0:
            tickets = self.tickets
            for key in ticket.keys:
                if tickets.get(key) is ticket:
                    del tickets[key]
            ticket.on_done()

    def abandon(self, reason: str = "abandoned") -> int:
        """Give up every live ticket: its callback runs now with `failed` an `Abandoned(reason)` (once), and the
        deliveries it still holds are dropped by the engine when their turn comes. How many were given up."""
        given_up = []
        for ticket in self.tickets.values():
            if not ticket.abandoned:
                ticket.abandoned = True
                given_up.append(ticket)
        for ticket in given_up:
            if ticket.failed is None:
                ticket.failed = Abandoned(reason)
            on_done, ticket.on_done = ticket.on_done, _nothing
            on_done()
        return len(given_up)
