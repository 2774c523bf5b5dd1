"""The device topic index (runtime/security/device_topics.py) against a real DeviceRegistry: it names a device of
another owner exactly when one of that device's filters matches the topic (the broker's matcher), and sees
devices created, changed and deleted at once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.security.device_topics import index_of
from sofiaflow.runtime.security.devices import DeviceRegistry, expanded_filters

LEVELS = ["a", "b", "{device}", "$s"]
_counter = itertools.count()


@st.composite
def a_filter(draw) -> str:
    levels = draw(st.lists(st.sampled_from([*LEVELS, "+"]), min_size=1, max_size=3))
    if draw(st.booleans()):
        levels = [*levels[:2], "#"]
    return "/".join(levels)


topics = st.lists(st.sampled_from(["a", "b", "d0", "d1", "$s"]), min_size=1, max_size=4).map("/".join)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    db = connect(f"sqlite:///{tmp_path_factory.mktemp('index') / 'devices.db'}")
    yield DeviceRegistry(db)
    db.dispose()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(a_filter(), min_size=1, max_size=2), st.sampled_from(["ana", "bob", None])),
        min_size=1,
        max_size=3,
    ),
    st.lists(topics, min_size=1, max_size=5),
    st.sampled_from(["ana", "bob"]),
)
def test_names_a_foreign_device_exactly_when_its_filter_matches(registry, devices, probes, tenant):
    for old in registry.list():
        registry.delete(old.name)
    index = index_of(registry)
    held: list[tuple[str, str, str | None]] = []
    for topics_of, owner in devices:
        name = f"d{next(_counter) % 2}"
        try:
            registry.create(name, topics=topics_of, owner=owner)
        except Exception:  # noqa: BLE001 - a clash with another owner, or the name taken: not created
            continue
        held += [(name, f, owner) for f in expanded_filters(name, topics_of)]
    for topic in probes:
        found = index.foreign_holder(topic, tenant)
        expected = [h for h in held if h[2] != tenant and mt.matches(h[1], topic)]
        assert (found is not None) == bool(expected)
        if found is not None:
            assert found in expected
        assert index.foreign_holder(topic, tenant) == found  # a kept answer is the same answer


def test_sees_devices_created_changed_and_deleted_at_once(registry):
    for old in registry.list():
        registry.delete(old.name)
    index = index_of(registry)
    assert index.foreign_holder("plant/1/cmd", "bob") is None
    registry.create("pump", topics=["plant/+/cmd"], owner="ana")
    assert index.foreign_holder("plant/1/cmd", "bob") == ("pump", "plant/+/cmd", "ana")
    assert index.foreign_holder("plant/1/cmd", "ana") is None  # her own device
    registry.update("pump", topics=["tank/#"])
    assert index.foreign_holder("plant/1/cmd", "bob") is None
    assert index.foreign_holder("tank/level", "bob") == ("pump", "tank/#", "ana")
    registry.update("pump", owner="bob")
    assert index.foreign_holder("tank/level", "bob") is None
    registry.delete("pump")
    assert index.foreign_holder("tank/level", "ana") is None
