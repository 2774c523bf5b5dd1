"""sofiaflow: an open low-code IoT platform; everything is a node in a directed graph.

The distribution installs one import name, `sofiaflow`. Its parts live in the repository's top folders of the
same names: `sofiaflow.runtime` (runtime/), `sofiaflow.nodes` (nodes/), `sofiaflow.editor` (editor/), and the
shipped flow files and ontologies as package data (`sofiaflow.flows`, `sofiaflow.ontologies`). This folder holds
only the top package itself (see setup.py).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sofiaflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
