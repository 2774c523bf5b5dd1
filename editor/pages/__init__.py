"""Control-panel pages: monitoring, alarms, ontologies, devices, users, settings. Importing registers their routes."""

from sofiaflow.editor.pages import alarms, devices, monitoring, ontologies, ontology_data, settings, users  # noqa: F401 - registers the pages
