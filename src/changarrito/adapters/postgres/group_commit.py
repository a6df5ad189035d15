"""Group commit for the webhook intake: the records of concurrent requests, one transaction.

Each request ``submit``s its records and waits. Writer tasks take everything queued at that
moment (up to ``max_rows``), write it in one transaction (``messages.write_intakes``), commit,
and only then resolve each request's future, so no request is acknowledged before its rows are
durable. While a transaction is in flight the next requests queue up, so batches grow with the
load by themselves: no timer, no added latency when idle.

A failed transaction fails nobody yet: when the database is reachable, each request's records
are retried in a transaction of their own, so one bad request cannot sink the others. What
still fails reaches its request as ``StorageUnavailable`` (a 503: Meta delivers again later).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import psycopg
import structlog

from changarrito.adapters.postgres.errors import is_unavailable
from changarrito.adapters.postgres.messages import write_intakes
from changarrito.adapters.postgres.pool import Pool
from changarrito.domain.errors import StorageUnavailable
from changarrito.domain.whatsapp import Intake

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Submission:
    intake: Intake
    future: asyncio.Future[set[str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """Writes the intakes of concurrent requests in shared transactions (see module doc)."""

    def __init__(
        self,
        pool: Pool,
        *,
        writers: int = 2,
        max_rows: int = 5_000,
        max_queued: int = 10_000,
        connect_timeout: float = 5.0,
        drain_seconds: float = 10.0,
    ) -> None:
        self.pool = pool
        self.writers = writers
        self.max_rows = max_rows
        self.max_queued = max_queued
        self.connect_timeout = connect_timeout
        self.drain_seconds = drain_seconds
        self._queue: asyncio.Queue[_Submission] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        #: Transactions committed, and requests they carried (for tests and metrics).
        self.transactions = 0
        self.requests = 0

    async def submit(self, intake: Intake) -> set[str]:
        """Returns once ``intake`` is committed: the wamids of its messages that were new.
        Raises ``StorageUnavailable`` when it could not be stored."""
        if self._closed:
            raise StorageUnavailable("the service is shutting down; the webhook was not stored")
        queue = self._start()
        if queue.qsize() >= self.max_queued:
            raise StorageUnavailable("too many webhooks waiting to be stored; try again later")
        submission = _Submission(intake)
        queue.put_nowait(submission)
        return await submission.future

    def _start(self) -> asyncio.Queue[_Submission]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [
                asyncio.create_task(self._run(), name=f"changarrito-intake-writer-{i}")
                for i in range(self.writers)
            ]
        return self._queue

    async def aclose(self) -> None:
        """Stops taking requests, writes what is queued (up to ``drain_seconds``), stops."""
        self._closed = True
        if self._queue is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), self.drain_seconds)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            rows = len(batch[0].intake)
            while rows < self.max_rows and not queue.empty():
                batch.append(queue.get_nowait())
                rows += len(batch[-1].intake)
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                _fail(batch, StorageUnavailable("the service stopped before storing the webhook"))
                raise
            except Exception:  # never let one batch stop the writer
                log.exception("whatsapp.intake.writer_crashed")
                _fail(batch, StorageUnavailable("the webhook could not be stored"))
            finally:
                for _ in batch:
                    queue.task_done()

    async def _commit(self, batch: list[_Submission]) -> None:
        try:
            new = await self._transaction([s.intake for s in batch])
        except psycopg.Error as exc:
            log.warning(
                "whatsapp.intake.batch_failed",
                requests=len(batch),
                error=type(exc).__name__,
                sqlstate=exc.sqlstate,
            )
            if len(batch) == 1 or is_unavailable(exc):
                _fail(batch, _unavailable(exc))
                return
            for submission in batch:  # alone, so one bad request sinks only itself
                await self._commit([submission])
            return
        self.transactions += 1
        self.requests += len(batch)
        for submission in batch:
            if not submission.future.done():
                mine = {m.wamid for m in submission.intake.messages}
                submission.future.set_result(new & mine)

    async def _transaction(self, intakes: list[Intake]) -> set[str]:
        # Pipeline mode: BEGIN, the inserts and COMMIT go out without waiting for each other.
        async with (
            self.pool.connection(timeout=self.connect_timeout) as conn,
            conn.pipeline(),
            conn.transaction(),
        ):
            return await write_intakes(conn, intakes)


def _unavailable(exc: psycopg.Error) -> StorageUnavailable:
    # The SQLSTATE only: a driver message may quote the values of the row.
    state = f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else ""
    return StorageUnavailable(f"the webhook could not be stored{state}; it was not acknowledged")


def _fail(batch: list[_Submission], exc: Exception) -> None:
    for submission in batch:
        if not submission.future.done():
            submission.future.set_exception(exc)
