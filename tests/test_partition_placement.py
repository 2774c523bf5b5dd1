"""Partition placement: a stable hash of keys onto partitions, and rendezvous hashing of partitions onto workers
(a worker joining takes about its share and nothing moves between the others; a worker leaving gives up only
its own)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.cluster.dead_letters import parse_dead_letter_id
from sofiaflow.runtime.cluster.partition_stream import decode_message, encode_message
from sofiaflow.runtime.cluster.placement import owner_of, partition_of, placement

worker_ids = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789:-", min_size=1, max_size=12),
    min_size=3,
    max_size=3,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(
    workers=worker_ids,
    newcomer=st.text("ABCDEFGHIJ0123456789", min_size=1, max_size=8),
    prefix=st.text(max_size=10),
)
def test_a_fourth_worker_takes_about_a_quarter_and_nothing_moves_between_the_others(
    workers, newcomer, prefix
):
    assume(newcomer not in workers)
    before = placement(prefix, 256, workers)
    after = placement(prefix, 256, [*workers, newcomer])
    moved = [p for p in range(256) if before[p] != after[p]]
    assert all(after[p] == newcomer for p in moved)  # only to the newcomer, never between the old three
    assert 256 * 0.15 <= len(moved) <= 256 * 0.35  # about a quarter (binomial, n=256, p=1/4: ±4σ)


@settings(max_examples=60, deadline=None)
@given(workers=worker_ids)
def test_a_worker_leaving_gives_up_only_its_own_partitions(workers):
    before = placement("f:n", 128, workers)
    gone = workers[0]
    after = placement("f:n", 128, workers[1:])
    for p in range(128):
        if before[p] != gone:
            assert after[p] == before[p]
        else:
            assert after[p] in workers[1:]


def test_placement_does_not_depend_on_the_order_workers_are_listed_in():
    workers = ["w1", "w2", "w3", "w4"]
    assert placement("x", 64, workers) == placement("x", 64, list(reversed(workers)))
    assert owner_of("x:1", []) is None


@given(key=st.one_of(st.text(), st.integers(), st.lists(st.integers())), n=st.integers(1, 4096))
def test_partition_of_is_in_range_and_stable(key, n):
    p = partition_of(key, n)
    assert 0 <= p < n
    assert partition_of(key, n) == p


def test_partition_of_is_the_same_in_another_process():
    """No per-process salt (Python's hash() of str is salted): every worker puts a key in the same partition."""
    keys = ["device-1", "device-2", "sensor/42", "ä"]
    code = (
        "from sofiaflow.runtime.cluster.placement import partition_of;"
        f"print([partition_of(k, 64) for k in {keys!r}])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([partition_of(k, 64) for k in keys])


@given(
    msg=st.dictionaries(
        st.text(max_size=5).filter(lambda k: k not in ("req", "res")),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
            max_leaves=8,
        ),
        max_size=5,
    )
)
def test_messages_cross_the_stream_unchanged(msg):
    assert decode_message(encode_message(msg)) == msg


def test_live_request_objects_are_not_written_and_other_objects_are_refused():
    assert decode_message(encode_message({"payload": 1, "req": object(), "res": object()})) == {"payload": 1}
    with pytest.raises(ValueError, match="cannot be written to a partition stream"):
        encode_message({"payload": object()})


def test_dead_letter_ids():
    assert parse_dead_letter_id("tab1:node1:1700000000000-3") == ("tab1", "node1", "1700000000000-3")
    with pytest.raises(ValueError, match="expected <flow>:<node>:<entry id>"):
        parse_dead_letter_id("nonsense")
