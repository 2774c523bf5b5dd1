"""Packaging: the repository's top folders install under the one import name `sofiaflow`.

runtime/, nodes/ and editor/ stay at the top of the repository and install as sofiaflow.runtime, sofiaflow.nodes
and sofiaflow.editor; flows/ and ontologies/ are package data (sofiaflow.flows, sofiaflow.ontologies); package/
holds the top package. Everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

FOLDERS = ("runtime", "nodes", "editor", "flows", "ontologies")

packages = ["sofiaflow"]
for folder in FOLDERS:
    packages += [f"sofiaflow.{folder}"] + [f"sofiaflow.{folder}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir={"sofiaflow": "package", **{f"sofiaflow.{folder}": folder for folder in FOLDERS}},
    package_data={"": ["*.js", "*.json", "*.css"]},
)
