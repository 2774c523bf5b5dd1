"""SQL backend (SQLAlchemy): SQLite (embedded default) and PostgreSQL (psycopg 3).

One table per collection: ``rt_<name> (id TEXT PRIMARY KEY, doc <JSON>)`` where doc is TEXT read
with SQLite's JSON functions, or JSONB on PostgreSQL. Filters are compiled to SQL over
json_type/json_extract/json_each (SQLite) or jsonb_typeof/->/jsonb_array_elements (PostgreSQL), in
`sql_compiler`;
every value is a bound parameter, and paths are embedded only after validation as identifiers.
Type brackets follow MongoDB: a number is only compared with numbers, a string with strings (byte
order: COLLATE "C" on PostgreSQL, BINARY on SQLite), so ``{$gt: 5}`` never matches ``"a"``.

Updates are read-modify-write inside one transaction (SELECT ... FOR UPDATE on PostgreSQL,
BEGIN IMMEDIATE on SQLite): the update is applied in Python by `base.apply_update`, which is the
same code for both dialects, and an error in any document rolls the whole update back.

Sort happens in SQL for scalar values (null/missing < numbers < strings < booleans, as MongoDB);
sorting on a field that holds an array or object in a matching document is refused
(UnsupportedFilterError), since MongoDB orders those by their elements.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from sofiaflow.runtime.data.rtdb import filters as F
from sofiaflow.runtime.data.rtdb.base import (
    DuplicateKeyError,
    InvalidDocumentError,
    RealtimeStore,
    UnsupportedFilterError,
    answers,
    apply_projection,
    apply_update,
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
from sofiaflow.runtime.data.rtdb.pg_engine import postgres_engine
from sofiaflow.runtime.data.rtdb.sql_compiler import _Compiler, _Dialect, _dumps, _Postgres, _SQLite


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str, flags: str):
    return re.compile(pattern, re.IGNORECASE if "i" in flags else 0)


def _sqlite_regexp(pattern, flags, value):
    if not isinstance(value, str):
        return 0
    return 1 if _compiled(pattern, flags).search(value) else 0


_COMPILED_LIMIT, _COMPILED_KEY_LIMIT = 1024, 4096
"""Compiled filters remembered (all forgotten when full), and the longest filter repr remembered."""


class SQLStore(RealtimeStore):
    """Real-time store on SQLite or PostgreSQL."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self.dialect: _Dialect = _SQLite()
            # a file: WAL (readers never wait for a writer, nor for each other) and a pool as large as the
            # threads that read it at once; in memory: one shared connection
            kwargs: dict[str, Any] = {"pool_size": 16, "max_overflow": 16}
            memory = url in ("sqlite://", "sqlite:///:memory:") or ":memory:" in url
            if memory:
                kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
            self.engine = create_engine(url, **kwargs)
            self._setup_sqlite(wal=not memory)
        elif url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            self.dialect = _Postgres()
            u = url.split("://", 1)[1]
            # a connection the server closed (a restart) is replaced at checkout, with no round trip per checkout
            self.engine = postgres_engine("postgresql+psycopg://" + u)
        else:
            raise ValueError(f"not a SQL URL: {url!r}")
        self._tables: set[str] = set()
        self._lock = threading.Lock()
        self._compiled: dict[str, tuple[str, dict]] = {}
        self._pyformats: dict[str, str] = {}

    def _setup_sqlite(self, wal: bool):
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            dbapi_conn.create_function("rtdb_regexp", 3, _sqlite_regexp, deterministic=True)
            if wal:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable at each checkpoint
                cursor.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn):
            mode = conn.get_execution_options().get("sqlite_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

    def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        """The rows of one read statement, straight on a pooled DB-API connection, with none of SQLAlchemy's
        per-statement work. SQLite: with no BEGIN (a single statement is consistent by itself); PostgreSQL: in
        autocommit, so no BEGIN and COMMIT round trips around it (also a single statement, consistent by itself),
        back out of autocommit before the connection returns to the pool, whose other users expect transactions."""
        raw = self.engine.raw_connection()
        try:
            if isinstance(self.dialect, _SQLite):
                cursor = raw.cursor()
                try:
                    cursor.execute(sql, params)
                    return cursor.fetchall()
                finally:
                    cursor.close()
            conn = raw.driver_connection
            conn.autocommit = True
            try:
                with conn.cursor() as cursor:
                    cursor.execute(self._pyformat(sql), params)
                    return cursor.fetchall()
            finally:
                if not conn.closed:  # a lost connection is replaced at its next checkout (pg_engine)
                    conn.autocommit = False
        finally:
            raw.close()

    def _pyformat(self, sql: str) -> str:
        """`sql` with its `:name` parameters as psycopg's `%(name)s` (and a literal `%` as `%%`), remembered."""
        found = self._pyformats.get(sql)
        if found is None:
            found = str(text(sql).compile(dialect=self.engine.dialect))
            if len(self._pyformats) >= _COMPILED_LIMIT:
                self._pyformats.clear()
            self._pyformats[sql] = found
        return found

    # --- helpers
    @staticmethod
    def _table(name: str) -> str:
        return f'"rt_{check_collection_name(name)}"'

    def _write(self):
        conn = self.engine.connect()
        if isinstance(self.dialect, _SQLite):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        return conn

    def _ensure_table(self, name: str) -> str:
        table = self._table(name)
        if name not in self._tables:
            kind = "TEXT" if isinstance(self.dialect, _SQLite) else "JSONB"
            digest = hashlib.sha1(name.encode()).hexdigest()[:12]
            for attempt in range(3):
                try:
                    # one transaction: another connection sees the table with its key column and index, or none
                    with self._write() as conn, conn.begin():
                        conn.execute(
                            text(
                                f"CREATE TABLE IF NOT EXISTS {table} "
                                f"(id TEXT PRIMARY KEY, doc {kind} NOT NULL, ikey TEXT)"
                            )
                        )
                        # the idempotency key, added to a table made before it (its rows keep no key)
                        if isinstance(self.dialect, _SQLite):
                            columns = {row[1] for row in conn.execute(text(f"PRAGMA table_info({table})"))}
                            if "ikey" not in columns:
                                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN ikey TEXT"))
                        else:
                            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS ikey TEXT"))
                        self._ensure_scoped_keys(conn, table, digest)
                    break
                except IntegrityError:
                    # PostgreSQL: a concurrent CREATE ... IF NOT EXISTS can collide on pg_type or pg_class;
                    # the next attempt finds what it made
                    if attempt == 2:
                        raise
            with self._lock:
                self._tables.add(name)
        return table

    def _has_index(self, conn, index: str) -> bool:
        if isinstance(self.dialect, _SQLite):
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :n"
        else:
            sql = "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :n"
        return conn.execute(text(sql), {"n": index}).first() is not None

    def _ensure_scoped_keys(self, conn, table: str, digest: str) -> None:
        """The unique index on the key column, `rts_…`; its presence says the keys are in their stored form
        (`scoped_key`). A table keyed before keys had scopes (index `rtk_…`) has its keys made the platform's,
        once: the old index goes first (a legacy key may read like a stored one), then the rewrite, then the new
        index, in the caller's transaction. SQLite's write lock keeps other starts out; PostgreSQL's table lock
        makes a concurrent start wait and then find the new index. NULLs never collide: unkeyed rows are free."""
        index = f"rts_{digest}"
        if self._has_index(conn, index):
            return
        if isinstance(self.dialect, _Postgres):
            conn.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
            if self._has_index(conn, index):
                return
        conn.execute(text(f'DROP INDEX IF EXISTS "rtk_{digest}"'))
        conn.execute(
            text(f"UPDATE {table} SET ikey = :tag || ikey WHERE ikey IS NOT NULL"),
            {"tag": scoped_key(None, "")},
        )
        conn.execute(text(f'CREATE UNIQUE INDEX "{index}" ON {table} (ikey)'))

    def _where(self, flt) -> tuple[str, dict]:
        """The filter's SQL and parameters, remembered per filter (by its repr, which tells 1 from 1.0 and True):
        an API or a flow asks the same few filters again and again, and compiling costs more than a small query."""
        key = repr(flt)
        hit = self._compiled.get(key)
        if hit is None:
            ast = F.parse_filter(flt)
            c = _Compiler(self.dialect)
            hit = (c.compile(ast), c.params)
            if len(key) <= _COMPILED_KEY_LIMIT:
                if len(self._compiled) >= _COMPILED_LIMIT:
                    self._compiled.clear()
                self._compiled[key] = hit
        return hit[0], dict(hit[1])

    # --- interface
    def ensure_collection(self, name, indexes=(), unique=()):
        table = self._ensure_table(name)
        with self._write() as conn, conn.begin():
            for paths, uniq in ((indexes, False), (unique, True)):
                for p in paths:
                    parts = check_path(p, "index path")
                    if parts == ("_id",):
                        continue  # the primary key
                    if uniq:
                        exprs = [("u", self.dialect.unique_expr(parts))]
                    else:
                        # the value, and the JSON type of it and of each prefix, so that the
                        # "is an array" branches of the compiled filter can use indexes too
                        exprs = [("i", self.dialect.index_expr(parts))]
                        exprs += [
                            (f"t{n}", self.dialect.type_index_expr(parts[:n]))
                            for n in range(1, len(parts) + 1)
                        ]
                    for tag, expr in exprs:
                        h = hashlib.sha1(f"{name}:{p}:{tag}".encode()).hexdigest()[:12]
                        conn.execute(
                            text(
                                f'CREATE {"UNIQUE " if uniq else ""}INDEX IF NOT EXISTS "rtx_{h}" '
                                f"ON {table} ({expr})"
                            )
                        )

    def insert_once(self, name, docs, keys=None):
        docs = [prepare_doc(d) for d in docs]
        if not docs:
            return []
        keys = check_keys(keys, len(docs))
        rows = []
        for d, key in zip(docs, keys, strict=True):
            s = _dumps(d)
            if isinstance(self.dialect, _Postgres) and "\\u0000" in s:
                raise InvalidDocumentError("PostgreSQL JSONB cannot store the NUL character")
            rows.append({"id": d["_id"], "doc": s, "k": key})
        table = self._ensure_table(name)
        # a key already stored (or one a concurrent transaction stores first) makes its row a no-op, never an
        # error; an `_id` already stored is still a DuplicateKeyError and stores nothing. SQLite: the write lock
        # (BEGIN IMMEDIATE) keeps others out between the read of the keys and the insert; PostgreSQL: ON
        # CONFLICT on the key's unique index (SQLite's is not used: a connection that read the schema before the
        # index was added would refuse the statement)
        sql = f"INSERT INTO {table} (id, doc, ikey) VALUES (:id, {self.dialect.doc_param(':doc')}, :k)"
        if isinstance(self.dialect, _Postgres):
            sql += " ON CONFLICT (ikey) DO NOTHING"
        keyed = [key for key in keys if key is not None]
        stored: dict[str, str] = {}
        mine: set[str] = set()  # the keys this call stored
        try:
            with self._write() as conn, conn.begin():
                if keyed:
                    stored = self._keys_in(conn, table, keyed)
                pending = [rows[i] for i in first_of_keys(keys) if rows[i]["k"] not in stored]
                for _ in range(5):
                    if pending:
                        conn.execute(text(sql), pending)
                    pending = [r for r in pending if r["k"] is not None]
                    if isinstance(self.dialect, _SQLite):  # no conflict possible: stored as is
                        stored.update((r["k"], r["id"]) for r in pending)
                        mine.update(r["k"] for r in pending)
                        break
                    if not pending:
                        break
                    # read in the same transaction: on PostgreSQL each statement sees what others committed
                    # before it, so the row that won a race on a key is seen here
                    stored.update(self._keys_in(conn, table, [r["k"] for r in pending]))
                    mine.update(r["k"] for r in pending if stored.get(r["k"]) == r["id"])
                    pending = [r for r in pending if r["k"] not in stored]
                    if not pending:  # else the row that won a race on the key is gone again: once more
                        break
                else:
                    raise DuplicateKeyError(f"{name!r}: keys stored and removed again while inserting")
        except IntegrityError as e:
            raise DuplicateKeyError(f"duplicate key in {name!r}: {e.orig}") from None
        return answers(docs, keys, stored, mine)

    def _keys_in(self, conn, table: str, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for at in range(0, len(unique), 500):
            chunk = unique[at : at + 500]
            params = {f"k{i}": key for i, key in enumerate(chunk)}
            marks = ", ".join(f":k{i}" for i in range(len(chunk)))
            found.update(
                (row[0], row[1])
                for row in conn.execute(text(f"SELECT ikey, id FROM {table} WHERE ikey IN ({marks})"), params)
            )
        return found

    def find_keys(self, name, keys):
        keys = [k for k in check_keys(list(keys), len(keys)) if k is not None]
        table = self._ensure_table(name)
        if not keys:
            return {}
        with self.engine.connect() as conn, conn.begin():
            return self._keys_in(conn, table, keys)

    def find_with_keys(self, name, ids):
        table = self._ensure_table(name)
        unique = list(dict.fromkeys(ids))
        found: dict[str, tuple[str | None, dict]] = {}
        with self.engine.connect() as conn, conn.begin():
            for at in range(0, len(unique), 500):
                chunk = unique[at : at + 500]
                params = {f"i{i}": _id for i, _id in enumerate(chunk)}
                marks = ", ".join(f":i{i}" for i in range(len(chunk)))
                for row in conn.execute(
                    text(f"SELECT id, ikey, doc FROM {table} WHERE id IN ({marks})"), params
                ):
                    found[row[0]] = (row[1], self.dialect.load(row[2]))
        return found

    def find(self, name, filter=None, projection=None, sort=None, skip=0, limit=0):
        proj = check_projection(projection)
        order = check_sort(sort)
        check_skip_limit(skip, limit)
        where, params = self._where(filter)
        table = self._ensure_table(name)
        keys: list[str] = []
        checks: list[str] = []
        d = self.dialect
        for parts, direction in order:
            if parts == ("_id",):
                keys.append(f"{d.id_order} {'ASC' if direction == 1 else 'DESC'}")
                continue
            keys += d.sort_keys(parts, direction)
            v = d.root
            for k in parts:
                v = d.field(v, k)
                checks.append(f"{d.typ(v)} = 'array'")
            checks.append(f"{d.typ(v)} = 'object'")
        sql = f"SELECT doc FROM {table} WHERE {where} ORDER BY {', '.join(keys)}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        elif skip and isinstance(d, _SQLite):
            sql += " LIMIT -1"
        if skip:
            sql += f" OFFSET {int(skip)}"
        if not checks:
            return [apply_projection(d.load(r[0]), proj) for r in self._rows(sql, params)]
        with self.engine.connect() as conn, conn.begin():
            bad = conn.execute(
                text(f"SELECT id FROM {table} WHERE {where} AND ({' OR '.join(checks)}) LIMIT 1"), params
            ).first()
            if bad is not None:
                paths = ", ".join(".".join(p) for p, _ in order if p != ("_id",))
                raise UnsupportedFilterError(
                    f"sort on {paths!r}: document {bad[0]!r} holds an array or object on that "
                    "path; MongoDB orders those by their elements, which this store does not"
                )
            rows = conn.execute(text(sql), params).all()
        return [apply_projection(d.load(r[0]), proj) for r in rows]

    def count(self, name, filter=None):
        where, params = self._where(filter)
        table = self._ensure_table(name)
        return self._rows(f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0]

    def update(self, name, filter, update, multi=True):
        spec = check_update(update)
        where, params = self._where(filter)
        table = self._ensure_table(name)
        d = self.dialect
        sql = f"SELECT id, doc FROM {table} WHERE {where}"
        if not multi:
            sql += f" ORDER BY {d.id_order} LIMIT 1"
        sql += d.for_update
        try:
            with self._write() as conn, conn.begin():
                rows = conn.execute(text(sql), params).all()
                new = [{"id": r[0], "doc": _dumps(apply_update(d.load(r[1]), spec))} for r in rows]
                if new:
                    conn.execute(text(f"UPDATE {table} SET doc = {d.doc_param(':doc')} WHERE id = :id"), new)
        except IntegrityError as e:
            raise DuplicateKeyError(f"duplicate key in {name!r}: {e.orig}") from None
        return len(rows)

    def delete(self, name, filter):
        where, params = self._where(filter)
        table = self._ensure_table(name)
        with self._write() as conn, conn.begin():
            return conn.execute(text(f"DELETE FROM {table} WHERE {where}"), params).rowcount

    def drop(self, name):
        table = self._table(name)
        with self._write() as conn, conn.begin():
            conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        with self._lock:
            self._tables.discard(name)

    def close(self):
        self.engine.dispose()
