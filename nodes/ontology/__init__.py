"""Ontology nodes: validate, insert, query, update, delete and subscribe to onesait-style ontologies."""
