"""Notifications between processes: PostgreSQL's ``NOTIFY``, its channels, and one listener.

Two channels:

- ``changarrito_changes`` (``CHANGES_CHANNEL``): the store sends ``tenant:<uuid>`` and
  ``number:<phone_number_id>`` inside each write's transaction (``notify_changes``), and every
  process that caches what it read drops that (``Listener.on_change`` hands it each payload
  decoded by ``parse_change``, the one decoder of the format, into a domain ``Change``);
- ``changarrito_inbound`` (``INBOUND_CHANNEL``): the webhook intake, and a replay, wake the
  message workers when they commit a message to answer (the payload says nothing useful).

PostgreSQL delivers a notification when its transaction commits, typically within
milliseconds. One ``Listener`` serves any set of channels on one connection of its own; while
that connection is down, notifications are lost, so after reconnecting it says so
(``on_reconnect``; for changes: ``EVERYTHING``, drop everything cached).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from uuid import UUID

import psycopg
import structlog
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.changes import EVERYTHING, Change

log = structlog.get_logger(__name__)

#: What the store's writes notify (the ``notify`` query names it too).
CHANGES_CHANNEL = "changarrito_changes"
#: What the webhook intake notifies when it commits new messages (``notify_inbound``).
INBOUND_CHANNEL = "changarrito_inbound"

#: How long to wait without any notification before checking the connection is alive.
IDLE_CHECK_SECONDS = 30.0


# --- the changes channel's payloads ---------------------------------------------------------


def encode_change(change: Change) -> str:
    """The payload that tells other processes about ``change``."""
    if change.tenant_id is not None:
        return f"tenant:{change.tenant_id}"
    if change.phone_number_id is not None:
        return f"number:{change.phone_number_id}"
    return "all"


def parse_change(payload: str) -> Change:
    """The change a payload names; ``EVERYTHING`` for anything unreadable (forgetting too
    much is safe, keeping what changed is not)."""
    kind, _, value = payload.partition(":")
    if kind == "tenant":
        try:
            return Change(tenant_id=UUID(value))
        except ValueError:
            return EVERYTHING
    if kind == "number" and value:
        return Change(phone_number_id=value)
    return EVERYTHING


async def notify_changes(
    conn: AsyncConnection[TupleRow], tenants: Iterable[UUID], numbers: Iterable[str]
) -> None:
    """Tells every process, when ``conn``'s transaction commits, that these changed."""
    changes = [Change(tenant_id=t) for t in tenants] + [Change(phone_number_id=n) for n in numbers]
    if changes:
        await conn.execute(QUERIES["notify"], {"payloads": [encode_change(c) for c in changes]})


# --- listening ------------------------------------------------------------------------------


class Listener:
    """One ``LISTEN`` connection serving any number of channels, a callback per channel.

    Register callbacks (``on``, ``on_change``), then ``run`` until cancelled. ``run`` holds
    its own autocommit connection (not from the pool) and reconnects with exponential backoff
    from ``min_backoff`` to ``max_backoff`` seconds (2 s at most, so that it is listening
    again within seconds of the database's return); after ``idle_check`` seconds without a
    notification it checks that the connection is still there. Notifications sent while it
    was disconnected are lost, so once listening again it calls each ``on_reconnect``. A
    callback that raises is logged and does not stop the listener. Log events are named
    ``<name>.connect_failed``, ``.connection_lost``, ``.reconnected``, ``.callback_failed``.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        min_backoff: float = 0.2,
        max_backoff: float = 2.0,
        idle_check: float = IDLE_CHECK_SECONDS,
        name: str = "changes",
    ) -> None:
        self.conninfo = conninfo
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.idle_check = idle_check
        self.name = name
        self._callbacks: dict[str, list[Callable[[str], None]]] = {}
        self._on_reconnect: list[Callable[[], None]] = []
        self._running = False

    def on(
        self,
        channel: str,
        callback: Callable[[str], None],
        *,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        """Calls ``callback(payload)`` for each notification on ``channel``, and
        ``on_reconnect()`` after a reconnection. Register before ``run`` (a channel added
        later would not be listened to: ``RuntimeError``)."""
        if self._running:
            raise RuntimeError("register every channel before the listener runs")
        self._callbacks.setdefault(channel, []).append(callback)
        if on_reconnect is not None:
            self._on_reconnect.append(on_reconnect)

    def on_change(self, callback: Callable[[Change], None]) -> None:
        """Calls ``callback`` with each change other processes commit, and with
        ``EVERYTHING`` after a reconnection."""
        self.on(
            CHANGES_CHANNEL,
            lambda payload: callback(parse_change(payload)),
            on_reconnect=lambda: callback(EVERYTHING),
        )

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Listens until cancelled; sets ``ready`` each time it is listening."""
        self._running = True
        try:
            await self._listen(ready)
        finally:
            self._running = False

    async def _listen(self, ready: asyncio.Event | None) -> None:
        name = self.name
        backoff = self.min_backoff
        connected_before = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            except psycopg.Error as exc:
                log.warning(f"{name}.connect_failed", error=_one_line(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                connected_before = True  # something may have happened while we were away
                continue
            try:
                for channel in self._callbacks:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                if connected_before:
                    for reconnected in self._on_reconnect:
                        self._call(reconnected, "(reconnect)")
                    log.info(f"{name}.reconnected")
                connected_before = True
                backoff = self.min_backoff
                if ready is not None:
                    ready.set()
                while True:
                    async for note in conn.notifies(timeout=self.idle_check):
                        for callback in self._callbacks.get(note.channel, ()):
                            self._call(callback, note.channel, note.payload)
                    await conn.execute("SELECT 1")  # idle: is the connection still there?
            except psycopg.Error as exc:
                log.warning(f"{name}.connection_lost", error=_one_line(exc), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()

    def _call(self, callback: Callable[..., None], channel: str, *args: str) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception(f"{self.name}.callback_failed", channel=channel)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
