"""Flow sets: the model of flow JSON, validation, plans, deploys, the stored revisions, the node registry."""
