"""TopicIndex (runtime/mqtt/topics.py), the embedded broker's subscription index, against match_levels."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.mqtt import topics as mt

LEVEL = st.sampled_from(["a", "b", "", "$SYS", "$x", "c d"])
TOPIC = st.lists(LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(LEVEL, st.just("+")), min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


def brute(filters_: set[str], topic: str) -> set[str]:
    return {f for f in filters_ if mt.matches(f, topic)}


@settings(max_examples=400, deadline=None)
@given(st.sets(filters(), max_size=12), st.lists(TOPIC, min_size=1, max_size=8))
def test_match_finds_exactly_the_matching_filters(subscribed: set[str], topics: list[str]) -> None:
    index = mt.TopicIndex(subscribed)
    assert len(index) == len(subscribed)
    for topic in topics:
        found = index.match(topic)
        assert len(found) == len(set(found)), f"a filter listed twice for {topic!r}: {found}"
        assert set(found) == brute(subscribed, topic), topic


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), filters()), max_size=30), st.lists(TOPIC, min_size=1, max_size=6))
def test_adds_and_discards_keep_the_index_exact(steps: list[tuple[bool, str]], topics: list[str]) -> None:
    index, model = mt.TopicIndex(), set()
    for add, topic_filter in steps:
        if add:
            index.add(topic_filter)
            model.add(topic_filter)
        else:
            index.discard(topic_filter)
            model.discard(topic_filter)
        assert len(index) == len(model)
    for topic in topics:
        assert set(index.match(topic)) == brute(model, topic)


def test_dollar_topics_and_parent_level() -> None:
    index = mt.TopicIndex(["#", "+/x", "$SYS/#", "a/#", "a/+", "a"])
    assert sorted(index.match("$SYS/x")) == ["$SYS/#"]
    assert sorted(index.match("a")) == ["#", "a", "a/#"]
    assert sorted(index.match("a/x")) == ["#", "+/x", "a/#", "a/+"]
    index.discard("a/#")
    index.discard("never/added")
    assert sorted(index.match("a")) == ["#", "a"]


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="+#\x00"), min_size=1, max_size=300
    ),
    st.binary(max_size=20_000),
)
def test_qos0_publish_bytes_are_amqtts_encoding(topic: str, payload: bytes) -> None:
    from amqtt.mqtt.publish import PublishPacket

    from sofiaflow.runtime.mqtt.broker import publish_packet_size, qos0_publish

    expected = bytes(PublishPacket.build(topic, payload, None, False, 0, False).to_bytes())
    assert qos0_publish(topic, payload) == expected
    assert len(expected) == publish_packet_size(topic, len(payload), 0)
