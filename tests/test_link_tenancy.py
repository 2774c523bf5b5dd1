"""Dynamic link calls (`msg.target` named at run time) never reach another tenant's `link in`: the deploy-time
checks cannot see a target chosen by a message, so the node refuses it when it runs."""

from __future__ import annotations

from tenant_world import press, world  # noqa: F401 - pytest fixture


def link_in_tab(tab_id: str, prefix: str, name: str) -> list[dict]:
    """A tab with a `link in` named `name` that records what reaches it in flow context and returns."""
    return [
        {"id": tab_id, "type": "tab", "label": tab_id},
        {
            "id": f"{prefix}l",
            "type": "link in",
            "z": tab_id,
            "name": name,
            "links": [],
            "wires": [[f"{prefix}f"]],
        },
        {
            "id": f"{prefix}f",
            "type": "change",
            "z": tab_id,
            "rules": [{"t": "set", "p": "reached", "pt": "flow", "to": "payload", "tot": "msg"}],
            "wires": [[f"{prefix}r"]],
        },
        {"id": f"{prefix}r", "type": "link out", "z": tab_id, "mode": "return", "links": [], "wires": []},
    ]


def caller_tab(tab_id: str, prefix: str, target: str) -> list[dict]:
    """A tab whose inject sends `target` as msg.target to a dynamic link call; errors are kept in flow context."""
    return [
        {"id": tab_id, "type": "tab", "label": tab_id},
        {
            "id": f"{prefix}i",
            "type": "inject",
            "z": tab_id,
            "props": [{"p": "payload"}, {"p": "target", "v": target, "vt": "str"}],
            "payload": "from the caller",
            "payloadType": "str",
            "wires": [[f"{prefix}c"]],
        },
        {
            "id": f"{prefix}c",
            "type": "link call",
            "z": tab_id,
            "linkType": "dynamic",
            "links": [],
            "wires": [[]],
        },
        {"id": f"{prefix}k", "type": "catch", "z": tab_id, "scope": None, "wires": [[f"{prefix}e"]]},
        {
            "id": f"{prefix}e",
            "type": "change",
            "z": tab_id,
            "rules": [{"t": "set", "p": "error", "pt": "flow", "to": "error.message", "tot": "msg"}],
            "wires": [],
        },
    ]


def flow_value(rt, tab_id: str, key: str):
    return rt.engine.contexts.scope(f"flow:{tab_id}").get(key)


async def test_a_developers_dynamic_link_call_cannot_reach_another_tenants_link_in(world):  # noqa: F811
    rt, http, h = world
    admin = link_in_tab("tz", "z", "platform-entry")
    assert (await http.post("/flows", json=admin, headers=h["admin"])).status_code == 204
    ana = link_in_tab("ta", "a", "ana-entry") + caller_tab("tc", "c", "platform-entry")
    assert (await http.post("/flows", json=ana, headers=h["ana"])).status_code == 204
    bob = caller_tab("tb", "b", "ana-entry")
    assert (await http.post("/flows", json=bob, headers=h["bob"])).status_code == 204

    await press(rt, http, h["ana"], "ci")  # by name, into the administrators' flow
    await press(rt, http, h["bob"], "bi")  # by name, into ana's flow
    assert flow_value(rt, "tz", "reached") is None and flow_value(rt, "ta", "reached") is None
    assert "no single link in node" in flow_value(rt, "tc", "error")
    assert "no single link in node" in flow_value(rt, "tb", "error")

    # by id too
    bob = caller_tab("tb", "b", "al")
    assert (await http.post("/flows", json=bob, headers=h["bob"])).status_code == 204
    await press(rt, http, h["bob"], "bi")
    assert flow_value(rt, "ta", "reached") is None


async def test_a_dynamic_link_call_reaches_its_own_tenants_link_in(world):  # noqa: F811
    rt, http, h = world
    ana = link_in_tab("ta", "a", "ana-entry") + caller_tab("tc", "c", "ana-entry")
    assert (await http.post("/flows", json=ana, headers=h["ana"])).status_code == 204
    await press(rt, http, h["ana"], "ci")
    assert flow_value(rt, "ta", "reached") == "from the caller"
    assert flow_value(rt, "tc", "error") is None
