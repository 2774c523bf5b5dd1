"""Control-panel pages: monitoring, ontologies, devices, users, settings. Importing registers their routes."""

from sofiaflow.editor.pages import devices, monitoring, ontologies, ontology_data, settings, users  # noqa: F401 - registers the pages
