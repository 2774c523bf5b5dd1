"""`GET http://host:port/` on a real `sofiaflow run`: a redirect to the editor, unless a flow's `http in` serves `/`
(then the flow answers, and the redirect comes back once that flow is gone); other unknown paths still get 404."""

from __future__ import annotations

import http.client
import urllib.parse

from editor_server import editor_server  # noqa: F401 - pytest fixture

ROOT_FLOW = [
    {"id": "t", "type": "tab", "label": "home"},
    {"id": "in", "type": "http in", "z": "t", "url": "/", "method": "get", "wires": [["set"]]},
    {
        "id": "set",
        "type": "change",
        "z": "t",
        "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "flow home", "tot": "str"}],
        "wires": [["out"]],
    },
    {"id": "out", "type": "http response", "z": "t", "statusCode": "", "headers": {}, "wires": []},
]


def get(server, path: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    """One request, redirects not followed."""
    parts = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
    finally:
        conn.close()


def test_root_goes_to_the_editor_unless_a_flow_serves_it(editor_server):  # noqa: F811
    status, headers, _ = get(editor_server, "/")
    assert (status, headers["location"]) == (307, "/editor/")
    status, headers, _ = get(editor_server, "/", "HEAD")
    assert (status, headers["location"]) == (307, "/editor/")
    assert get(editor_server, "/nothing-here")[0] == 404
    assert get(editor_server, "/", "POST")[0] == 404

    assert editor_server.api("POST", "/flows", ROOT_FLOW)[0] == 204
    status, headers, body = get(editor_server, "/")
    assert (status, body) == (200, "flow home")
    assert "location" not in headers

    assert editor_server.api("POST", "/flows", [])[0] == 204
    status, headers, _ = get(editor_server, "/")
    assert (status, headers["location"]) == (307, "/editor/")
