"""Real-time stores on every backend for the onesait query tests, plus a small data adapter.

`StoreData` gives a store the `find`/`count` calls of `OntologyData` that queries use (no validation or
events: the queries under test only read).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import rtdb_servers  # noqa: E402

from sofiaflow.runtime.data.rtdb import open_store  # noqa: E402

BACKENDS = ["sqlite", "postgresql", "mongo"]


class StoreData:
    def __init__(self, store) -> None:
        self.store = store

    def find(self, name, filter=None, projection=None, sort=None, skip=0, limit=0):
        return self.store.find(name, filter, projection, sort, skip, limit)

    def count(self, name, filter=None):
        return self.store.count(name, filter)


class Stores:
    """Opens each backend once (servers started on demand) and closes everything at the end."""

    def __init__(self, tmp_dir) -> None:
        self.tmp_dir = tmp_dir
        self.servers: dict = {}
        self.stores: dict = {}

    def get(self, kind: str):
        if kind not in self.stores:
            if kind == "sqlite":
                url = f"sqlite:///{self.tmp_dir}/rt.db"
            elif kind == "postgresql":
                self.servers["pg"] = rtdb_servers.start_postgres()
                url = self.servers["pg"].url
            else:
                self.servers["mongo"] = rtdb_servers.start_secantus()
                url = self.servers["mongo"].url
            self.stores[kind] = open_store(url)
        return self.stores[kind]

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
        for server in self.servers.values():
            server.stop()
