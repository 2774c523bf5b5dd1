"""A real `sofiaflow run` and a real Chromium: the editor still loads under the security headers, its login leaves
no session token on disk, the data dir is private, and an ontology's schema is hidden from users without rights."""

from __future__ import annotations

import os
import stat
import time
import urllib.request

from editor_server import REPO, chromium, editor_server, login  # noqa: F401 - pytest fixtures

SCHEMA = {"type": "object", "properties": {"secretField": {"type": "number"}}}


def test_editor_loads_with_headers_and_its_login_writes_no_token(editor_server, chromium):  # noqa: F811
    started = time.time()
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, editor_server)
        page.wait_for_selector(".sf-canvas")
        errors = []
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.reload()
        page.wait_for_selector(".sf-canvas")
        assert errors == []
        cookies = context.cookies()
    finally:
        context.close()
    with urllib.request.urlopen(editor_server.editor_url + "/login", timeout=10) as answer:
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert cookies
    written = (
        [p for p in (REPO / ".nicegui").glob("storage-*.json") if p.stat().st_mtime >= started]
        if (REPO / ".nicegui").exists()
        else []
    )
    assert written == []
    for path in editor_server.data_dir.rglob("*"):
        if path.name == "server.log":  # written by the test, not the server
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (str(path), oct(mode))
    assert stat.S_IMODE(os.stat(editor_server.data_dir).st_mode) == 0o700
    assert (editor_server.data_dir / "sofiaflow.db").exists() or any(editor_server.data_dir.glob("*.db"))


def test_the_ontology_page_hides_the_schema_from_users_without_rights(editor_server, chromium):  # noqa: F811
    status, body = editor_server.api("POST", "/ontologies", {"name": "Hidden", "schema": SCHEMA})
    assert status == 201, body
    status, body = editor_server.api(
        "POST", "/users", {"username": "viewer", "password": "viewer-pw", "role": "user"}
    )
    assert status == 201, body
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        viewer = type(editor_server)(
            url=editor_server.url,
            password="viewer-pw",
            data_dir=editor_server.data_dir,
            proc=editor_server.proc,
            user="viewer",
        )
        login(page, viewer, "/ontologies/Hidden")
        page.wait_for_selector("[data-testid=ontology-missing]")
        assert "secretField" not in page.content()
    finally:
        context.close()
