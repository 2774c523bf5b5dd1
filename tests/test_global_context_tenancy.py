"""Global context is per tenant: developers' flows share `global` only with their own flows; administrators'
and ownerless flows share the platform's. Without this, one tenant's flows could read what another's keep in
`global` (keys, tokens, state) or overwrite it."""

from __future__ import annotations

from tenant_world import press, world  # noqa: F401 - pytest fixture

from sofiaflow.runtime.runtime import Runtime


def change_flow(tab_id: str, prefix: str, key: str, value: str | None) -> list[dict]:
    """A tab whose inject button sets (value given) or reads (None) global `key` through a change node."""
    rule = (
        {"t": "set", "p": key, "pt": "global", "to": value, "tot": "str"}
        if value is not None
        else {"t": "set", "p": "payload", "pt": "msg", "to": key, "tot": "global"}
    )
    return [
        {"id": tab_id, "type": "tab", "label": tab_id},
        {
            "id": f"{prefix}i",
            "type": "inject",
            "z": tab_id,
            "props": [{"p": "payload"}],
            "payload": "",
            "payloadType": "str",
            "wires": [[f"{prefix}c"]],
        },
        {"id": f"{prefix}c", "type": "change", "z": tab_id, "rules": [rule], "wires": [[f"{prefix}f"]]},
        {
            "id": f"{prefix}f",
            "type": "python function",
            "z": tab_id,
            "outputs": 1,
            "wires": [],
            "func": "flow.set('seen', msg.get('payload'))\nglobal_.set('from_python', node.id)\nreturn msg",
        },
    ]


def flow_value(rt: Runtime, tab_id: str, key: str):
    return rt.engine.contexts.scope(f"flow:{tab_id}").get(key)


async def test_each_tenant_has_its_own_global_context(world):  # noqa: F811
    rt, http, h = world
    # the administrator first: an administrator's deploy is the whole flow set; developers' keep the others'
    assert (
        await http.post("/flows", json=change_flow("tz", "z", "secret", None), headers=h["admin"])
    ).status_code == 204
    assert (
        await http.post("/flows", json=change_flow("ta", "a", "secret", "ana-token"), headers=h["ana"])
    ).status_code == 204
    assert (
        await http.post("/flows", json=change_flow("tb", "b", "secret", None), headers=h["bob"])
    ).status_code == 204
    await press(rt, http, h["ana"], "ai")
    await press(rt, http, h["bob"], "bi")
    await press(rt, http, h["admin"], "zi")
    assert rt.engine.nodes["af"].global_.get("secret") == "ana-token"
    assert flow_value(rt, "tb", "seen") is None  # bob's flows cannot read ana's global
    assert flow_value(rt, "tz", "seen") is None  # the platform's global is not ana's either
    # python function bodies (in their sandbox worker) use the same per-tenant global
    assert rt.engine.nodes["af"].global_.get("from_python") == "af"
    assert rt.engine.nodes["bf"].global_.get("from_python") == "bf"
    assert rt.engine.nodes["zf"].global_.get("from_python") == "zf"


async def test_a_tenants_flows_share_their_global_across_tabs(world):  # noqa: F811
    rt, http, h = world
    flows = change_flow("ta", "a", "k", "shared-by-ana") + change_flow("ta2", "c", "k", None)
    assert (await http.post("/flows", json=flows, headers=h["ana"])).status_code == 204
    await press(rt, http, h["ana"], "ai")
    await press(rt, http, h["ana"], "ci")
    assert flow_value(rt, "ta2", "seen") == "shared-by-ana"
