"""How deep the inbound message queue is and how long its oldest message has waited."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.rows import class_row

from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES


@dataclass(frozen=True, slots=True)
class QueueStats:
    #: Waiting to be answered (``due`` of them may be claimed now; the rest are backing off).
    pending: int
    due: int
    #: Leased by a worker right now.
    processing: int
    #: Since the oldest pending or processing message was received (0 when none waits).
    oldest_age_seconds: float


#: A scrape waits this long for a connection, then keeps the last reading.
CONNECT_TIMEOUT = 2.0


async def queue_stats(pool: Pool) -> QueueStats:
    """One cheap round trip; ``StorageError`` (or ``StorageUnavailable``) when it fails."""
    with translated():
        async with pool.connection(timeout=CONNECT_TIMEOUT) as conn:
            cur = conn.cursor(row_factory=class_row(QueueStats))
            await cur.execute(QUERIES["queue_stats"])
            row = await cur.fetchone()
    assert row is not None  # an aggregate always returns its row
    return row
