"""DeviceRegistry: devices and tokens in the config DB, validation, authentication, MQTT topic rights."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.security.devices import (
    Device,
    DeviceExistsError,
    DeviceNotFoundError,
    DeviceRegistry,
    DeviceValidationError,
    TokenNotFoundError,
    device_tokens_table,
    devices_table,
)


@pytest.fixture
def db(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'devices.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def reg(db) -> DeviceRegistry:
    return DeviceRegistry(db)


def dev(topics: list[str], name: str = "s1") -> Device:
    return Device(name, True, topics, {}, datetime.now(UTC))


# ----- devices -------------------------------------------------------------------------------------
def test_create_get_list_and_token_shown_once(reg, db):
    device, token = reg.create("s1", {"BasicSensor": "insert"}, ["sensors/{device}/#"])
    token_id, secret = token.split(".", 1)
    assert device.ontologies == {"BasicSensor": "INSERT"} and device.enabled
    assert len(secret) >= 40
    got = reg.get("s1")
    assert got.topics == ["sensors/{device}/#"] and [t.id for t in got.tokens] == [token_id]
    assert got.tokens[0].active and got.last_seen is None
    assert [d.name for d in reg.list()] == ["s1"]
    with db.connect() as conn:
        stored = conn.execute(select(device_tokens_table.c.hash)).scalar_one()
    assert secret not in stored and stored.startswith("sha256$")
    assert "token" not in str(got.as_dict()).replace("tokens", "")


def test_duplicate_and_missing(reg):
    reg.create("s1")
    with pytest.raises(DeviceExistsError, match="'s1' exists"):
        reg.create("s1")
    with pytest.raises(DeviceNotFoundError):
        reg.get("nope")
    with pytest.raises(DeviceNotFoundError):
        reg.delete("nope")
    with pytest.raises(DeviceNotFoundError):
        reg.add_token("nope")
    with pytest.raises(TokenNotFoundError):
        reg.revoke("s1", "0000")
    with pytest.raises(DeviceNotFoundError):
        reg.revoke("nope", "0000")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a" * 65}, "name"),
        ({"name": "bad name"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": ".."}, "name"),
        ({"name": 5}, "name"),
        ({"name": "ok", "ontologies": {"X": "WRITE"}}, "ontologies.X"),
        ({"name": "ok", "ontologies": ["X"]}, "ontologies"),
        ({"name": "ok", "topics": "a/b"}, "topics"),
        ({"name": "ok", "topics": ["a/b", "a/#/b"]}, "topics[1]"),
        ({"name": "ok", "topics": ["a+"]}, "topics[0]"),
        ({"name": "ok", "topics": [""]}, "topics[0]"),
        ({"name": "ok", "topics": ["x/{devise}"]}, "topics[0]"),
        ({"name": "ok", "topics": [3]}, "topics[0]"),
    ],
)
def test_validation_errors_name_the_field(reg, kwargs, field):
    with pytest.raises(DeviceValidationError) as info:
        reg.create(**kwargs)
    assert info.value.field == field and str(info.value).startswith(field)
    assert isinstance(info.value, ValueError)


def test_update_and_delete_notify_listeners(reg):
    seen: list = []
    remove = reg.on_revoke(lambda name, tid: seen.append((name, tid)))
    reg.create("s1", topics=["a/#"])
    device = reg.update("s1", enabled=False, topics=["b/+"])
    assert not device.enabled and device.topics == ["b/+"]
    assert seen == [("s1", None)]
    with pytest.raises(DeviceValidationError):
        reg.update("s1", enabled="no")
    reg.delete("s1")
    assert seen[-1] == ("s1", None) and reg.list() == []
    remove()
    reg.create("s2")
    reg.delete("s2")
    assert len(seen) == 2


def test_listener_failure_does_not_undo_revocation(reg):
    reg.on_revoke(lambda *_: 1 / 0)
    _, token = reg.create("s1")
    reg.revoke("s1", token.split(".")[0])
    with pytest.raises(AuthError, match="revoked"):
        reg.authenticate("s1", token)


# ----- tokens ---------------------------------------------------------------------------------------
def test_authenticate_and_last_seen(reg, db):
    _, token = reg.create("s1", topics=["t/{device}"])
    device = reg.authenticate("s1", token)
    assert device.name == "s1" and device.last_seen is not None and device.tokens is None
    assert device.filters == (("t", "s1"),)
    assert reg.authenticate_token(token).name == "s1"
    assert reg.get("s1").last_seen is not None
    # last_seen is written at most once a minute
    old = datetime.now(UTC) - timedelta(minutes=5)
    with db.begin() as conn:
        conn.execute(update(devices_table).values(last_seen=old))
    reg.authenticate("s1", token)
    assert reg.get("s1").last_seen > old


@pytest.mark.parametrize("bad", ["", "nodot", ".x", "x.", "ffff.wrong", None, 12])
def test_malformed_or_wrong_tokens_refused(reg, bad):
    reg.create("s1")
    with pytest.raises(AuthError):
        reg.authenticate("s1", bad)


def test_token_of_another_device_or_wrong_secret_refused(reg):
    _, t1 = reg.create("s1")
    reg.create("s2")
    with pytest.raises(AuthError, match="invalid device name or token"):
        reg.authenticate("s2", t1)
    tid, secret = t1.split(".", 1)
    with pytest.raises(AuthError, match="invalid device name or token"):
        reg.authenticate("s1", f"{tid}.{secret[:-1]}x" if secret[-1] != "x" else f"{tid}.{secret[:-1]}y")


def test_disabled_device_refused(reg):
    _, token = reg.create("s1", enabled=False)
    with pytest.raises(AuthError, match="disabled"):
        reg.authenticate("s1", token)
    reg.update("s1", enabled=True)
    assert reg.authenticate("s1", token).enabled


def test_add_revoke_rotate(reg):
    seen: list = []
    reg.on_revoke(lambda name, tid: seen.append((name, tid)))
    _, t1 = reg.create("s1")
    id2, t2 = reg.add_token("s1")
    assert reg.authenticate("s1", t2).name == "s1"
    id1 = t1.split(".")[0]
    reg.revoke("s1", id1)
    reg.revoke("s1", id1)  # already revoked: no second notice
    assert seen == [("s1", id1)]
    with pytest.raises(AuthError, match="revoked"):
        reg.authenticate("s1", t1)
    id3, t3 = reg.add_token("s1")
    assert reg.revoke_all("s1", keep=id3) == [id2]
    assert seen[-1] == ("s1", id2)
    states = {t.id: t.active for t in reg.get("s1").tokens}
    assert states == {id1: False, id2: False, id3: True}
    assert reg.get("s1").tokens[0].revoked_at is not None
    assert reg.authenticate("s1", t3)


# ----- topic rights ---------------------------------------------------------------------------------
def test_publish_and_subscribe_rights():
    d = dev(["sensors/{device}/#", "cmd/+/{device}", "exact/topic"])
    assert DeviceRegistry.may_publish(d, "sensors/s1/temp")
    assert DeviceRegistry.may_publish(d, "sensors/s1")  # `#` also matches its parent level
    assert not DeviceRegistry.may_publish(d, "sensors/s2/temp")
    assert not DeviceRegistry.may_publish(d, "sensors/s1/+")  # wildcards are not topic names
    assert DeviceRegistry.may_publish(d, "cmd/x/s1") and not DeviceRegistry.may_publish(d, "cmd/x/y/s1")
    assert DeviceRegistry.may_publish(d, "exact/topic") and not DeviceRegistry.may_publish(d, "exact")
    assert DeviceRegistry.may_subscribe(d, "sensors/s1/+")
    assert DeviceRegistry.may_subscribe(d, "sensors/s1/#")
    assert DeviceRegistry.may_subscribe(d, "cmd/+/s1")
    assert not DeviceRegistry.may_subscribe(d, "sensors/+/temp")
    assert not DeviceRegistry.may_subscribe(d, "sensors/#")
    assert not DeviceRegistry.may_subscribe(d, "#")
    assert not DeviceRegistry.may_subscribe(d, "cmd/#")
    assert not DeviceRegistry.may_subscribe(d, "exact/+")
    assert not DeviceRegistry.may_subscribe(d, "bad/#/filter")
    d.enabled = False
    assert not DeviceRegistry.may_publish(d, "sensors/s1/temp")
    assert not DeviceRegistry.may_subscribe(d, "sensors/s1/temp")


def test_dollar_topics_not_matched_by_leading_wildcards():
    assert (
        not mt.matches("#", "$SYS/x") and not mt.matches("+/x", "$SYS/x") and mt.matches("$SYS/#", "$SYS/x")
    )
    assert not mt.covers("#", "$SYS/#") and mt.covers("$SYS/#", "$SYS/+")
    assert not DeviceRegistry.may_publish(dev(["#"]), "$SYS/broker")


def test_filter_validation():
    for good in ["a", "/", "a//b", "+", "#", "a/+/b/#", "+/+"]:
        assert mt.validate_filter(good) == good
    for bad in ["", "a#", "a/#/b", "a+/b", "##", "a\x00b"]:
        with pytest.raises(mt.TopicError):
            mt.validate_filter(bad)
    with pytest.raises(mt.TopicError):
        mt.validate_topic("a/+")


# ----- properties: against a regular-expression reference --------------------------------------------
LEVEL = st.sampled_from(["a", "b", "s1", "", "$x", "+", "#"])
NAME_LEVEL = st.sampled_from(["a", "b", "s1", "", "$x"])


def _filters() -> st.SearchStrategy[str]:
    def valid(parts: list[str]) -> bool:
        return all(p != "#" for p in parts[:-1]) and parts != [""]

    return st.lists(LEVEL, min_size=1, max_size=4).filter(valid).map("/".join)


TOPICS = st.lists(NAME_LEVEL, min_size=1, max_size=5).map("/".join).filter(bool)


def reference_match(topic_filter: str, topic: str) -> bool:
    """MQTT 3.1.1 matching written as a regular expression, independently of sofiaflow.runtime.mqtt.topics."""
    parts = topic_filter.split("/")
    tail = ""
    if parts[-1] == "#":
        parts = parts[:-1]
        tail = "(/.*)?" if parts else ".*"
    body = "/".join("[^/]*" if p == "+" else re.escape(p) for p in parts)
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    return re.fullmatch(body + tail, topic) is not None


@settings(max_examples=400, deadline=None)
@given(_filters(), TOPICS)
def test_may_publish_is_exactly_filter_matching(allowed, topic):
    assert DeviceRegistry.may_publish(dev([allowed]), topic) == reference_match(allowed, topic)


@settings(max_examples=400, deadline=None)
@given(_filters(), _filters(), TOPICS)
def test_a_covered_subscription_never_reaches_outside_the_allowed_filter(allowed, requested, topic):
    device = dev([allowed])
    if DeviceRegistry.may_subscribe(device, requested) and reference_match(requested, topic):
        assert reference_match(allowed, topic)
        assert DeviceRegistry.may_publish(device, topic)


@settings(max_examples=200, deadline=None)
@given(_filters())
def test_a_filter_covers_itself_and_its_topics(allowed):
    device = dev([allowed])
    assert DeviceRegistry.may_subscribe(device, allowed)
    concrete = allowed.replace("+", "a").replace("#", "b")
    assert DeviceRegistry.may_publish(device, concrete) and reference_match(allowed, concrete)
