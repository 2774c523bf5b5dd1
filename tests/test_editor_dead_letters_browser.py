"""The Dead letters page in a real Chromium against a real cluster worker (`sofiaflow run` on Redis and
PostgreSQL). Developer ana's flow checks meter readings behind two partition nodes; a faulty reading fails its
check until the flow is repaired (a flow-context flag), so it lands in the dead letters after its deliveries.
The page, opened before, shows each letter without reloading (flow and node by name, key, deliveries, the error),
filters by partition node, replays one after the repair (it reaches the end of the flow) and discards the other
after a confirmation; developer bob's page shows none of ana's letters. In a single process the page explains
cluster mode instead. With SOFIAFLOW_SCREENSHOTS=1 the pages are saved in docs/screenshots."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_harness import ADMIN_PASSWORD, Cluster, http, skip_unless_cluster, wait_until
from editor_server import chromium, editor_server, login  # noqa: F401 - pytest fixtures
from editor_ui import screenshot_path
from test_editor_accessibility import axe_source, violations

TAB = "meters"
PASSWORD = "meter-dev-password"
CHECK = (
    "reading = msg['payload']\n"
    "if reading.get('faulty') and not flow.get('repaired'):\n"
    "    raise ValueError('meter ' + reading['meter'] + ' sent a reading out of range: ' + str(reading['kwh']))\n"
    "return msg"
)


def reading(node_id: str, name: str, payload: str, target: str, y: int) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "inject",
        "z": TAB,
        "name": name,
        "props": [{"p": "payload"}],
        "payload": payload,
        "payloadType": "json",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 140,
        "y": y,
        "wires": [[target]],
    }


def partition(node_id: str, name: str, y: int) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "partition",
        "z": TAB,
        "name": name,
        "key": "payload.meter",
        "keyType": "msg",
        "partitions": 4,
        "maxDeliveries": 2,
        "x": 360,
        "y": y,
        "wires": [["check"]],
    }


FLOWS = [
    {"id": TAB, "type": "tab", "label": "Meter readings"},
    reading("faultym2", "faulty reading of m2", '{"meter": "m2", "kwh": -40, "faulty": true}', "bymeter", 60),
    reading("goodm3", "reading of m3", '{"meter": "m3", "kwh": 12}', "bymeter", 120),
    reading(
        "faultym7", "faulty reading of m7", '{"meter": "m7", "kwh": 99999, "faulty": true}', "bysite", 180
    ),
    partition("bymeter", "by meter", 90),
    partition("bysite", "by site", 180),
    {
        "id": "check",
        "type": "python function",
        "z": TAB,
        "name": "check reading",
        "func": CHECK,
        "outputs": 1,
        "x": 560,
        "y": 120,
        "wires": [["record"]],
    },
    {
        "id": "record",
        "type": "change",
        "z": TAB,
        "name": "last processed",
        "rules": [{"t": "set", "p": "lastMeter", "pt": "flow", "to": "payload.meter", "tot": "msg"}],
        "x": 760,
        "y": 120,
        "wires": [],
    },
    {
        "id": "repair",
        "type": "inject",
        "z": TAB,
        "name": "repair",
        "props": [{"p": "payload"}],
        "payload": "",
        "payloadType": "date",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 140,
        "y": 260,
        "wires": [["repaired"]],
    },
    {
        "id": "repaired",
        "type": "change",
        "z": TAB,
        "name": "mark repaired",
        "rules": [{"t": "set", "p": "repaired", "pt": "flow", "to": "true", "tot": "bool"}],
        "x": 360,
        "y": 260,
        "wires": [],
    },
]

pytestmark = [pytest.mark.timeout(420)]


class Client:
    """One user's calls to a worker's admin API."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.url, self.user, self.password = url, user, password
        status, _, body = http(
            "POST",
            url + "/auth/token",
            {
                "client_id": "node-red-admin",
                "grant_type": "password",
                "scope": "*",
                "username": user,
                "password": password,
            },
        )
        assert status == 200, (status, body)
        self.token = body["access_token"]

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, answer = http(method, self.url + path, body, token=self.token, **kw)
        return status, answer

    @property
    def editor(self) -> types.SimpleNamespace:
        return types.SimpleNamespace(editor_url=self.url + "/editor", user=self.user, password=self.password)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=1, mosquitto=False) as started:
        yield started


def letters(client: Client) -> list[dict[str, Any]]:
    status, body = client.call("GET", "/partitions/dead-letters")
    assert status == 200, body
    return body["deadLetters"]


def flow_value(client: Client, key: str) -> Any:
    """A key of the flow's context as the admin API shows it (None when unset)."""
    status, body = client.call("GET", f"/context/flow/{TAB}/{key}")
    return body.get("msg") if status == 200 and isinstance(body, dict) else None


def last_meter(client: Client) -> str | None:
    return flow_value(client, "lastMeter")


def card(page: Any, text: str) -> Any:
    return page.get_by_test_id("dead-letter").filter(has_text=text)


@skip_unless_cluster()
def test_dead_letters_are_shown_replayed_and_discarded_per_owner(
    cluster: Cluster,
    chromium,  # noqa: F811
    tmp_path,
) -> None:
    (worker,) = cluster.workers
    admin = Client(worker.url, "admin", ADMIN_PASSWORD)
    for user in ("ana", "bob"):
        status, body = admin.call(
            "POST", "/users", {"username": user, "password": PASSWORD, "role": "developer"}
        )
        assert status == 201, body
    ana, bob = Client(worker.url, "ana", PASSWORD), Client(worker.url, "bob", PASSWORD)
    status, body = ana.call("POST", "/flows", {"flows": FLOWS}, headers={"Node-RED-API-Version": "v2"})
    assert status == 200 and body.get("cluster", {}).get("pending", []) == [], body

    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30000)
    try:
        login(page, ana.editor, "/dead-letters")
        page.get_by_test_id("dead-letter-empty").wait_for()
        assert "No dead letters." in page.get_by_test_id("dead-letter-empty").inner_text()
        # a good reading passes; the faulty ones fail their check twice each and land in the dead letters
        assert ana.call("POST", "/inject/goodm3")[0] == 200
        wait_until(lambda: last_meter(ana) == "m3", 60, "the good reading processed")
        for inject in ("faultym2", "faultym7"):
            assert ana.call("POST", f"/inject/{inject}")[0] == 200
        wait_until(lambda: len(letters(ana)) == 2, 60, "two dead letters")
        # shown without reloading, in words
        m2, m7 = card(page, "m2"), card(page, "m7")
        m2.wait_for()
        m7.wait_for()
        assert page.get_by_test_id("dead-letter-summary").inner_text() == "2 dead letters"
        text = m2.inner_text()
        for expected in (
            "by meter",
            "partition node in flow “Meter readings”",
            "Delivered",
            "2 times, failed each time",
            "Moved here",
        ):
            assert expected in text, (expected, text)
        assert m2.get_by_test_id("dead-letter-key").inner_text() == "m2"
        assert (
            "meter m2 sent a reading out of range: -40" in m2.get_by_test_id("dead-letter-cause").inner_text()
        )
        assert (
            m2.get_by_test_id("dead-letter-payload").inner_text()
            == '{"meter": "m2", "kwh": -40, "faulty": true}'
        )
        assert "by site" in m7.inner_text()
        m2.get_by_text("Show the whole message").click()
        whole = m2.locator(".q-expansion-item__content")
        whole.wait_for()
        wait_until(lambda: '"_msgid"' in whole.inner_text(), 15, "the whole message shown")
        assert '"faulty": true' in whole.inner_text()
        found = violations(page, axe_source())
        assert [v for v in found if v["impact"] in ("serious", "critical")] == []
        picture = screenshot_path("dead-letters.png", tmp_path)
        page.screenshot(path=str(picture), full_page=True)
        assert picture.stat().st_size > 10_000

        # filtered by partition node
        page.get_by_label("Partition node").click()
        page.get_by_role("option", name="by meter in Meter readings").click()
        wait_until(lambda: card(page, "m7").count() == 0, 15, "m7's letter filtered out")
        assert card(page, "m2").count() == 1
        assert page.get_by_test_id("dead-letter-summary").inner_text() == "1 dead letter"
        page.get_by_label("Partition node").click()
        page.get_by_role("option", name="Every partition node").click()
        card(page, "m7").wait_for()

        # another developer sees none of ana's letters
        other = chromium.new_context(viewport={"width": 1400, "height": 900})
        try:
            bobs = other.new_page()
            bobs.set_default_timeout(30000)
            login(bobs, bob.editor, "/dead-letters")
            bobs.get_by_test_id("dead-letter-empty").wait_for()
            assert bobs.get_by_test_id("dead-letter-summary").inner_text() == "0 dead letters"
            assert bobs.get_by_test_id("dead-letter").count() == 0
            assert letters(bob) == []
        finally:
            other.close()
        assert len(letters(admin)) == 2  # the administrators see every letter

        # replayed after the repair: the reading reaches the end of the flow
        assert ana.call("POST", "/inject/repair")[0] == 200
        wait_until(lambda: flow_value(ana, "repaired") is not None, 30, "the flow repaired")
        page.get_by_role("button", name="Replay the message of key m2").click()
        wait_until(lambda: card(page, "m2").count() == 0, 30, "m2's letter gone from the page")
        wait_until(lambda: last_meter(ana) == "m2", 60, "the replayed reading processed")
        assert [d["msg"]["payload"]["meter"] for d in letters(ana)] == ["m7"]

        # discarded after a confirmation (cancelled first: still there)
        page.get_by_role("button", name="Discard the message of key m7").click()
        confirm = page.get_by_test_id("dead-letter-confirm")
        assert "will never be processed" in confirm.inner_text()
        confirm.get_by_role("button", name="Cancel").click()
        confirm.wait_for(state="hidden")
        assert card(page, "m7").count() == 1 and len(letters(ana)) == 1
        page.get_by_role("button", name="Discard the message of key m7").click()
        page.get_by_test_id("dead-letter-confirm").get_by_role("button", name="Discard").click()
        page.get_by_test_id("dead-letter-empty").wait_for()
        assert letters(ana) == [] and last_meter(ana) == "m2"  # never processed
        status, entries = admin.call("GET", "/audit?user=ana&limit=50")
        assert status == 200, entries
        actions = {e["action"] for e in entries if e["outcome"] == "ok"}
        assert {"partition.replay", "partition.delete"} <= actions, entries  # audited as the API's
    finally:
        context.close()


def test_single_process_mode_explains_cluster_mode(editor_server, chromium, tmp_path) -> None:  # noqa: F811
    context = chromium.new_context(viewport={"width": 1400, "height": 700})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, editor_server, "/dead-letters")
        notice = page.get_by_test_id("dead-letter-single")
        notice.wait_for()
        text = notice.inner_text()
        assert "Dead letters exist in cluster mode" in text and "SOFIAFLOW_REDIS_URL" in text
        assert page.get_by_role("button", name="Dead letters").count() == 1  # in the navigation
        picture = screenshot_path("dead-letters-single.png", tmp_path)
        page.screenshot(path=str(picture), full_page=True)
    finally:
        context.close()
