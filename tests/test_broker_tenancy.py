"""Tenants apart on the embedded broker: devices of different owners hold no overlapping topic filters
(exact overlap test, checked with hypothesis against the broker's topic matcher), and in-process subscribers
of a developer's flow hear no device of another owner."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.security.devices import TopicClashError
from tests.mqtt_helpers import client, until

LEVELS = ["a", "b", "x", "", "$s"]
_level = st.sampled_from(LEVELS)


@st.composite
def filters(draw) -> str:
    levels = draw(st.lists(st.sampled_from([*LEVELS, "+"]), min_size=1, max_size=4))
    if draw(st.booleans()):
        levels = [*levels[:3], "#"] if draw(st.booleans()) else ["#"]
    return "/".join(levels)


topics = st.lists(_level, min_size=1, max_size=5).map("/".join)


@settings(max_examples=2000, deadline=None)
@given(filters().filter(bool), filters().filter(bool), topics.filter(bool))
def test_filters_overlap_exactly_when_some_topic_matches_both(one, other, topic):
    mt.validate_filter(one)
    mt.validate_filter(other)
    witness = mt.overlap_witness(one, other)
    assert mt.overlaps(one, other) == (witness is not None) == mt.overlaps(other, one)
    if witness is not None:  # the topic offered matches both filters
        mt.validate_topic(witness)
        assert mt.matches(one, witness) and mt.matches(other, witness)
    if mt.matches(one, topic) and mt.matches(other, topic):  # any common topic means an overlap
        assert witness is not None


@pytest.mark.parametrize(
    ("one", "other", "expected"),
    [
        ("#", "$SYS/x", False),
        ("+/a", "$s/a", False),
        ("a/#", "a", True),
        ("a/+", "a", False),
        ("+/+", "a/#", True),
        ("a/b", "a/c", False),
        ("#", "#", True),
        ("a/+/c", "+/b/#", True),
    ],
)
def test_overlap_examples(one, other, expected):
    assert mt.overlaps(one, other) is expected


async def test_a_device_may_not_take_topics_of_another_owners_device(env):
    registry, broker = env
    _, alice_token = registry.create("thermo", topics=["home/{device}/#"], owner="alice")
    with pytest.raises(TopicClashError) as refused:
        registry.create("spy", topics=["sensors/#", "#"], owner="bob")
    assert refused.value.field == "topics[1]" and "'#'" in str(refused.value)
    assert "thermo" not in str(refused.value) and "home" not in str(refused.value)  # nothing of alice's shown
    with pytest.raises(TopicClashError):
        registry.create("spy2", topics=["+/thermo/temp"], owner="bob")
    with pytest.raises(TopicClashError):  # neither may an administrator's (ownerless) device
        registry.create("admin-box", topics=["home/+/temp"])
    # the same owner may overlap itself; other owners keep to their own topics
    registry.create("thermo2", topics=["home/#"], owner="alice")
    _, bob_token = registry.create("bob1", topics=["bob/#"], owner="bob")
    with pytest.raises(TopicClashError):  # a change is checked too: topics, and owner
        registry.update("bob1", topics=["bob/#", "home/thermo/temp"])
    with pytest.raises(TopicClashError):
        registry.update("thermo2", owner="bob")
    assert registry.get("bob1").topics == ["bob/#"] and registry.get("thermo2").owner == "alice"
    async with (
        client(broker.port, "bob1", bob_token) as bob,
        client(broker.port, "thermo", alice_token) as alice,
    ):
        assert await bob.connect() == "Success" and await alice.connect() == "Success"
        assert await bob.subscribe("#") == [0x80]
        await alice.publish("home/thermo/temp", b"21", qos=1)
        await bob.nothing(0.3)


async def test_a_developers_in_process_subscriber_hears_no_device_of_another_owner(env):
    registry, broker = env
    _, alice_token = registry.create("thermo", topics=["home/{device}/#"], owner="alice")
    _, bob_token = registry.create("bobcam", topics=["cams/{device}/#"], owner="bob")
    bob_flow, admin_flow = [], []
    broker.subscribe(
        "#", lambda *m: bob_flow.append((m[0], broker.sender, broker.sender_owner)), tenant="bob"
    )
    broker.subscribe("#", lambda *m: admin_flow.append((m[0], broker.sender)))
    async with (
        client(broker.port, "thermo", alice_token) as alice,
        client(broker.port, "bobcam", bob_token) as bob,
    ):
        assert await alice.connect() == "Success" and await bob.connect() == "Success"
        await alice.publish("home/thermo/temp", b"21", qos=1, retain=True)
        await bob.publish("cams/bobcam/frame", b"x", qos=1)
        await broker.publish("status/all", b"up")  # the platform's (or an administrator's flow's): not bob's
        await broker.publish("status/bob", b"up", origin="bob")  # bob's flow's
        await until(lambda: len(admin_flow) == 4)
    assert sorted(admin_flow) == [
        ("cams/bobcam/frame", "bobcam"),
        ("home/thermo/temp", "thermo"),
        ("status/all", None),
        ("status/bob", None),
    ]
    assert sorted(bob_flow) == [("cams/bobcam/frame", "bobcam", "bob"), ("status/bob", None, None)]
    late_bob, late_admin = [], []  # retained messages replayed on subscribe follow the same rule
    broker.subscribe("home/#", lambda *m: late_bob.append(m), tenant="bob")
    broker.subscribe("home/#", lambda *m: late_admin.append((m[0], broker.sender)))
    await until(lambda: late_admin)
    assert late_admin == [("home/thermo/temp", "thermo")] and late_bob == []


@pytest.fixture
async def env(tmp_path):
    from tests.mqtt_helpers import broker_env

    async with broker_env(tmp_path) as pair:
        yield pair
