"""The PostgreSQL engine of the real-time DB: a pooled connection the server has closed is replaced at checkout,
without a round trip to the server per checkout.

SQLAlchemy's `pool_pre_ping` sends a statement at every checkout: with the statement itself, that is two round
trips per API call instead of one. Here the checkout only looks at the connection's socket, without waiting
(`poll` with a zero timeout): an idle pooled connection has nothing to read, unless the server has ended it, as a
restart, `pg_terminate_backend` or `idle_session_timeout` do (the server sends its FATAL error, then closes). Then
the pool drops every connection older than now (the same as a failed pre-ping: after a restart they are all dead)
and the checkout gets a new one. `pool_recycle` replaces connections older than `RECYCLE_SECONDS`, for what a
socket cannot tell (a firewall that forgets idle connections silently), and a statement that still fails on a
lost connection has SQLAlchemy invalidate the pool as well, so the next one reconnects.
"""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError

RECYCLE_SECONDS = 1800
"""A pooled connection older than this is closed and replaced at its next checkout."""

_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


def closed_by_server(dbapi_conn: Any) -> bool:
    """Whether an idle psycopg connection is known lost or has anything to read (the server's goodbye); no I/O
    beyond one non-blocking poll of its socket."""
    if dbapi_conn.closed or dbapi_conn.broken:
        return True
    try:
        fd = dbapi_conn.pgconn.socket
    except Exception:  # noqa: BLE001 - psycopg raises OperationalError for a connection without a socket
        return True
    poller = select.poll()
    poller.register(fd, _READABLE)
    return bool(poller.poll(0))


def postgres_engine(url: str, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine on `url` (postgresql+psycopg://...) checking pooled connections as the module says."""
    engine = create_engine(url, pool_recycle=RECYCLE_SECONDS, **kwargs)

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, _record, _proxy):
        if closed_by_server(dbapi_conn):
            raise InvalidatePoolError("the server closed a pooled connection (restart or termination)")

    return engine
