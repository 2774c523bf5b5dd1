"""Mounting the editor: on by default, off with SOFIAFLOW_EDITOR=0, and importing `runtime` loads no NiceGUI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi import FastAPI

from sofiaflow.editor import editor_enabled
from sofiaflow.runtime.server import _mount_apps


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, True), ("1", True), ("0", False), ("false", False), ("off", False), ("yes", True)],
)
def test_sofiaflow_editor_setting(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv("SOFIAFLOW_EDITOR", raising=False)
    else:
        monkeypatch.setenv("SOFIAFLOW_EDITOR", value)
    assert editor_enabled() is enabled


def test_sofiaflow_editor_0_mounts_nothing(monkeypatch):
    monkeypatch.setenv("SOFIAFLOW_EDITOR", "0")
    app = FastAPI()
    before = list(app.routes)
    _mount_apps(app, runtime=None, auth=None)  # the editor returns before touching the runtime
    assert app.routes == before


def test_importing_the_runtime_and_its_server_does_not_load_nicegui():
    code = "import sys, sofiaflow.runtime.server, sofiaflow.runtime.http, editor; print('nicegui' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
