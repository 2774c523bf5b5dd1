"""The citizen developer's scenario, start to finish in a real Chromium, without typing JSON.

An ontology and a device from the control panel; a flow `mqtt in -> python function -> ontology insert` (and a
debug node) built by drag and drop and configured in the forms; a real MQTT client publishes as the device and
the debug sidebar shows the message; an `api` config node created from the api-endpoint's picker, the endpoint
configured with dropdowns, a key created on the API keys page, and the API answers with it; then export, delete
the flow, import it back and deploy: the same URL answers and no config node is duplicated.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from editor_server import (  # noqa: F401 - chromium is a pytest fixture
    CHROMIUM,
    PASSWORD,
    REPO,
    EditorServer,
    _ready,
    chromium,
    free_port,
    login,
    server_log,
    stop_server,
)
from editor_ui import drag_from_palette, node, wire

ONTOLOGY = "Reading"
DEVICE = "meter-1"
API = "readings"
FUNCTION_BODY = (
    'reading = msg["payload"]\n'
    'msg["payload"] = {"assetId": msg["device"], "measure": reading["t"]}\n'
    "return msg\n"
)


@pytest.fixture(scope="module")
def server():
    """`sofiaflow run` with the editor and the embedded MQTT broker on free ports."""
    port, mqtt_port = free_port(), free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="sofiaflow-scenario-"))
    env = {
        **os.environ,
        "SOFIAFLOW_ADMIN_PASSWORD": PASSWORD,
        "SOFIAFLOW_DATA_DIR": str(data_dir),
        "SOFIAFLOW_DEFAULT_FLOWS": "",
    }
    args = [sys.executable, "-m", "sofiaflow.runtime.cli", "run", "--data-dir", str(data_dir)]
    args += ["--port", str(port), "--host", "127.0.0.1", "--mqtt-port", str(mqtt_port)]
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    srv = EditorServer(url=f"http://127.0.0.1:{port}", password=PASSWORD, data_dir=data_dir, proc=proc)
    srv.mqtt_port = mqtt_port  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not _ready(srv.url, True):
        if proc.poll() is not None or time.monotonic() > deadline:
            output = server_log(srv)
            stop_server(srv)
            raise RuntimeError(f"sofiaflow did not start: {output[-3000:]}")
        time.sleep(0.2)
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def page(server, chromium):  # noqa: F811
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is required")
    context = chromium.new_context(viewport={"width": 1500, "height": 950})
    page = context.new_page()
    page.set_default_timeout(15000)
    login(page, server)
    page.wait_for_selector(".sf-canvas")
    try:
        yield page
    finally:
        context.close()


def poll(check, timeout: float = 20.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the condition was not met in time")
        time.sleep(every)


# ----- steps a user takes -----------------------------------------------------------------------


PATHS = {"Flows": "/", "Ontologies": "/ontologies", "Devices": "/devices", "API keys": "/api-keys"}


def open_page(page, server, name: str) -> None:
    """Open a page from the top bar, and wait until it is there."""
    page.get_by_role("button", name=name, exact=True).first.click()
    page.wait_for_url(f"{server.editor_url}{PATHS[name]}")
    if name == "Flows":
        page.wait_for_selector(".sf-canvas")


def deploy(page, server) -> None:
    """Press Deploy; wait for its notification and for the runtime's flows to be the new ones."""
    before = flows(server)
    page.get_by_role("button", name=re.compile(r"^(cloud_upload)?\s*Deploy")).first.click()
    page.get_by_text("Successfully deployed").last.wait_for()
    poll(lambda: flows(server) != before)


def edit(page, node_id: str):
    node(page, node_id).dblclick()
    form = page.get_by_role("dialog").last
    form.get_by_role("button", name="Done").wait_for()
    return form


def choose(dialog, label: str, option: str) -> None:
    """Pick `option` in the dropdown labelled `label` (inside `dialog`, or anywhere on a page)."""
    dialog.get_by_label(label, exact=True).first.click()
    page = dialog if not hasattr(dialog, "page") else dialog.page  # a dialog (locator) or the page
    page.get_by_role("option", name=option, exact=True).click()


def done(page, form) -> None:
    form.get_by_role("button", name="Done").click()
    form.wait_for(state="hidden")


def type_code(page, form, text: str) -> None:
    """Replace the code of the form's code editor, as a user typing or pasting would."""
    form.locator(".cm-content").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)


def api_call(server, path: str, key: str) -> tuple[int, str]:
    req = urllib.request.Request(
        f"{server.url}/api-manager/server/api/v1/{API}{path}", headers={"X-OP-APIKey": key}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def flows(server) -> list[dict]:
    status, body = server.api("GET", "/flows")
    assert status == 200
    return body


# ----- the scenario -----------------------------------------------------------------------------


@pytest.mark.timeout(300)  # one long story in a real browser; other tests share the cores
def test_the_citizen_developer_scenario(page, server):  # noqa: PLR0915 - one story, start to finish
    # an ontology, from the default schema the new-ontology page offers
    open_page(page, server, "Ontologies")
    page.get_by_role("button", name=re.compile("New ontology")).click()
    page.get_by_label("Name").fill(ONTOLOGY)
    page.get_by_label("Description").fill("A meter reading")
    page.get_by_role("button", name=re.compile("Create")).click()
    page.wait_for_url(re.compile(rf"/ontologies/{ONTOLOGY}$"))

    # a device allowed to insert into it
    open_page(page, server, "Devices")
    token = register_device(page)
    assert token.count(".") == 1

    # the flow, by drag and drop
    open_page(page, server, "Flows")
    source = drag_from_palette(page, "mqtt in", 150, 120)
    function = drag_from_palette(page, "python function", 380, 120)
    insert = drag_from_palette(page, "ontology-insert", 620, 120)
    debug = drag_from_palette(page, "debug", 620, 220)
    wire(page, source, function)
    wire(page, function, insert)
    wire(page, function, debug)

    form = edit(page, source)
    form.get_by_label("Topic", exact=True).fill("meters/+/reading")
    choose(form, "Server", "add new mqtt-broker...")
    broker_form = page.get_by_role("dialog").filter(has_text="Edit mqtt-broker node")
    broker_form.get_by_label("Name", exact=True).fill("platform broker")
    broker_form.get_by_role("checkbox", name=re.compile("platform.s broker")).click()
    done(page, broker_form)
    done(page, form)

    form = edit(page, function)
    type_code(page, form, FUNCTION_BODY)
    done(page, form)

    form = edit(page, insert)
    choose(form, "Ontology", ONTOLOGY)
    done(page, form)
    deploy(page, server)

    # the device publishes; the debug sidebar shows the message
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=DEVICE)
    client.username_pw_set(DEVICE, token)
    client.connect("127.0.0.1", server.mqtt_port)
    client.loop_start()
    try:
        info = client.publish(f"meters/{DEVICE}/reading", json.dumps({"t": 21.5}), qos=1)
        info.wait_for_publish(15)
    finally:
        client.loop_stop()
        client.disconnect()
    page.get_by_role("tab", name="debug").click()
    page.get_by_text("msg: object").first.click()  # debug messages open collapsed, as in Node-RED
    page.get_by_text(re.compile(r"21\.5")).first.wait_for()
    page.get_by_text(DEVICE).first.wait_for()

    # an API over the ontology: the api config node from the endpoint's picker, the rest by dropdowns
    endpoint = drag_from_palette(page, "api-endpoint", 150, 320)
    form = edit(page, endpoint)
    choose(form, "API", "add new api...")
    api_form = page.get_by_role("dialog").filter(has_text="Edit api node")
    api_form.get_by_label("Name", exact=True).fill(API)
    choose(api_form, "State", "published")
    done(page, api_form)
    choose(form, "Method", "GET")
    choose(form, "Answered by", "query the ontology")
    choose(form, "Ontology", ONTOLOGY)
    form.get_by_label("Path", exact=True).fill("/")
    done(page, form)
    deploy(page, server)

    # a key from the API keys page
    open_page(page, server, "API keys")
    key = create_api_key(page)
    status, body = poll(lambda: (r := api_call(server, "/", key)) and r[0] == 200 and r)
    assert "21.5" in body

    # export, delete the flow, deploy, import, deploy: the same URL answers, one of each config node
    open_page(page, server, "Flows")
    exported = export_current(page)
    page.get_by_role("button", name="flow menu").click()
    page.get_by_text("Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    for offered in (f"also delete api '{API}'", "also delete mqtt-broker 'platform broker'"):
        assert dialog.get_by_role("checkbox", name=offered).get_attribute("aria-checked") == "true"
    dialog.get_by_role("button", name="Delete flow").click()
    deploy(page, server)
    assert not [n for n in flows(server) if n["type"] in ("api", "mqtt-broker")], "they went with the flow"
    import_json(page, exported)
    deploy(page, server)
    running = flows(server)
    exported_configs = sorted(n["id"] for n in json.loads(exported) if n["type"] in ("api", "mqtt-broker"))
    assert sorted(n["id"] for n in running if n["type"] in ("api", "mqtt-broker")) == exported_configs
    status, body = poll(lambda: (r := api_call(server, "/", key)) and r[0] == 200 and r)
    assert "21.5" in body and DEVICE in body

    # and importing it once more, beside itself, reuses both config nodes instead of copying them
    import_json(page, exported)
    page.get_by_role("tab", name="config nodes").click()
    page.get_by_role("group", name=f"api '{API}'").get_by_text("2 users").wait_for()
    page.get_by_role("group", name="mqtt-broker 'platform broker'").get_by_text("2 users").wait_for()
    assert page.get_by_role("group", name=re.compile(r"^(api|mqtt-broker) ")).count() == 2
    page.get_by_role("button", name="undo").click()
    page.get_by_role("group", name=f"api '{API}'").get_by_text("1 user", exact=True).wait_for()


def register_device(page) -> str:
    """Register the device on the Devices page, allowed to insert into the ontology; its token, shown once."""
    page.get_by_label("Name", exact=True).first.fill(DEVICE)
    page.get_by_label("Topic filter 1", exact=True).fill("meters/{device}/#")
    page.get_by_role("button", name="Add ontology right").click()
    choose(page, "Ontology 1", ONTOLOGY)
    choose(page, "Right 1", "INSERT")
    page.get_by_role("button", name=re.compile("Register")).click()
    dialog = page.get_by_role("dialog").filter(has_text=f"Token for {DEVICE}")
    token = dialog.get_by_label("Device token").input_value()
    dialog.get_by_role("button", name="Done").click()
    dialog.wait_for(state="hidden")
    return token


def create_api_key(page) -> str:
    """Create a key on the API keys page; the key as the page shows it, once."""
    page.get_by_label(re.compile("Label")).first.fill("scenario")
    page.get_by_role("button", name=re.compile("Create key")).click()
    dialog = page.get_by_role("dialog").filter(has=page.get_by_label("API key", exact=True))
    key = dialog.get_by_label("API key", exact=True).input_value()
    dialog.get_by_role("button", name="Done").click()
    dialog.wait_for(state="hidden")
    return key


def export_current(page) -> str:
    page.get_by_role("button", name="export").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("current flow").click()
    page.wait_for_timeout(300)
    text = dialog.locator("textarea").input_value()
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")
    return text


def import_json(page, text: str) -> None:
    page.get_by_role("button", name="import").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_placeholder("Paste flow JSON here").fill(text)
    dialog.get_by_role("button", name="Import", exact=True).click()
    dialog.wait_for(state="hidden")
