"""The message workers: ``changarrito worker``, and the same loop inside ``serve``.

Each process answers up to ``CHANGARRITO_WORKERS_CONCURRENCY`` messages at once. One loop
claims due messages for every free slot in one statement (at most one per conversation) and
answers each in its own task, then settles it in the queue (an answer is settled by the
pipeline, with its last wamid). The loop wakes on the intake's ``changarrito_inbound``
notification, and whenever a message is settled, and polls every ``CHANGARRITO_WORKER_POLL``
seconds in case one was missed. While messages are in hand one heartbeat renews their leases
in one statement; if the process dies, the leases run out and another worker resumes each
message where it stopped. While the database is unreachable the loop keeps polling, and a
message answered meanwhile is settled as soon as it is back (tried again for up to half the
lease), so an outage of seconds holds nothing for a whole lease. SIGTERM (or cancelling the
supervisor) stops claiming and lets the messages in hand finish for up to
``CHANGARRITO_WORKER_GRACE`` seconds.

Every log line of a message's journey carries ``tenant_id``, ``phone_number_id`` and ``wamid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import time
import uuid

import structlog

from changarrito.adapters.metrics import serve_metrics
from changarrito.adapters.postgres.notify import INBOUND_CHANNEL
from changarrito.bootstrap import Service, bootstrap, prepare_database
from changarrito.domain.backoff import backoff_delay
from changarrito.domain.errors import ConfigurationError, StorageError, StorageUnavailable
from changarrito.domain.pipeline import Outcome
from changarrito.domain.queued import QueuedMessage
from changarrito.entrypoints.collector import settle_after_start
from changarrito.entrypoints.outboxes import run_events, run_notices
from changarrito.entrypoints.template_schedule import run_schedule
from changarrito.settings import Settings, WorkerSettings

log = structlog.get_logger("changarrito.worker")

#: Seconds between attempts to settle a message while the database is unreachable.
SETTLE_RETRY = 0.2


class Workers:
    """The worker tasks of one process. ``run()`` until cancelled or ``stop()``.

    One claiming loop leases as many due messages as there are free slots (up to
    ``concurrency``) in one statement, at most one per conversation, and answers each in its
    own task; one heartbeat renews the leases of every message in hand in one statement.
    """

    def __init__(self, service: Service, settings: WorkerSettings | None = None) -> None:
        queue = service.storage.queue
        if queue is None:
            raise ConfigurationError("the message workers need the PostgreSQL queue")
        self.settings = settings or service.settings.workers
        self.pipeline = service.pipeline
        self.templates = service.templates
        self.notices = service.notices
        self.events = service.events
        self.queue = queue
        if service.listener is not None:  # woken by the intake's notification, else polling
            service.listener.on(INBOUND_CHANNEL, self._notified)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._notices_wakeup = asyncio.Event()
        self._events_wakeup = asyncio.Event()
        self._in_hand: dict[int, asyncio.Task[None]] = {}

    def _notified(self, _: str) -> None:
        self._wakeup.set()
        self._notices_wakeup.set()
        self._events_wakeup.set()

    def stop(self) -> None:
        """Stop claiming; messages in hand finish (``run`` returns when they have)."""
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        count = max(1, self.settings.concurrency)
        claimer = asyncio.create_task(self._claim_loop(count))
        heartbeat = asyncio.create_task(self._heartbeat())
        background = [heartbeat]
        hours = self.settings.template_sync_hours
        if self.templates is not None and hours > 0:  # the templates, on start and on schedule
            background.append(asyncio.create_task(run_schedule(self.templates, hours)))
        if self.notices is not None:  # what customers are told of their payments
            notices = run_notices(self.notices, self.name, self._notices_wakeup, self.settings.poll)
            background.append(asyncio.create_task(notices))
        if self.events is not None:  # what the platform's backend hears
            events = run_events(self.events, self.name, self._events_wakeup, self.settings.poll)
            background.append(asyncio.create_task(events))
        log.info("workers.started", worker=self.name, concurrency=count)
        try:
            await asyncio.shield(claimer)
            await self._finish_in_hand()
        except asyncio.CancelledError:
            # Cancelled (serve's shutdown): finish the messages in hand, within the grace time.
            self.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await claimer
            await self._finish_in_hand()
            raise
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            log.info("workers.stopped", worker=self.name)

    async def _finish_in_hand(self) -> None:
        tasks = list(self._in_hand.values())
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.settings.grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _claim_loop(self, count: int) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            free = count - len(self._in_hand)
            claimed: list[QueuedMessage] = []
            if free > 0:
                try:
                    claimed = await self.queue.claim(
                        self.name, limit=free, one_per_conversation=True
                    )
                except StorageError as exc:
                    log.warning("workers.claim_failed", worker=self.name, error=exc.message)
            for message in claimed:
                task = asyncio.create_task(self._process(self.name, message))
                self._in_hand[message.id] = task
                task.add_done_callback(functools.partial(self._done, message.id))
            if claimed and len(claimed) == free:
                continue  # perhaps more are due: claim again as soon as a slot is free
            if self._stopping.is_set():
                break
            # The queue had nothing more for us: wait for a notification, a free slot (the
            # conversation it held may have a next message) or the poll.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.settings.poll)

    def _done(self, message_id: int, _: asyncio.Task[None]) -> None:
        self._in_hand.pop(message_id, None)
        self._wakeup.set()

    async def _process(self, worker: str, message: QueuedMessage) -> None:
        context = {
            "tenant_id": str(message.tenant_id) if message.tenant_id else None,
            "phone_number_id": message.phone_number_id,
            "wamid": message.wamid,
            "message_id": message.id,
        }
        with structlog.contextvars.bound_contextvars(**context):
            log.info("message.claimed", worker=worker, attempt=message.attempts)
            try:
                outcome = await self.pipeline.handle(message)
            except StorageError as exc:
                outcome = Outcome("retry", f"the database failed: {exc.message}")
            except Exception as exc:  # a bug must not kill the worker: retry, then dead-letter
                log.exception("message.crashed")
                outcome = Outcome("retry", f"unexpected {type(exc).__name__}")
            await self._settle_patiently(worker, message, outcome)

    async def _settle_patiently(
        self, worker: str, message: QueuedMessage, outcome: Outcome
    ) -> None:
        """Settles the message, trying again while the database is unreachable (a restart, a
        failover) for up to half the lease; after that the lease runs out and the message is
        claimed again: nothing is lost, it only waits for the lease."""
        deadline = time.monotonic() + self.settings.lease / 2
        while True:
            try:
                await self._settle(worker, message, outcome)
                return
            except StorageUnavailable as exc:
                if time.monotonic() >= deadline or self._stopping.is_set():
                    log.warning("message.settle_failed", error=exc.message)
                    return
                await asyncio.sleep(SETTLE_RETRY)
            except StorageError as exc:
                log.warning("message.settle_failed", error=exc.message)
                return

    async def _settle(self, worker: str, message: QueuedMessage, outcome: Outcome) -> None:
        for note in outcome.notes:
            log.warning("message.note", note=note)
        if outcome.kind == "defer":  # a burst still going on: claimed again once it is over
            delay = max(0.0, outcome.retry_after or 0.0)
            if await self.queue.defer(worker, message, delay=delay):
                log.info("message.deferred", delay=round(delay, 3), reason=outcome.reason)
                # Nothing notifies when it falls due: wake the claiming loop then.
                asyncio.get_running_loop().call_later(delay + 0.005, self._wakeup.set)
            else:
                log.warning("message.lease_lost", outcome=outcome.kind)
            return
        if outcome.kind == "retry":
            delay = backoff_delay(
                message.attempts,
                base=self.settings.retry_base,
                cap=self.settings.retry_max,
                retry_after=outcome.retry_after,
            )
            state = await self.queue.retry(
                worker,
                message,
                delay=delay,
                error=outcome.reason,
                per_recipient=outcome.per_recipient,
            )
            event = "message.dead_lettered" if state == "dead" else "message.retry_scheduled"
            if state is None:
                event = "message.lease_lost"
            log.warning(event, error=outcome.reason, attempt=message.attempts, delay=delay)
            return
        settled = outcome.settled  # an answer is settled with its last wamid (pipeline.py)
        if settled is None:
            settled = await self.queue.finish(worker, message.id, outcome.kind, outcome.reason)
        if not settled:
            log.warning("message.lease_lost", outcome=outcome.kind)
        elif outcome.kind == "answered":
            log.info(
                "message.answered",
                reply_wamids=list(outcome.wamids),
                fallback=outcome.fallback,
                resent_parts=outcome.resent,
            )
        elif outcome.kind == "ignored":
            log.info("message.ignored", reason=outcome.reason)
        else:
            log.error(f"message.{outcome.kind}", error=outcome.reason)

    async def _heartbeat(self) -> None:
        """Renews the leases of every message in hand, in one statement, every third of
        the lease."""
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            ids = list(self._in_hand)
            if not ids:
                continue
            try:
                held = await self.queue.extend(self.name, ids)
            except StorageError as exc:
                log.warning("message.lease_renewal_failed", error=exc.message, count=len(ids))
                continue
            for message_id in ids:
                if message_id not in held and message_id in self._in_hand:
                    log.warning("message.lease_lost", message_id=message_id)


def start_workers(service: Service) -> asyncio.Task[None] | None:
    """Starts the workers inside ``serve`` (one task; cancelling it stops them gracefully).
    ``None`` when ``CHANGARRITO_WORKERS_CONCURRENCY`` is 0. Call before ``service.listen()``,
    so that the listener wakes them."""
    if service.settings.workers.concurrency <= 0:
        return None
    return asyncio.create_task(Workers(service).run(), name="changarrito-workers")


def run(settings: Settings) -> int:
    """``changarrito worker``: the workers alone, until SIGTERM or SIGINT."""
    database = prepare_database(settings)

    async def main() -> None:
        service = await bootstrap(settings, database, listen=False)
        exporter = None
        try:
            exporter = serve_metrics(service.metrics)  # CHANGARRITO_METRICS_PORT, when set
            workers = Workers(service)
            await service.listen()
            log.info("changarrito.gc_settled", frozen_objects=settle_after_start())
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, workers.stop)
            await workers.run()
        finally:
            if exporter is not None:
                exporter.shutdown()
            await service.aclose()

    asyncio.run(main())
    return 0
