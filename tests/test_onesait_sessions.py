"""Digital-client sessions: random keys, renewal by the same client, idle expiry reset by each use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.runtime.onesait.sessions import SessionStore
from sofiaflow.runtime.onesait.ssap import SsapError


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _client(name):
    return SimpleNamespace(name=name)


def test_keys_are_random_and_renewal_keeps_the_key_of_the_same_client():
    clock = Clock()
    store = SessionStore(10, clock)
    a = store.open(_client("c1"), "i1", "t1")
    b = store.open(_client("c1"), "i1", "t1")
    assert a.key != b.key and len(a.key) == 36
    assert store.open(_client("c1"), "i2", "t1", renew=a.key) is a and a.instance == "i2"
    assert (
        store.open(_client("c2"), None, "t9", renew=a.key).key != a.key
    )  # another client's key is not taken
    clock.t = 11
    assert store.open(_client("c1"), None, "t1", renew=a.key).key != a.key  # an expired key is not renewed


def test_expiry_close_and_drop():
    clock = Clock()
    store = SessionStore(5, clock)
    s = store.open(_client("c1"), None, "t1")
    other = store.open(_client("c1"), None, "t2")
    assert store.drop_client("c1", "t2") == 1
    with pytest.raises(SsapError) as exc:
        store.use(other.key)
    assert exc.value.code == "AUTENTICATION"
    clock.t = 5
    assert store.use(s.key) is s
    clock.t = 10.5
    with pytest.raises(SsapError, match="expired"):
        store.use(s.key)
    with pytest.raises(SsapError, match="unknown"):
        store.use(s.key)
    with pytest.raises(SsapError):
        store.use(None)
    assert store.close("nope") is None
    with pytest.raises(ValueError):
        SessionStore(0)


@given(gaps=st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=20))
def test_a_session_lives_exactly_while_no_gap_exceeds_the_idle_time(gaps):
    clock = Clock()
    store = SessionStore(10, clock)
    key = store.open(_client("c"), None, "t").key
    alive = True
    for gap in gaps:
        before = clock.t
        clock.t += gap
        idle = clock.t - before  # the gap as the clock sees it (float sums round)
        try:
            store.use(key)
            assert alive and idle <= 10
        except SsapError:
            assert not alive or idle > 10
            alive = False
    assert (store.peek(key) is not None) == alive
