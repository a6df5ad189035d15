"""The templates' schedule: every ``CHANGARRITO_TEMPLATE_SYNC_HOURS`` (6; 0 turns it off) the
worker syncs every owner's templates from Graph (``TemplateCatalog.sync``, the use case the
API's ``POST .../templates/sync`` calls), starting when the worker starts.

One round lists the owners (each tenant with its own WhatsApp credential, then the platform
when its account is configured) and syncs them one after the other, spread evenly over the
interval (a thousand shops are not a thousand Graph calls in one second). An owner synced
less than half an interval ago is skipped (``TemplateCatalog.sync_due``): every worker
process runs this schedule, and one sync per owner and interval is enough. A failing owner
is logged and skipped (the next round tries again); every tenth owner, and the round's end,
log a progress line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from changarrito.domain.errors import ChangarritoError
from changarrito.domain.template_sync import TemplateCatalog

log = structlog.get_logger("changarrito.templates")

#: An owner's sync is logged every this many owners (and at the end of each round).
PROGRESS_EVERY = 10


async def sync_round(
    catalog: TemplateCatalog,
    interval: float,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> int:
    """Syncs every owner not synced in the last half ``interval`` once, ``interval`` seconds
    spread over them; how many it synced."""
    try:
        owners = await catalog.owners()
    except ChangarritoError as exc:
        log.warning("templates.owners_failed", error=exc.message)
        await sleep(interval)
        return 0
    spacing = interval / max(1, len(owners))
    done = failed = skipped = 0
    for number, owner in enumerate(owners, start=1):
        who = str(owner) if owner is not None else "platform"
        try:
            result = await catalog.sync_due(owner, interval / 2)
            if result is None:
                skipped += 1
            else:
                done += 1
                log.debug(
                    "templates.synced", owner=who, synced=result.synced, removed=result.removed
                )
        except ChangarritoError as exc:
            failed += 1
            log.warning("templates.sync_failed", owner=who, error=exc.message, code=exc.code)
        if number % PROGRESS_EVERY == 0 or number == len(owners):
            log.info(
                "templates.sync_progress",
                done=done,
                skipped=skipped,
                failed=failed,
                total=len(owners),
            )
        await sleep(spacing)
    if not owners:
        await sleep(interval)
    return done


async def run_schedule(
    catalog: TemplateCatalog,
    hours: float,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rounds: int | None = None,
) -> None:
    """Rounds of ``sync_round`` until cancelled (or ``rounds`` of them, for tests)."""
    interval = hours * 3600
    count = 0
    while rounds is None or count < rounds:
        await sync_round(catalog, interval, sleep=sleep)
        count += 1
