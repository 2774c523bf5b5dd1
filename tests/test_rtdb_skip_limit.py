"""skip and limit bounds on every real-time DB backend (SQLite, PostgreSQL, the MongoDB wire server): the largest
allowed values work, larger ones are a clear InvalidFilterError naming the parameter and its bounds."""

from __future__ import annotations

import pytest
from test_rtdb_backends import _servers, _stores, coll, store  # noqa: F401 - fixtures

from sofiaflow.runtime.data.rtdb import InvalidFilterError
from sofiaflow.runtime.data.rtdb.base import MAX_SKIP_LIMIT


def test_the_largest_skip_and_limit_work(store, coll):  # noqa: F811
    store.insert(coll, [{"a": 1}])
    assert store.find(coll, {}, skip=MAX_SKIP_LIMIT, limit=MAX_SKIP_LIMIT) == []
    assert len(store.find(coll, {}, skip=0, limit=MAX_SKIP_LIMIT)) == 1


@pytest.mark.parametrize(
    ("skip", "limit", "named"),
    [
        (2**63, 0, "skip"),
        (MAX_SKIP_LIMIT + 1, 1, "skip"),
        (0, 2**63, "limit"),
        (0, 10**20, "limit"),
        (-1, 0, "skip"),
    ],
)
def test_out_of_bounds_skip_and_limit_are_refused(store, coll, skip, limit, named):  # noqa: F811
    with pytest.raises(InvalidFilterError, match=rf"{named} must be an integer from 0 to {MAX_SKIP_LIMIT}"):
        store.find(coll, {}, skip=skip, limit=limit)
