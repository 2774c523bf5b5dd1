"""Services a bare engine (tests, `FlowTester`) builds itself from the ones it was given, so nodes never create
services: the ontology change hub, the ontology data service over the registry and real-time store, and alarms
in a private in-memory database."""

from __future__ import annotations

from sofiaflow.runtime.core.services import ALARMS, ONTOLOGIES, ONTOLOGY_DATA, ONTOLOGY_EVENTS, RTDB, Services


def provide_defaults(services: Services) -> None:
    """Provide, as factories built on first lookup, the services derived from others (a runtime that registers
    its own keeps them)."""
    from sofiaflow.runtime.data.alarms import memory_store
    from sofiaflow.runtime.data.events import OntologyEvents
    from sofiaflow.runtime.data.ontology_data import OntologyData

    services.provide(ONTOLOGY_EVENTS, lambda _s: OntologyEvents())
    services.provide(ONTOLOGY_DATA, lambda s: OntologyData(s[ONTOLOGIES], s[RTDB], s[ONTOLOGY_EVENTS]))
    services.provide(ALARMS, lambda _s: memory_store())  # a runtime provides its config DB's
