"""Control-panel pages: monitoring, ontologies, devices, settings. Importing registers their routes."""

from . import devices, monitoring, ontologies, ontology_data, settings  # noqa: F401 - registers the pages
