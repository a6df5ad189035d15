"""Change notifications between processes: ``LISTEN changarrito_changes``.

The store sends ``tenant:<uuid>`` and ``number:<phone_number_id>`` inside each write's
transaction; PostgreSQL delivers them on commit, typically within milliseconds. When the
listening connection drops, notifications may be lost, so after reconnecting the callback
gets ``("all", "")``: drop everything cached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql

from changarrito.adapters.postgres.store import CHANNEL

log = structlog.get_logger(__name__)

#: How long to wait without any notification before checking the connection is alive.
IDLE_CHECK_SECONDS = 30.0


async def listen_for_changes(
    conninfo: str,
    on_change: Callable[[str, str], None],
    *,
    ready: asyncio.Event | None = None,
    min_backoff: float = 0.2,
    max_backoff: float = 10.0,
) -> None:
    """Calls ``on_change(kind, value)`` for each change (``kind``: ``tenant``, ``number``, or
    ``all`` after a reconnection) until cancelled. Sets ``ready`` once listening.

    Runs on its own autocommit connection (not from the pool), reconnecting with exponential
    backoff. A callback that raises is logged and does not stop the listener.
    """
    backoff = min_backoff
    connected_before = False
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            log.warning("changes.connect_failed", error=_one_line(exc), retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
            connected_before = True  # something may have changed while we were away
            continue
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            if connected_before:
                _call(on_change, "all", "")
                log.info("changes.reconnected")
            connected_before = True
            backoff = min_backoff
            if ready is not None:
                ready.set()
            while True:
                async for note in conn.notifies(timeout=IDLE_CHECK_SECONDS):
                    kind, _, value = note.payload.partition(":")
                    _call(on_change, kind, value)
                await conn.execute("SELECT 1")  # idle: is the connection still there?
        except psycopg.Error as exc:
            log.warning("changes.connection_lost", error=_one_line(exc), retry_in=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
        finally:
            with contextlib.suppress(psycopg.Error):
                await conn.close()


def _call(on_change: Callable[[str, str], None], kind: str, value: str) -> None:
    try:
        on_change(kind, value)
    except Exception:
        log.exception("changes.callback_failed", kind=kind)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
