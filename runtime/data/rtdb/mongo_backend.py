"""MongoDB backend (pymongo): a collection per ontology, indexes from `ensure_collection`.

Filters are validated by the same parser as the SQL backends (so a filter refused there is refused
here too, and every backend answers the same set of filters) and then sent as written.
Projection is done by the server; sort gets `_id` ascending appended as tie-breaker, like the SQL
backends, so paged results agree. Sorting on arrays/objects is left to MongoDB (the SQL backends
refuse it). `update` with multi=True is `update_many`: if one document fails (e.g. $inc on a
string) the documents already updated stay updated, as in MongoDB.
"""

from __future__ import annotations

from pymongo import ASCENDING, MongoClient
from pymongo.errors import BulkWriteError, OperationFailure, WriteError
from pymongo.errors import DuplicateKeyError as _MongoDuplicate

from sofiaflow.runtime.data.rtdb import filters as F
from sofiaflow.runtime.data.rtdb.base import (
    KEY_FIELD,
    LEGACY_KEY_FIELD,
    DuplicateKeyError,
    RealtimeStore,
    UpdateError,
    answers,
    check_collection_name,
    check_keys,
    check_path,
    check_projection,
    check_skip_limit,
    check_sort,
    check_update,
    first_of_keys,
    prepare_doc,
    scoped_key,
)


class MongoStore(RealtimeStore):
    def __init__(self, url: str, database: str | None = None, **client_kwargs):
        self.url = url
        client_kwargs.setdefault("serverSelectionTimeoutMS", 10000)
        self.client = MongoClient(url, **client_kwargs)
        try:
            default = self.client.get_default_database()
        except Exception:  # no database in the URL
            default = None
        self.db = (
            self.client[database]
            if database
            else (default if default is not None else self.client["sofiaflow"])
        )
        self._keyed: set[str] = set()

    def _col(self, name):
        return self.db[check_collection_name(name)]

    @staticmethod
    def _filter(flt):
        F.parse_filter(flt)  # validation only: refuse exactly what the SQL backends refuse
        return flt or {}

    def ensure_collection(self, name, indexes=(), unique=()):
        col = self._col(name)
        if name not in self.db.list_collection_names():
            try:
                self.db.create_collection(name)
            except OperationFailure:  # created concurrently
                pass
        for paths, uniq in ((indexes, False), (unique, True)):
            for p in paths:
                check_path(p, "index path")
                if p == "_id":
                    continue
                if uniq:
                    # unique among documents holding a non-null value, as on the SQL backends
                    col.create_index(
                        [(p, ASCENDING)],
                        unique=True,
                        partialFilterExpression={
                            p: {"$type": ["number", "string", "bool", "object", "array"]}
                        },
                    )
                else:
                    col.create_index([(p, ASCENDING)])
        self._keyed.discard(name)
        self._ensure_key_index(name)

    def _ensure_key_index(self, name):
        """The unique index on the idempotency key, among the documents that hold one; then, for a collection
        keyed before keys had scopes, its keys made the platform's."""
        if name not in self._keyed:
            col = self._col(name)
            col.create_index(
                [(KEY_FIELD, ASCENDING)],
                unique=True,
                name="rt_scoped_key",
                partialFilterExpression={KEY_FIELD: {"$type": "string"}},
            )
            self._scope_legacy_keys(col)
            self._keyed.add(name)

    @staticmethod
    def _scope_legacy_keys(col):
        """Keys stored before keys had scopes (in `LEGACY_KEY_FIELD`, under the index `rt_idempotency_key`) become
        the platform's (`scoped_key(None, key)` in `KEY_FIELD`). Each document moves once, as its update requires
        the legacy key still in place, so workers starting together agree; the old index goes last, and its
        absence says there is nothing (left) to move. A platform key stored meanwhile under the new form keeps its
        place: the legacy key is then dropped."""
        if "rt_idempotency_key" not in col.index_information():
            return
        for doc in col.find({LEGACY_KEY_FIELD: {"$exists": True}}, {LEGACY_KEY_FIELD: 1}):
            legacy = doc[LEGACY_KEY_FIELD]
            where = {"_id": doc["_id"], LEGACY_KEY_FIELD: legacy}
            drop = {"$unset": {LEGACY_KEY_FIELD: ""}}
            if isinstance(legacy, str) and legacy:
                try:
                    col.update_one(where, {**drop, "$set": {KEY_FIELD: scoped_key(None, legacy)}})
                    continue
                except _MongoDuplicate:
                    pass
            col.update_one(where, drop)
        try:
            col.drop_index("rt_idempotency_key")
        except OperationFailure:  # dropped by a worker starting at the same time
            pass

    def insert_once(self, name, docs, keys=None):
        docs = [prepare_doc(d) for d in docs]
        if not docs:
            return []
        keys = check_keys(keys, len(docs))
        keyed = [key for key in keys if key is not None]
        if keyed:
            self._ensure_key_index(name)
        todo = [
            {**docs[i], KEY_FIELD: keys[i]} if keys[i] is not None else docs[i] for i in first_of_keys(keys)
        ]
        refused: set[int] = set()
        try:
            # unordered with keys: a key already stored must not keep the documents after it out
            self._col(name).insert_many(todo, ordered=not keyed)
            stored: dict[str, str] = {}
        except BulkWriteError as e:
            errors = e.details.get("writeErrors", [])
            if not all(err.get("code") == 11000 for err in errors):
                raise
            if not keyed:
                raise DuplicateKeyError(f"duplicate key in {name!r}: {errors[0]['errmsg']}") from None
            stored = self.find_keys(name, keyed)
            for err in errors:  # a duplicate `_id` or unique field, not a stored key, is an error
                key = todo[err["index"]].get(KEY_FIELD)
                if key is None or key not in stored:
                    raise DuplicateKeyError(f"duplicate key in {name!r}: {err['errmsg']}") from None
                refused.add(err["index"])
        mine = {doc[KEY_FIELD] for i, doc in enumerate(todo) if KEY_FIELD in doc and i not in refused}
        stored.update(
            (doc[KEY_FIELD], doc["_id"])
            for i, doc in enumerate(todo)
            if KEY_FIELD in doc and i not in refused
        )
        return answers(docs, keys, stored, mine)

    def find_keys(self, name, keys):
        keys = [k for k in check_keys(list(keys), len(keys)) if k is not None]
        if not keys:
            return {}
        found = self._col(name).find({KEY_FIELD: {"$in": list(dict.fromkeys(keys))}}, {KEY_FIELD: 1})
        return {doc[KEY_FIELD]: doc["_id"] for doc in found}

    def find_with_keys(self, name, ids):
        found = {}
        for doc in self._col(name).find({"_id": {"$in": list(dict.fromkeys(ids))}}):
            key = doc.pop(KEY_FIELD, None)
            doc.pop(LEGACY_KEY_FIELD, None)
            found[doc["_id"]] = (key if isinstance(key, str) else None, doc)
        return found

    def find(self, name, filter=None, projection=None, sort=None, skip=0, limit=0):
        spec = check_projection(projection)
        order = check_sort(sort)
        check_skip_limit(skip, limit)
        if spec is None or spec[0] == "exclude":  # the idempotency key stays beside the document
            projection = {**(projection or {}), KEY_FIELD: 0, LEGACY_KEY_FIELD: 0}
        cur = self._col(name).find(
            self._filter(filter),
            projection=projection or None,
            sort=[(".".join(p), d) for p, d in order],
            skip=skip,
            limit=limit,
        )
        return list(cur)

    def count(self, name, filter=None):
        return self._col(name).count_documents(self._filter(filter))

    def update(self, name, filter, update, multi=True):
        check_update(update)
        col = self._col(name)
        flt = self._filter(filter)
        try:
            if multi:
                res = col.update_many(flt, update)
            else:
                # the lowest matching _id, as on the SQL backends (update_one's own `sort` needs
                # MongoDB 8); the filter is re-checked so a concurrent change is not overwritten
                first = col.find_one(flt, projection={"_id": 1}, sort=[("_id", ASCENDING)])
                if first is None:
                    return 0
                res = col.update_one({"$and": [flt, {"_id": first["_id"]}]}, update)
        except _MongoDuplicate as e:
            raise DuplicateKeyError(str(e)) from None
        except WriteError as e:
            raise UpdateError(str(e)) from None
        return res.matched_count

    def delete(self, name, filter):
        return self._col(name).delete_many(self._filter(filter)).deleted_count

    def drop(self, name):
        self._col(name).drop()
        self._keyed.discard(name)

    def close(self):
        self.client.close()
