"""The embedded broker's per-message topic checks, remembered per session: always what the device record says now."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from types import SimpleNamespace

from amqtt.contexts import Action
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.mqtt.broker import DEVICE, READS, TOPIC_CHECK_CACHE, TOPIC_CHECKS, DeviceTopicPlugin
from sofiaflow.runtime.security.devices import Device, may_publish

TOPICS = ["a/b", "a/c", "b/b", "sensor/1/t", "sensor/2/t", "x"]
FILTERS = ["a/#", "a/b", "b/+", "sensor/+/t", "sensor/1/#", "x"]


def device(name: str, topics: list[str], enabled: bool = True) -> Device:
    return Device(name, enabled, topics, {}, datetime.now(UTC))


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("check"), st.sampled_from(TOPICS), st.sampled_from([Action.PUBLISH, Action.RECEIVE])
        ),
        st.tuples(st.just("enable"), st.booleans()),
        st.tuples(st.just("replace"), st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3)),
        st.tuples(st.just("reads"), st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FILTERS), min_size=1, max_size=3), steps)
def test_remembered_checks_follow_the_device_record(topics, script):
    session = SimpleNamespace(attributes={DEVICE: device("d", topics)})
    for step in script:
        attributes = session.attributes
        if step[0] == "enable":
            attributes[DEVICE].enabled = step[1]  # the record changed in place
        elif step[0] == "replace":
            attributes[DEVICE] = device("d", step[1])  # a new record (topics edited)
        elif step[0] == "reads":
            attributes[READS] = device("d", step[1])
        else:
            _, topic, action = step
            current = (
                attributes[DEVICE] if action == Action.PUBLISH else attributes.get(READS, attributes[DEVICE])
            )
            assert DeviceTopicPlugin.check(session, topic, action) == may_publish(current, topic)


def test_a_device_refused_once_its_record_is_disabled_or_its_topics_change():
    session = SimpleNamespace(attributes={DEVICE: device("d", ["a/#"])})
    assert DeviceTopicPlugin.check(session, "a/b", Action.PUBLISH)
    assert DeviceTopicPlugin.check(session, "a/b", Action.PUBLISH)  # remembered
    session.attributes[DEVICE].enabled = False
    assert not DeviceTopicPlugin.check(session, "a/b", Action.PUBLISH)
    session.attributes[DEVICE] = dataclasses.replace(session.attributes[DEVICE], enabled=True, topics=["b/#"])
    assert not DeviceTopicPlugin.check(session, "a/b", Action.PUBLISH)
    assert DeviceTopicPlugin.check(session, "b/b", Action.PUBLISH)
    assert not DeviceTopicPlugin.check(session, "b/+", Action.PUBLISH)  # wildcards are never topic names


def test_the_remembered_checks_are_bounded():
    session = SimpleNamespace(attributes={DEVICE: device("d", ["t/#"])})
    for i in range(TOPIC_CHECK_CACHE * 3):
        assert DeviceTopicPlugin.check(session, f"t/{i}", Action.PUBLISH)
        assert len(session.attributes[TOPIC_CHECKS]) <= TOPIC_CHECK_CACHE


def _valid_publish_reference(topic: str) -> bool:
    """Node-RED's check written out: a non-empty name of at most 65535 bytes, no NUL, wildcard or control."""
    return (
        bool(topic)
        and len(topic.encode("utf-8")) <= 65535
        and not any(c in "+#\b\f\n\r\t\v\0" for c in topic)
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="ab/+#\t\n\0é ", max_size=8), min_size=1, max_size=10))
def test_topic_names_checked_once_answer_as_checked_every_time(topics):
    for topic in topics + topics:  # the second time from what was remembered
        assert mt.valid_publish(topic) == _valid_publish_reference(topic)
        try:
            mt.validate_topic(topic)
        except mt.TopicError:
            valid = False
        else:
            valid = True
        assert valid == (bool(topic) and "+" not in topic and "#" not in topic and "\0" not in topic)


def test_the_remembered_topic_names_are_bounded():
    for i in range(mt.VALID_TOPICS_KEPT + 10):
        mt.validate_topic(f"t/{i}")
    assert len(mt._VALID_TOPICS) <= mt.VALID_TOPICS_KEPT
    assert mt.valid_publish("t/3") and not mt.valid_publish("t/+")
