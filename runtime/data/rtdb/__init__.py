"""Real-time DB (BDTR): one interface, backends chosen by URL.

    store = open_store("sqlite:///data/rt.db")        # embedded default
    store = open_store("postgresql://user@host/db")    # SQL on PostgreSQL (psycopg 3)
    store = open_store("mongodb://host:27017/db")      # MongoDB through pymongo

The methods are synchronous; from async code call them with ``asyncio.to_thread``. Queries use
MongoDB's filter language (see `filters`) and answer the same on every backend; what a backend
cannot answer exactly is refused with UnsupportedFilterError.
"""

from __future__ import annotations

from sofiaflow.runtime.data.rtdb.base import (
    DuplicateKeyError,
    InvalidDocumentError,
    InvalidFilterError,
    InvalidUpdateError,
    RealtimeStore,
    RtdbError,
    UnsupportedFilterError,
    UpdateError,
    new_id,
)
from sofiaflow.runtime.data.rtdb.filters import matches, parse_filter

__all__ = [
    "DuplicateKeyError",
    "InvalidDocumentError",
    "InvalidFilterError",
    "InvalidUpdateError",
    "RealtimeStore",
    "RtdbError",
    "UnsupportedFilterError",
    "UpdateError",
    "matches",
    "new_id",
    "open_store",
    "parse_filter",
]


def open_store(url: str, **kwargs) -> RealtimeStore:
    """A store for `url`: mongodb:// or mongodb+srv:// → MongoDB; sqlite:// or postgresql:// → SQL."""
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from sofiaflow.runtime.data.rtdb.mongo_backend import MongoStore

        return MongoStore(url, **kwargs)
    if url.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")):
        from sofiaflow.runtime.data.rtdb.sql_backend import SQLStore

        return SQLStore(url)
    raise ValueError(f"unsupported real-time DB URL {url!r} (use mongodb://, sqlite:// or postgresql://)")
