"""ontology-insert's idempotency keys belong to the identity that inserts (the tenant its flow acts for): one
developer's keys never meet another's on an ontology they both may insert into, so neither can read the other's
instance through a repeated key nor suppress the other's inserts by storing their keys first. Real SQLite
real-time DB, real ontology registry, ownership and permissions."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.data import config_db, rtdb
from sofiaflow.runtime.data.events import OntologyEvents
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.data.ontology_data import OntologyData, Writer
from sofiaflow.runtime.data.rtdb.base import MAX_KEY_LENGTH, scoped_key
from sofiaflow.runtime.data.rtdb.sql_backend import SQLStore
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.security.permissions import Permissions
from tests.tenant_world import press, world  # noqa: F401 - pytest fixture
from tests.test_node_ontology import make_tester, node, settle

SCHEMA = {
    "type": "object",
    "properties": {"sensor": {"type": "string"}, "seq": {"type": "integer"}},
    "required": ["sensor", "seq"],
}
ROLES = {"ada": "administrator", "root": "administrator", "ana": "developer", "bob": "developer"}


@pytest.fixture
def services(tmp_path):
    store = rtdb.open_store(f"sqlite:///{tmp_path}/rt.db")
    registry = OntologyRegistry(config_db.connect(f"sqlite:///{tmp_path}/c.db"))
    registry.create("Shared", SCHEMA, "an ontology two developers insert into")
    yield {"rtdb": store, "ontologies": registry}
    store.close()


def tenants_tester(registry, services, owners: dict[str, str | None], key="payload.seq", key_type="msg"):
    """A tester with one tab per entry of `owners` (tab id -> owner, None: ownerless), each with an
    ontology-insert `ins_<tab>` wired to `ok_<tab>`; ana and bob hold INSERT on Shared (owned by nobody)."""
    db = config_db.connect("sqlite://")
    flow_owners = FlowOwnership(db)
    permissions = Permissions(db, ROLES.get, lambda _name: None)
    for user in ("ana", "bob"):
        permissions.grant("Shared", user, "INSERT")
    flows: list[dict] = []
    for tab, owner in owners.items():
        if owner is not None:
            flow_owners.share(tab, owner=owner)
        flows += [
            {"id": tab, "type": "tab", "label": tab},
            node(
                f"ins_{tab}",
                "ontology-insert",
                [[f"ok_{tab}"]],
                z=tab,
                ontology="Shared",
                idempotencyKey=key,
                idempotencyKeyType=key_type,
            ),
            node(f"ok_{tab}", "junction", [[]], z=tab),
        ]
    return make_tester(flows, registry, {**services, "flow-owners": flow_owners, "permissions": permissions})


def rows(services) -> list[dict]:
    return services["rtdb"].find("Shared", {}, sort=[("sensor", 1), ("seq", 1)])


async def test_two_developers_with_one_key_store_two_instances_and_each_sees_only_its_own(registry, services):
    async with tenants_tester(registry, services, {"ta": "ana", "tb": "bob"}) as t:
        # bob stores ana's next keys first: ana's readings must still be stored
        for seq in (1, 2):
            t.inject("ins_tb", {"payload": {"sensor": "bob", "seq": seq}})
        await settle(t)
        for seq in (1, 2):
            t.inject("ins_ta", {"payload": {"sensor": "ana", "seq": seq}})
        await settle(t)
        # each repeats key 1: each is answered with its own instance
        t.inject("ins_tb", {"payload": {"sensor": "bob-again", "seq": 1}})
        t.inject("ins_ta", {"payload": {"sensor": "ana-again", "seq": 1}})
        await settle(t)
        assert t.errors() == []
        ana = t.outputs("ok_ta")[0]
        bob = t.outputs("ok_tb")[0]
    assert [m["duplicate"] for m in ana] == [False, False, True]
    assert [m["duplicate"] for m in bob] == [False, False, True]
    assert ana[2]["payload"] == ana[0]["payload"] and bob[2]["payload"] == bob[0]["payload"]
    assert ana[2]["inserted"]["sensor"] == "ana" and bob[2]["inserted"]["sensor"] == "bob"
    assert ana[0]["payload"] != bob[0]["payload"]
    assert [(d["sensor"], d["seq"]) for d in rows(services)] == [
        ("ana", 1),
        ("ana", 2),
        ("bob", 1),
        ("bob", 2),
    ]


async def test_a_stream_id_is_scoped_too(registry, services):
    async with tenants_tester(registry, services, {"ta": "ana", "tb": "bob"}, key="", key_type="stream") as t:
        t.inject("ins_tb", {"payload": {"sensor": "bob", "seq": 1}, "_streamId": "p/1-0"})
        await settle(t)
        t.inject("ins_ta", {"payload": {"sensor": "ana", "seq": 1}, "_streamId": "p/1-0"})
        t.inject("ins_ta", {"payload": {"sensor": "ana", "seq": 1}, "_streamId": "p/1-0"})
        await settle(t)
        ana = t.outputs("ok_ta")[0]
    assert [m["duplicate"] for m in ana] == [False, True]
    assert ana[1]["inserted"]["sensor"] == "ana"
    assert len(rows(services)) == 2


async def test_administrators_and_ownerless_flows_share_the_platforms_keys_apart_from_developers(
    registry, services
):
    """Administrators' and ownerless tabs act for the platform (node.tenant is None): they hold every right on
    every ontology, so their keys are one scope; a developer's are apart."""
    owners = {"t_ada": "ada", "t_root": "root", "t_none": None, "t_ana": "ana"}
    async with tenants_tester(registry, services, owners) as t:
        for tab in owners:
            t.inject(f"ins_{tab}", {"payload": {"sensor": tab, "seq": 7}})
            await settle(t)
        assert t.errors() == []
        out = {tab: t.outputs(f"ok_{tab}")[0][0] for tab in owners}
    assert [out[tab]["duplicate"] for tab in owners] == [False, True, True, False]
    assert out["t_root"]["inserted"]["sensor"] == out["t_none"]["inserted"]["sensor"] == "t_ada"
    assert out["t_ana"]["inserted"]["sensor"] == "t_ana"
    assert sorted(d["sensor"] for d in rows(services)) == ["t_ada", "t_ana"]


def inserting_tab(tab: str, sensor: str) -> list[dict]:
    """A tab whose inject `<tab>_i` inserts {sensor, seq: 1} with key msg.payload.seq into Shared and keeps what
    the node answered in flow context (`answers`: a list of {duplicate, inserted})."""
    keep = (
        "var a = flow.get('answers') || []; a.push({duplicate: msg.duplicate, inserted: msg.inserted}); "
        "flow.set('answers', a); return msg;"
    )
    return [
        {"id": tab, "type": "tab", "label": tab},
        {
            "id": f"{tab}_i",
            "type": "inject",
            "z": tab,
            "props": [{"p": "payload"}],
            "payload": f'{{"sensor": "{sensor}", "seq": 1}}',
            "payloadType": "json",
            "wires": [[f"{tab}_n"]],
        },
        {
            "id": f"{tab}_n",
            "type": "ontology-insert",
            "z": tab,
            "ontology": "Shared",
            "idempotencyKey": "payload.seq",
            "idempotencyKeyType": "msg",
            "wires": [[f"{tab}_k"]],
        },
        {"id": f"{tab}_k", "type": "function", "z": tab, "func": keep, "outputs": 1, "wires": [[]]},
    ]


async def test_a_developer_granted_insert_can_neither_read_nor_suppress_the_owners_instances(world):  # noqa: F811
    """Through the runtime and its admin API: ana owns Shared and grants bob INSERT only; bob stores the key of
    ana's next reading first, then repeats it."""
    rt, http, h = world
    created = await http.post("/ontologies", json={"name": "Shared", "schema": SCHEMA}, headers=h["ana"])
    assert created.status_code == 201, created.text
    granted = await http.put("/ontologies/Shared/grants/bob", json={"access": "INSERT"}, headers=h["ana"])
    assert granted.status_code in (200, 204), granted.text
    assert (await http.post("/flows", json=inserting_tab("tb", "bob"), headers=h["bob"])).status_code == 204
    assert (await http.post("/flows", json=inserting_tab("ta", "ana"), headers=h["ana"])).status_code == 204
    await press(rt, http, h["bob"], "tb_i")
    await press(rt, http, h["ana"], "ta_i")
    await press(rt, http, h["ana"], "ta_i")
    await press(rt, http, h["bob"], "tb_i")

    def answers(tab: str) -> list[tuple[bool, str]]:
        got = rt.engine.contexts.scope(f"flow:{tab}").get("answers") or []
        return [(a["duplicate"], a["inserted"]["sensor"]) for a in got]

    assert answers("ta") == [(False, "ana"), (True, "ana")]
    assert answers("tb") == [(False, "bob"), (True, "bob")]
    stored = (await http.get("/ontologies/Shared/data", headers=h["ana"])).json()["items"]
    assert sorted(d["sensor"] for d in stored) == ["ana", "bob"]


# ----- OntologyData.insert_keyed -----------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path):
    store = SQLStore(f"sqlite:///{tmp_path}/rt.db")
    registry = OntologyRegistry(config_db.connect(f"sqlite:///{tmp_path}/c.db"))
    registry.create("Shared", SCHEMA, "")
    yield OntologyData(registry, store, OntologyEvents())
    store.close()


def test_insert_keyed_needs_the_scope_named():
    with pytest.raises(TypeError, match="scope"):
        OntologyData.insert_keyed(None, "Shared", [], ["k"])  # type: ignore[call-arg, arg-type]


@pytest.mark.parametrize("scope", ["", 5, b"ana"])
def test_a_scope_that_is_not_a_user_name_is_refused(data, scope):
    with pytest.raises(ValueError, match="scope: .* a user name or None"):
        data.insert_keyed("Shared", [{"sensor": "a", "seq": 1}], ["k"], scope=scope)
    assert data.find("Shared") == []


def test_a_too_long_key_is_refused_by_its_own_length(data):
    with pytest.raises(rtdb.InvalidDocumentError, match=f"513 characters, at most {MAX_KEY_LENGTH}"):
        data.insert_keyed("Shared", [{"sensor": "a", "seq": 1}], ["x" * 513], scope="ana")
    [doc], [dup] = data.insert_keyed("Shared", [{"sensor": "a", "seq": 1}], ["x" * 512], scope="a" * 10_000)
    assert not dup
    assert data.insert_keyed("Shared", [{"sensor": "b", "seq": 1}], ["x" * 512], scope="a" * 10_000)[0] == [
        doc
    ]


class _MisanswerStore(SQLStore):
    """A store that answers every keyed insert with the `_id` of `self.answer` as a duplicate, as a backend whose
    index compared keys loosely (a case-insensitive collation) might."""

    answer: str = ""

    def insert_once(self, name, docs, keys=None):
        if keys and keys[0] is not None and self.answer:
            return [(self.answer, True) for _ in docs]
        return super().insert_once(name, docs, keys)


def test_a_duplicate_answer_outside_the_scope_hands_out_the_id_only(tmp_path):
    store = _MisanswerStore(f"sqlite:///{tmp_path}/rt.db")
    registry = OntologyRegistry(config_db.connect(f"sqlite:///{tmp_path}/c.db"))
    registry.create("Shared", SCHEMA, "")
    data = OntologyData(registry, store, OntologyEvents())
    try:
        [secret], _ = data.insert_keyed("Shared", [{"sensor": "ana", "seq": 1}], ["1"], scope="ana")
        [unkeyed], _ = data.insert_keyed("Shared", [{"sensor": "ana", "seq": 2}], None, scope="ana")
        store.answer = secret["_id"]
        got, dup = data.insert_keyed("Shared", [{"sensor": "bob", "seq": 1}], ["1"], scope="bob")
        assert (got, dup) == ([{"_id": secret["_id"]}], [True])
        store.answer = unkeyed["_id"]  # a row stored without a key belongs to no scope
        got, dup = data.insert_keyed("Shared", [{"sensor": "ana", "seq": 3}], ["3"], scope="ana")
        assert (got, dup) == ([{"_id": unkeyed["_id"]}], [True])
        store.answer = secret["_id"]  # in its own scope the stored instance is handed out
        got, dup = data.insert_keyed("Shared", [{"sensor": "ana", "seq": 9}], ["1"], scope="ana")
        assert dup == [True] and got[0]["sensor"] == "ana" and got[0]["seq"] == 1
    finally:
        store.close()


SCOPES = st.one_of(st.none(), st.sampled_from(["ana", "bob", "u:ana", "p:", "ana:1", "Ana"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    inserts=st.lists(
        st.lists(st.tuples(SCOPES, st.sampled_from(["1", "2", "1:ana", "u:ana:1"])), min_size=1, max_size=4),
        min_size=1,
        max_size=6,
    )
)
def test_keys_of_different_scopes_never_collide_and_one_scopes_key_is_stored_once(tmp_path_factory, inserts):
    path = tmp_path_factory.mktemp("scopes")
    store = SQLStore(f"sqlite:///{path}/rt.db")
    registry = OntologyRegistry(config_db.connect(f"sqlite:///{path}/c.db"))
    registry.create("Shared", SCHEMA, "")
    data = OntologyData(registry, store, OntologyEvents())
    try:
        first: dict[tuple[str | None, str], str] = {}
        for n, batch in enumerate(inserts):
            # one call per scope (a node inserts for one identity), in the batch's order
            for scope in dict.fromkeys(s for s, _ in batch):
                keys = [k for s, k in batch if s == scope]
                bodies = [{"sensor": repr(scope), "seq": n} for _ in keys]
                docs, dups = data.insert_keyed("Shared", bodies, keys, Writer(), scope=scope)
                for key, doc, dup in zip(keys, docs, dups, strict=True):
                    assert dup == ((scope, key) in first)
                    assert doc["sensor"] == repr(scope)  # never another scope's instance
                    first.setdefault((scope, key), doc["_id"])
                    assert doc["_id"] == first[(scope, key)]
        assert data.count("Shared") == len(first)
    finally:
        store.close()


@given(a=st.tuples(st.one_of(st.none(), st.text(min_size=1)), st.text(min_size=1)), b=st.data())
def test_the_stored_form_is_one_to_one(a, b):
    other = b.draw(st.tuples(st.one_of(st.none(), st.text(min_size=1)), st.text(min_size=1)))
    if other != a:
        assert scoped_key(*a) != scoped_key(*other)
    assert scoped_key(*a) == scoped_key(*a)
