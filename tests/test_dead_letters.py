"""The dead letters as users handle them (runtime/cluster/dead_letters.py, shared by the admin API and the editor's
Dead letters page): a letter carries the last error of its message, each user sees and handles only the letters
of flows they own (administrators all), missing, malformed and refused letters are told apart; and the page's
rows name flows and nodes in words."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import redis as redis_sync
from hypothesis import given
from hypothesis import strategies as st
from redis_server import redis_per_module  # noqa: F401 - the redis_url fixture
from test_partition_node import SEEN, Worker, flow, wait_for

from sofiaflow.editor.pages.dead_letters import PREVIEW_CHARS, letter_rows, preview, when
from sofiaflow.runtime.cluster.dead_letters import (
    DeadLetterNotFound,
    DeadLetterRefused,
    dead_lettered_at,
    discard,
    find_dead_letter,
    may_handle,
    replay,
    visible_dead_letters,
)


class Owners:
    """Flow owners as runtime.ownership answers them."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners

    def owner(self, unit: str) -> str | None:
        return self.owners.get(unit)


def test_who_may_handle_a_flows_letters():
    runtime = SimpleNamespace(ownership=Owners({"mine": "dev", "theirs": "bob"}))
    assert may_handle(runtime, "admin", "administrator", "theirs")
    assert may_handle(runtime, "admin", "administrator", "nobody's")
    assert may_handle(runtime, "dev", "developer", "mine")
    assert not may_handle(runtime, "dev", "developer", "theirs")
    assert not may_handle(runtime, "dev", "developer", "nobody's")  # ownerless flows are the administrators'
    assert may_handle(runtime, "uma", "user", "umas") is False
    assert not may_handle(runtime, None, None, "mine")
    assert not may_handle(SimpleNamespace(), "dev", "developer", "mine")  # no ownership: only administrators


@given(st.integers(min_value=0, max_value=2**45), st.integers(min_value=0, max_value=99))
def test_when_a_letter_was_dead_lettered_is_its_entry_ids_time(ms, seq):
    assert dead_lettered_at(f"tab:node:{ms}-{seq}") == ms
    assert dead_lettered_at("tab:node:x-1") is None


async def test_single_process_has_none():
    runtime = SimpleNamespace(redis=None, ownership=None)
    assert await visible_dead_letters(runtime, "admin", "administrator") == []
    with pytest.raises(DeadLetterNotFound, match="runs no cluster"):
        await replay(runtime, "admin", "administrator", "a:b:1-0")


async def test_letters_by_owner_and_refusals(redis_url):
    from redis.asyncio import Redis

    sync = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    sync.flushdb()
    fields = {
        "m": '{"payload": 1}',
        "partition": "2",
        "streamId": "2/1-0",
        "deliveries": "4",
        "error": "boom",
    }
    mine = f"mine:n1:{sync.xadd('dlq:mine:n1', fields)}"
    theirs = f"theirs:n2:{sync.xadd('dlq:theirs:n2', fields)}"
    runtime = SimpleNamespace(
        redis=Redis.from_url(redis_url, decode_responses=True),
        ownership=Owners({"mine": "dev", "theirs": "bob"}),
    )
    try:
        assert {d["id"] for d in await visible_dead_letters(runtime, "admin", "administrator")} == {
            mine,
            theirs,
        }
        own = await visible_dead_letters(runtime, "dev", "developer")
        assert [(d["id"], d["error"], d["deliveries"], d["msg"]) for d in own] == [
            (mine, "boom", 4, {"payload": 1})
        ]
        with pytest.raises(DeadLetterRefused, match="does not own"):
            await discard(runtime, "dev", "developer", theirs)
        with pytest.raises(DeadLetterRefused):
            await replay(runtime, "dev", "developer", theirs)
        assert sync.xlen("dlq:theirs:n2") == 1  # refused: still there
        with pytest.raises(ValueError, match="expected <flow>:<node>:<entry id>"):
            await find_dead_letter(runtime, "admin", "administrator", "nonsense")
        found, stream_id = await replay(runtime, "dev", "developer", mine)
        assert found["partition"] == 2 and stream_id.startswith("2/")
        assert sync.xrange("part:mine:n1:2")[0][1] == {"m": '{"payload": 1}'}
        with pytest.raises(DeadLetterNotFound, match="does not exist"):
            await replay(runtime, "dev", "developer", mine)
        assert (await discard(runtime, "admin", "administrator", theirs))["flow"] == "theirs"
        assert await visible_dead_letters(runtime, "admin", "administrator") == []
    finally:
        await runtime.redis.aclose()
        sync.close()


async def test_a_letter_carries_the_last_error_of_its_message(redis_url):
    sync = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    sync.flushdb()
    sync.close()
    SEEN.clear()
    a = await Worker(redis_url, "wa", flow(partitions=1, maxDeliveries=2)).start()
    try:
        await wait_for(lambda: len(a.group().held) == 1, 10, "the partition held")
        a.tester.inject("part", {"device": "d1", "payload": {"seq": 0, "poison": True}})
        a.tester.inject("part", {"device": "d1", "payload": {"seq": 1}})
        await wait_for(lambda: a.group().stats.dead == 1, 15, "the poison message dead-lettered")
        await wait_for(lambda: len(SEEN["wa"]) == 1, 15, "the next message processed")
        runtime = SimpleNamespace(redis=a.redis, ownership=None)
        (letter,) = await visible_dead_letters(runtime, "admin", "administrator")
        assert "poisoned" in letter["error"] and letter["deliveries"] == 2
        assert a.group().last_errors == {}  # what is dead-lettered or done is forgotten
    finally:
        await a.stop()


def test_rows_name_flows_nodes_and_keys_in_words():
    flows = [
        {"id": "t1", "type": "tab", "label": "Meters"},
        {"id": "p1", "type": "partition", "z": "t1", "name": "by meter"},
        {"id": "p2", "type": "partition", "z": "t1"},
    ]
    msg = {"payload": {"device": "m2", "text": "x" * 300}, "topic": "m"}
    letters = [
        {
            "id": "t1:p1:1765038002000-0",
            "flow": "t1",
            "node": "p1",
            "partition": 3,
            "deliveries": 5,
            "msg": msg,
        },
        {
            "id": "t1:p2:1765038002000-1",
            "flow": "t1",
            "node": "p2",
            "partition": 0,
            "deliveries": 1,
            "msg": msg,
        },
        {"id": "gone:p9:1-0", "flow": "gone", "node": "p9", "partition": 0, "deliveries": 2, "error": "x"},
    ]
    engine = SimpleNamespace(nodes={"p1": SimpleNamespace(key_of=lambda m: m["payload"]["device"])})
    rows = letter_rows(letters, flows, engine)
    assert [(r["flow"], r["nodeName"], r["key"]) for r in rows] == [
        ("Meters", "by meter", "m2"),
        ("Meters", "partition", "–"),
        ("gone (no longer deployed)", "partition p9 (removed)", "–"),
    ]
    assert rows[0]["at"] == when(1765038002000) == "2025-12-06 16:20:02 UTC"
    assert rows[0]["error"] is None and rows[2]["error"] == "x"
    assert len(rows[0]["preview"]) == PREVIEW_CHARS and rows[0]["preview"].endswith("…")
    assert json.loads(rows[0]["message"]) == msg


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_a_preview_is_short_and_the_start_of_the_json(value):
    text = preview(value)
    full = json.dumps(value, ensure_ascii=False)
    assert len(text) <= PREVIEW_CHARS
    assert text == full or (text.endswith("…") and full.startswith(text[:-1]))
