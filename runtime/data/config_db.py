"""The config DB: SQLAlchemy tables for flows, credentials, context, users and tokens.

SQLite in the data dir by default; any SQLAlchemy URL (PostgreSQL for clusters) by setting.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    make_url,
)

from sofiaflow.runtime.security.file_modes import private_file

metadata = MetaData()

flow_revisions = Table(
    "flow_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rev", String(64), nullable=False, index=True),
    Column("flows", Text, nullable=False),
    Column("deploy_type", String(16), nullable=False),
    Column("user", String(200)),
    Column("created", DateTime(timezone=True), nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("blob", LargeBinary, nullable=False),
)

context_entries = Table(
    "context_entries",
    metadata,
    Column("store", String(100), primary_key=True),
    Column("scope", String(400), primary_key=True),
    Column("data", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("username", String(200), primary_key=True),
    Column("password_hash", String(400), nullable=False),
    Column("role", String(40), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("token_hash", String(128), primary_key=True),
    Column("username", String(200), nullable=False, index=True),
    Column("scope", String(200), nullable=False),
    Column("expires", DateTime(timezone=True), nullable=False),
    UniqueConstraint("token_hash"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("user", String(200)),
    Column("action", String(80), nullable=False, index=True),
    Column("target", String(400)),
    Column("outcome", String(20), nullable=False),
    Column("detail", Text),
)

settings_kv = Table(
    "settings",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)


def connect(url: str) -> Engine:
    """An engine for `url` with every table created; a SQLite file is created 0600 (its WAL and shared-memory
    files take the same mode)."""
    database = make_url(url).database if url.startswith("sqlite") else None
    if database and database != ":memory:" and not database.startswith("file:"):
        private_file(database)
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    metadata.create_all(engine)
    return engine
