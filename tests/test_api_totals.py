"""The totals of API Manager queries: counted once per filter and freshness period, forgotten on the API Manager's own
writes to the ontology, and not counted at all on a last page."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.api_manager import operations
from sofiaflow.runtime.api_manager.model import EndpointSpec, endpoint_spec
from sofiaflow.runtime.api_manager.operations import TOTAL_TTL, Totals


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Data:
    """An ontology of documents {"zone": z}; counts how often `count` runs."""

    def __init__(self, zones: list[str]) -> None:
        self.docs = [{"_id": str(i), "zone": z} for i, z in enumerate(zones)]
        self.counted = 0

    def _match(self, flt: dict) -> list[dict]:
        return [d for d in self.docs if all(d.get(k) == v for k, v in flt.items())]

    def find(self, _ontology, flt, _projection=None, _sort=None, skip=0, limit=0) -> list[dict]:
        found = self._match(flt or {})[skip:]
        return found[:limit] if limit else found

    def count(self, _ontology, flt) -> int:
        self.counted += 1
        return len(self._match(flt or {}))

    def insert(self, _ontology, bodies, _writer, _batch) -> list[dict]:
        stored = [{"_id": str(len(self.docs) + i), **b} for i, b in enumerate(bodies)]
        self.docs += stored
        return stored


class Allow:
    def check(self, *_args: Any) -> None:
        return None


def _spec(operation: str) -> EndpointSpec:
    endpoint = {
        "id": operation,
        "type": "api-endpoint",
        "api": "a",
        "method": "GET" if operation == "query" else "POST",
        "path": f"/{operation}",
        "operation": operation,
        "ontology": "Reading",
    }
    if operation == "query":
        endpoint["query"] = '{"zone": "{$zone}"}'
        endpoint["parameters"] = [{"name": "zone", "in": "query", "type": "string", "required": True}]
    return endpoint_spec(endpoint)


def _query(data: Data, totals: Totals, zone: str, limit: int = 2, offset: int = 0) -> dict:
    status, body = operations.run(
        data, Allow(), _spec("query"), {"zone": zone}, "ana", None, limit, offset, totals
    )
    assert status == 200
    return body


def test_a_total_is_counted_once_per_freshness_period():
    clock, data = Clock(), Data(["a"] * 5)
    totals = Totals(clock)
    assert _query(data, totals, "a")["total"] == 5
    data.docs.append({"_id": "x", "zone": "a"})  # written elsewhere (a flow): seen once the total is stale
    clock.now += TOTAL_TTL / 2
    assert _query(data, totals, "a")["total"] == 5 and data.counted == 1
    clock.now += TOTAL_TTL
    assert _query(data, totals, "a")["total"] == 6 and data.counted == 2


def test_each_filter_has_its_own_total():
    clock, data = Clock(), Data(["a"] * 5 + ["b"] * 3)
    totals = Totals(clock)
    assert (_query(data, totals, "a")["total"], _query(data, totals, "b")["total"]) == (5, 3)


def test_an_insert_through_the_api_manager_is_counted_at_once():
    clock, data = Clock(), Data(["a"] * 5)
    totals = Totals(clock)
    assert _query(data, totals, "a")["total"] == 5
    status, _ = operations.run(data, Allow(), _spec("insert"), {}, "ana", {"zone": "a"}, 0, 0, totals)
    assert status == 201
    assert _query(data, totals, "a")["total"] == 6


def test_a_last_page_is_not_counted():
    clock, data = Clock(), Data(["a"] * 5)
    totals = Totals(clock)
    assert _query(data, totals, "a", limit=2, offset=4) == {
        "total": 5,
        "limit": 2,
        "offset": 4,
        "items": [{"_id": "4", "zone": "a"}],
    }
    assert data.counted == 0


@settings(max_examples=60, deadline=None)
@given(
    zones=st.lists(st.sampled_from("abc"), max_size=30),
    pages=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 5), st.integers(0, 35)), max_size=10),
)
def test_without_writes_every_total_is_the_true_count(zones, pages):
    clock, data = Clock(), Data(zones)
    totals = Totals(clock)
    for zone, limit, offset in pages:
        body = _query(data, totals, zone, limit, offset)
        assert body["total"] == zones.count(zone) or (not body["items"] and offset >= zones.count(zone))
        assert body["items"] == data.find("Reading", {"zone": zone}, None, None, offset, limit)
