"""The real-time DB interface, its errors, and the backend-independent pieces.

The interface is synchronous: every method blocks on its backend (SQLAlchemy or pymongo), so
async callers (nodes) run it with ``await asyncio.to_thread(store.find, ...)``. A store is safe to
share between threads: SQLAlchemy and pymongo each keep a connection pool.
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import uuid
from abc import ABC, abstractmethod
from typing import Any

from sofiaflow.runtime.errors import Conflict, SofiaflowError, ValidationError

Doc = dict[str, Any]
SortSpec = list[tuple[str, int]]

_COLLECTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RtdbError(SofiaflowError):
    """Base class of every real-time DB error."""


class InvalidFilterError(RtdbError, ValidationError):
    """The filter (or projection/sort) is malformed: wrong shape, unknown operator, bad operand."""


class UnsupportedFilterError(RtdbError, ValidationError):
    """The filter is valid MongoDB but this store refuses it: it cannot be answered exactly."""


class InvalidUpdateError(RtdbError, ValidationError):
    """The update document is malformed or conflicts with itself."""


class UpdateError(RtdbError, Conflict):
    """An update could not be applied to a stored document (e.g. $inc on a string)."""


class DuplicateKeyError(RtdbError, Conflict):
    """An insert or update would duplicate an `_id` or a unique index key."""


class InvalidDocumentError(RtdbError, ValidationError):
    """A document is not storable JSON (non-finite float, non-string key, `$`/`.` in a key...)."""


def new_id() -> str:
    """A fresh document id: 32 lowercase hex digits (uuid4), the same on every backend."""
    return uuid.uuid4().hex


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _COLLECTION_RE.match(name):
        raise ValueError(
            f"invalid collection name {name!r}: letters, digits, '_' and '-', starting with a letter"
        )
    return name


def check_path(path: Any, what: str = "path") -> tuple[str, ...]:
    """Split a dotted path; every component must be a plain identifier (numeric indexes refused)."""
    if not isinstance(path, str) or not path:
        raise InvalidFilterError(f"{what} must be a non-empty string, got {path!r}")
    parts = tuple(path.split("."))
    for p in parts:
        if not FIELD_RE.match(p):
            raise UnsupportedFilterError(
                f"{what} {path!r}: component {p!r} is not supported "
                "(only identifiers [A-Za-z_][A-Za-z0-9_]*; no array indexes or special characters)"
            )
    return parts


def is_date(value: Any) -> bool:
    """onesait's (MongoDB extended JSON's) date: exactly `{"$date": "<ISO 8601>"}` or `{"$date": <epoch ms>}`."""
    if not (isinstance(value, dict) and len(value) == 1 and "$date" in value):
        return False
    inner = value["$date"]
    return isinstance(inner, str) or (isinstance(inner, int) and not isinstance(inner, bool))


def check_json(value: Any, where: str = "document") -> None:
    """Raise InvalidDocumentError unless value is plain JSON (dates as `{"$date": ...}` allowed)."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidDocumentError(f"{where}: integer {value} does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDocumentError(f"{where}: non-finite number {value!r}")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        if is_date(value):
            return
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidDocumentError(f"{where}: key {k!r} is not a string")
            if k.startswith("$") or "." in k:
                raise InvalidDocumentError(f"{where}: key {k!r} may not start with '$' or contain '.'")
            check_json(v, f"{where}.{k}")
        return
    raise InvalidDocumentError(f"{where}: {type(value).__name__} is not JSON")


def prepare_doc(doc: Doc) -> Doc:
    """Validate a document and give it a string `_id` (first key); returns a new dict."""
    if not isinstance(doc, dict):
        raise InvalidDocumentError(f"a document must be an object, got {type(doc).__name__}")
    check_json(doc)
    _id = doc.get("_id")
    if _id is None:
        _id = new_id()
    elif not isinstance(_id, str) or not _id:
        raise InvalidDocumentError(f"_id must be a non-empty string, got {_id!r}")
    out = {"_id": _id}
    out.update((k, copy.deepcopy(v)) for k, v in doc.items() if k != "_id")
    return out


# ---------------------------------------------------------------- idempotency keys

KEY_FIELD = "_scopedKey"
"""Where MongoDB keeps a document's idempotency key, in its stored form (`scoped_key`; the SQL backends keep it in
the `ikey` column beside the document); `find` leaves it out."""
LEGACY_KEY_FIELD = "_idempotencyKey"
"""Where MongoDB kept the key before keys had scopes (moved to `KEY_FIELD` at start, see `scoped_key`)."""
MAX_KEY_LENGTH = 512
"""The longest idempotency key a writer may give (its stored form adds the scope's tag)."""
PLATFORM_TAG = "p:"
USER_TAG_LENGTH = 32
MAX_STORED_KEY_LENGTH = MAX_KEY_LENGTH + len("u:") + USER_TAG_LENGTH + 1
"""The longest key a store takes: a writer's key in its stored form. Even in 4-byte characters it stays under
PostgreSQL's limit for an index entry (2704 bytes)."""


def scoped_key(scope: str | None, key: str) -> str:
    """The stored form of the idempotency key `key` of `scope`: the user whose flows insert with it, None for the
    platform (administrators' and ownerless flows). Keys are unique per ontology in the database, so this form
    is what keeps one user's keys from ever meeting another's: `p:<key>` for the platform,
    `u:<32 hex digits of the SHA-256 of the user name>:<key>` for a user. The tags differ in their first character
    and a user's has a fixed length, so distinct (scope, key) pairs make distinct stored keys (barring a SHA-256
    collision), and the stored key is at most `MAX_STORED_KEY_LENGTH` long whatever the user name's length.

    Keys stored before keys had scopes cannot tell whose they were: the backends make them the platform's
    (`p:<key>`) once, at start, like the key column itself."""
    if scope is None:
        return PLATFORM_TAG + key
    digest = hashlib.sha256(scope.encode("utf-8", "surrogatepass")).hexdigest()[:USER_TAG_LENGTH]
    return f"u:{digest}:{key}"


def check_keys(keys: Any, count: int, limit: int = MAX_STORED_KEY_LENGTH) -> list[str | None]:
    """One idempotency key (a non-empty string of at most `limit` characters, or None for none) per document;
    InvalidDocumentError naming the key otherwise."""
    if keys is None:
        return [None] * count
    if not isinstance(keys, (list, tuple)) or len(keys) != count:
        raise InvalidDocumentError(f"idempotency keys: one per document ({count}) expected, got {keys!r:.80}")
    for index, key in enumerate(keys):
        if key is None:
            continue
        if not isinstance(key, str) or not key:
            raise InvalidDocumentError(
                f"idempotency key {index}: must be a non-empty string, got {key!r:.80}"
            )
        if len(key) > limit:
            raise InvalidDocumentError(
                f"idempotency key {index}: {len(key)} characters, at most {limit}: {key[:40]!r}..."
            )
        if "\x00" in key:
            raise InvalidDocumentError(f"idempotency key {index}: the NUL character is not allowed")
    return list(keys)


def first_of_keys(keys: list[str | None]) -> list[int]:
    """The indexes of the documents to store: every unkeyed one and the first of each key."""
    seen: set[str] = set()
    out = []
    for index, key in enumerate(keys):
        if key is not None:
            if key in seen:
                continue
            seen.add(key)
        out.append(index)
    return out


def answers(
    docs: list[Doc], keys: list[str | None], stored: dict[str, str], mine: set[str]
) -> list[tuple[str, bool]]:
    """(`_id`, duplicate) per document of an insert: an unkeyed document was stored; a keyed one answers the
    `_id` stored under its key, and is a duplicate unless this insert stored it (`mine`), as its key's first."""
    out: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for doc, key in zip(docs, keys, strict=True):
        if key is None:
            out.append((doc["_id"], False))
        else:
            out.append((stored[key], key in seen or key not in mine))
            seen.add(key)
    return out


# ---------------------------------------------------------------- projection


def check_projection(projection: dict | None) -> tuple[str, dict[tuple[str, ...], bool], bool] | None:
    """Validate a projection: returns (mode 'include'|'exclude', {path: flag}, keep_id)."""
    if projection is None:
        return None
    if not isinstance(projection, dict):
        raise InvalidFilterError(f"projection must be an object, got {projection!r}")
    keep_id = True
    fields: dict[tuple[str, ...], bool] = {}
    mode = None
    for k, v in projection.items():
        if isinstance(v, bool) or v in (0, 1):
            flag = bool(v)
        else:
            raise InvalidFilterError(f"projection {k!r}: value must be 0/1/true/false, got {v!r}")
        if k == "_id":
            keep_id = flag
            continue
        path = check_path(k, "projection path")
        m = "include" if flag else "exclude"
        if mode is not None and m != mode:
            raise InvalidFilterError("projection cannot mix inclusion and exclusion (except _id)")
        mode = m
        fields[path] = flag
    paths = sorted(fields)
    for a, b in zip(paths, paths[1:], strict=False):
        if b[: len(a)] == a:
            raise InvalidFilterError(f"projection paths {'.'.join(a)!r} and {'.'.join(b)!r} collide")
    return (mode or "exclude", fields, keep_id)


def _include(value: Any, tree: dict) -> Any:
    if isinstance(value, list):
        return [_include(e, tree) for e in value if isinstance(e, dict)]
    if not isinstance(value, dict):
        return None
    out = {}
    for k, sub in tree.items():
        if k not in value:
            continue
        if sub is True:
            out[k] = value[k]
        else:
            v = value[k]
            if isinstance(v, (dict, list)):
                out[k] = _include(v, sub)
    return out


def _exclude(value: Any, tree: dict) -> Any:
    if isinstance(value, list):
        return [_exclude(e, tree) if isinstance(e, dict) else e for e in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for k, v in value.items():
        sub = tree.get(k)
        if sub is True:
            continue
        out[k] = v if sub is None else _exclude(v, sub)
    return out


def apply_projection(doc: Doc, spec) -> Doc:
    """Apply a checked projection the way MongoDB does (arrays: applied to each object element)."""
    if spec is None:
        return doc
    mode, fields, keep_id = spec
    tree: dict = {}
    for path in fields:
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = True
    if mode == "include":
        out = {"_id": doc["_id"]} if keep_id and "_id" in doc else {}
        out.update(_include(doc, tree))
        return out
    out = _exclude(doc, tree)
    if not keep_id:
        out.pop("_id", None)
    return out


# ---------------------------------------------------------------- sort and update specs


def check_sort(sort) -> list[tuple[tuple[str, ...], int]]:
    """Validate a sort spec (list of (path, 1|-1)); `_id` ascending is appended as tie-breaker."""
    if sort is None:
        sort = []
    if isinstance(sort, dict):
        sort = list(sort.items())
    out = []
    for item in sort:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            raise InvalidFilterError(f"sort items must be (path, 1|-1), got {item!r}")
        path, direction = item
        if direction not in (1, -1) or isinstance(direction, bool):
            raise InvalidFilterError(f"sort direction for {path!r} must be 1 or -1, got {direction!r}")
        out.append((("_id",) if path == "_id" else check_path(path, "sort path"), direction))
    if not any(p == ("_id",) for p, _ in out):
        out.append((("_id",), 1))
    return out


UPDATE_OPS = ("$set", "$unset", "$inc")


def check_update(update) -> dict[str, dict[tuple[str, ...], Any]]:
    """Validate {$set/$unset/$inc: {path: value}}; paths may not overlap; `_id` may not change."""
    if not isinstance(update, dict) or not update:
        raise InvalidUpdateError(f"update must be a non-empty object of operators, got {update!r}")
    seen: list[tuple[str, ...]] = []
    out: dict[str, dict[tuple[str, ...], Any]] = {}
    for op, fields in update.items():
        if op not in UPDATE_OPS:
            raise InvalidUpdateError(f"update operator {op!r} is not supported (use $set, $unset, $inc)")
        if not isinstance(fields, dict) or not fields:
            raise InvalidUpdateError(f"{op} needs a non-empty object of paths")
        out[op] = {}
        for key, value in fields.items():
            try:
                path = check_path(key, f"{op} path")
            except (InvalidFilterError, UnsupportedFilterError) as e:
                raise InvalidUpdateError(str(e)) from None
            if path[0] == "_id":
                raise InvalidUpdateError(f"{op} may not modify _id")
            for other in seen:
                n = min(len(other), len(path))
                if other[:n] == path[:n]:
                    raise InvalidUpdateError(f"update paths {'.'.join(other)!r} and {key!r} conflict")
            seen.append(path)
            if op == "$inc":
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InvalidUpdateError(f"$inc {key!r}: amount must be a number, got {value!r}")
            if op in ("$set", "$inc"):
                try:
                    check_json(value, f"{op} {key}")
                except InvalidDocumentError as e:
                    raise InvalidUpdateError(str(e)) from None
            out[op][path] = value
    return out


def apply_update(doc: Doc, spec: dict[str, dict[tuple[str, ...], Any]]) -> Doc:
    """Apply a checked update to a copy of doc, as MongoDB does; raises UpdateError."""
    doc = copy.deepcopy(doc)
    for op, fields in spec.items():
        for path, value in fields.items():
            dotted = ".".join(path)
            parent = doc
            if op == "$unset":
                for p in path[:-1]:
                    parent = parent.get(p) if isinstance(parent, dict) else None
                if isinstance(parent, dict):
                    parent.pop(path[-1], None)
                continue
            for p in path[:-1]:
                if p not in parent:
                    parent[p] = {}
                parent = parent[p]
                if not isinstance(parent, dict):
                    raise UpdateError(f"{op} {dotted!r}: cannot create field {p!r} inside a non-object")
            last = path[-1]
            if op == "$set":
                parent[last] = copy.deepcopy(value)
            else:
                cur = parent.get(last, 0)
                if isinstance(cur, bool) or not isinstance(cur, (int, float)):
                    raise UpdateError(f"$inc {dotted!r}: cannot increment non-numeric value {cur!r}")
                parent[last] = cur + value
    return doc


# ---------------------------------------------------------------- the interface


class RealtimeStore(ABC):
    """One real-time DB: a collection (table) per ontology. Synchronous; see module docstring."""

    url: str

    @abstractmethod
    def ensure_collection(self, name: str, indexes: list[str] = (), unique: list[str] = ()) -> None:
        """Create the collection if missing, with an index per path in `indexes` and a unique one per
        path in `unique` (idempotent)."""

    def insert(self, name: str, docs: list[Doc], keys: list[str | None] | None = None) -> list[str]:
        """Insert documents (all or none on SQL); returns their `_id`s (generated when absent).

        `keys`: an idempotency key per document (None: none). The collection holds each key at most once,
        enforced by a unique index, whoever inserts: a document whose key is already stored (or repeats an
        earlier key of `docs`) is not stored, and its answer is the stored document's `_id` instead of its
        own. The key is kept beside the document: `find` does not show it (see `find_keys`)."""
        return [_id for _id, _duplicate in self.insert_once(name, docs, keys)]

    @abstractmethod
    def insert_once(
        self, name: str, docs: list[Doc], keys: list[str | None] | None = None
    ) -> list[tuple[str, bool]]:
        """`insert`, answering per document (`_id`, duplicate): duplicate when this call did not store it
        because its key was stored already (or earlier in `docs`)."""

    @abstractmethod
    def find_keys(self, name: str, keys: list[str]) -> dict[str, str]:
        """{key: `_id`} of the stored documents holding these idempotency keys."""

    @abstractmethod
    def find_with_keys(self, name: str, ids: list[str]) -> dict[str, tuple[str | None, Doc]]:
        """{`_id`: (its idempotency key, None for none; the document)} of the stored documents with these `_id`s."""

    @abstractmethod
    def find(
        self,
        name: str,
        filter: Doc | None = None,
        projection: Doc | None = None,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[Doc]:
        """Documents matching a MongoDB filter; limit 0 means no limit."""

    @abstractmethod
    def count(self, name: str, filter: Doc | None = None) -> int:
        """How many documents match."""

    @abstractmethod
    def update(self, name: str, filter: Doc | None, update: Doc, multi: bool = True) -> int:
        """Apply $set/$unset/$inc to the matching documents (one when multi is False); returns the
        number matched."""

    @abstractmethod
    def delete(self, name: str, filter: Doc | None) -> int:
        """Delete the matching documents; returns how many."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Remove the collection and its data (no error when missing)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


MAX_SKIP_LIMIT = 2**31 - 1
"""The largest skip and limit every backend takes (SQLite and PostgreSQL: 64-bit; MongoDB drivers: 32-bit)."""


def check_skip_limit(skip: int, limit: int) -> None:
    """InvalidFilterError naming `skip` or `limit` and its bounds unless both are integers in them."""
    for n, v in (("skip", skip), ("limit", limit)):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_SKIP_LIMIT:
            raise InvalidFilterError(f"{n} must be an integer from 0 to {MAX_SKIP_LIMIT}, got {v!r}")
