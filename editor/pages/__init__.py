"""Control-panel pages: monitoring, alarms, dead letters, ontologies, devices, users, settings. Importing registers
their routes."""

from sofiaflow.editor.pages import (  # noqa: F401 - registers the pages
    alarms,
    dead_letters,
    devices,
    monitoring,
    ontologies,
    ontology_data,
    settings,
    users,
)
