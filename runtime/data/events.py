"""The change hub: in-process pub/sub of stored-instance changes (the seed platform's Router Engine).

Every write made through `OntologyData` (ontology nodes, gateways, the admin API) is published here;
`ontology-subscribe` nodes and other subscribers listen per ontology. A listener is called on the event
loop it subscribed from, even when the write happened in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sofiaflow.ontology.events")

Listener = Callable[[str, str, list[dict[str, Any]]], None]
EVENTS = ("insert", "update", "delete")


class OntologyEvents:
    """`publish(ontology, event, docs)` calls every listener of that ontology with (ontology, event, docs);
    event is "insert", "update" or "delete"."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[tuple[Listener, asyncio.AbstractEventLoop | None, bool]]] = {}
        self._lock = threading.Lock()
        self.relay: Listener | None = None
        """Cluster mode: also hands each change published here to the other workers, which `deliver` it to
        their listeners (runtime/cluster/shared_ontology_events.py); None in a single process."""

    def subscribe(self, ontology: str, listener: Listener, cluster: bool = True) -> Callable[[], None]:
        """Listen to `ontology`'s changes; returns the function that stops listening.

        In a cluster, a listener hears the changes made on every worker; with `cluster=False` only those made
        on this worker: for a flow node every worker runs (ontology-subscribe), so that each change is handled
        once, by the instance on the worker where it was made."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        entry = (listener, loop, cluster)
        with self._lock:
            self._listeners.setdefault(ontology, []).append(entry)

        def unsubscribe() -> None:
            with self._lock:
                listeners = self._listeners.get(ontology)
                if listeners and entry in listeners:
                    listeners.remove(entry)
                    if not listeners:
                        del self._listeners[ontology]

        return unsubscribe

    def has_listeners(self, ontology: str) -> bool:
        """Whether a change of `ontology` has anyone to tell (always, in a cluster: other workers may listen)."""
        return self.relay is not None or bool(self._listeners.get(ontology))

    def publish(self, ontology: str, event: str, docs: list[dict[str, Any]]) -> None:
        if not docs:
            return
        self.deliver(ontology, event, docs, here=True)
        if self.relay is not None:
            self.relay(ontology, event, docs)

    def deliver(self, ontology: str, event: str, docs: list[dict[str, Any]], here: bool = False) -> None:
        """Call this process's listeners of `ontology` (what `publish` does here, without the relay); a change
        another worker made (`here` False) only reaches the listeners that subscribed with `cluster=True`."""
        with self._lock:
            listeners = list(self._listeners.get(ontology, ()))
        for listener, loop, cluster in listeners:
            if not (here or cluster):
                continue
            if loop is not None and not _running_in(loop):
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_call, listener, ontology, event, docs)
                continue
            _call(listener, ontology, event, docs)


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _call(listener: Listener, ontology: str, event: str, docs: list[dict[str, Any]]) -> None:
    try:
        listener(ontology, event, docs)
    except Exception:  # one subscriber's failure must not fail the writer
        log.exception("listener of ontology %r failed", ontology)
