"""Historical store (the seed platform's BDH): instances that leave an ontology's real-time window.

`HistoryStore` keeps them as Parquet files partitioned by ontology and day; `HistoryMover` moves them
out of the real-time DB exactly once, even when killed midway; `HistoryService` runs the move on a
schedule inside the runtime; `select` queries documents with the real-time DB's filter language.
"""

from sofiaflow.runtime.data.history.mover import HistoryMover, MoveReport
from sofiaflow.runtime.data.history.parquet_store import HistoryStore
from sofiaflow.runtime.data.history.query import select
from sofiaflow.runtime.data.history.service import HistoryService

__all__ = ["HistoryMover", "HistoryService", "HistoryStore", "MoveReport", "select"]
