"""The API Manager's node types: `api` (an API: name, version, state, quota) and `api-endpoint` (one of its
operations, answered from an ontology or by the wired flow)."""
