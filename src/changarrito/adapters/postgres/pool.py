"""The connection pool, opened once in the application's lifespan.

While the database is away (a restart, a failover, connections terminated), the pool must
fail fast and come back fast: a request waits at most ``CHECKOUT_TIMEOUT`` seconds for a
connection (then ``StorageUnavailable``, a 503), never psycopg's default 30 s; and a lost
connection is re-established with attempts at most ``RECONNECT_WINDOW`` seconds apart
(psycopg's backoff doubles its delay for as long as its reconnect timeout allows, 5 minutes
by default, which after an outage of a few seconds could leave the pool idle for as long
again; each window that fails ends, and the next request starts a new one at once).
"""

from __future__ import annotations

from typing import TypeAlias

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from changarrito.domain.errors import ConfigurationError, StorageUnavailable

Pool: TypeAlias = AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]

#: Seconds a request waits for a connection before it is told the database is unavailable.
CHECKOUT_TIMEOUT = 5.0
#: Seconds one round of reconnection attempts lasts (their delays never exceed it).
RECONNECT_WINDOW = 2.0


async def open_pool(
    conninfo: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: float = 10.0
) -> Pool:
    """An open pool on ``conninfo``, or ``StorageUnavailable`` naming the server (never the
    password) when it cannot be reached within ``connect_timeout`` seconds.

    One direct connection is tried first, so a wrong address fails at once with the server's
    reason instead of after the pool's timeout with none.
    """
    target = describe(conninfo)
    try:
        probe = await psycopg.AsyncConnection.connect(
            conninfo, connect_timeout=max(1, round(connect_timeout))
        )
    except psycopg.Error as exc:
        raise StorageUnavailable(
            f"cannot connect to PostgreSQL at {target}: {_reason(exc, conninfo)}"
        ) from None
    await probe.close()
    pool: Pool = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        open=False,
        # No check on checkout: it cost a round trip before every query. A connection the
        # server dropped fails its one request (a 503) and is discarded by the pool.
        max_idle=300,
        timeout=CHECKOUT_TIMEOUT,
        reconnect_timeout=RECONNECT_WINDOW,
        name="changarrito",
    )
    try:
        await pool.open(wait=True, timeout=connect_timeout)
    except psycopg.Error as exc:
        await pool.close()
        raise StorageUnavailable(
            f"cannot open a connection pool to PostgreSQL at {target}: {_reason(exc, conninfo)}"
        ) from None
    return pool


def describe(conninfo: str) -> str:
    """``host:port/dbname as user``, for messages (the password is never included)."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        raise ConfigurationError(
            "the database URL (DATABASE_URL) is not a valid PostgreSQL connection string"
        ) from None
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or params.get("user") or "")
    user = params.get("user")
    return f"{host}:{port}/{dbname}" + (f" as {user}" if user else "")


def _reason(exc: BaseException, conninfo: str) -> str:
    """The driver's reason on one line, with the password scrubbed should it ever appear."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    password = conninfo_to_dict(conninfo).get("password")
    if password:
        reason = reason.replace(str(password), "***")
    return reason
