"""The inbound message queue and the reply log on real PostgreSQL: claims, leases, retries,
dead letters, SKIP LOCKED between workers, and the conversation the LLM sees."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from changarrito.adapters.postgres.message_log import PostgresMessageLog
from changarrito.adapters.postgres.migrate import migrate
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.adapters.postgres.queue import MessageQueue
from changarrito.domain.chat import ChatMessage
from changarrito.domain.errors import Conflict, NotFound

PNID = "106540352242922"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def queue_database_url(pg_admin_url: str) -> Iterator[str]:
    """A migrated database for this module alone: the queue hands out any due message, so
    these tests must not share their tables with others."""
    name = f"chg_queue_{secrets.token_hex(4)}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_conninfo(pg_admin_url, dbname=name)

    async def setup() -> None:
        pool = await open_pool(url, max_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()

    with ThreadPoolExecutor(1) as thread:  # its own event loop, apart from the tests'
        thread.submit(asyncio.run, setup()).result()
    try:
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


@pytest.fixture
async def db(queue_database_url: str) -> AsyncIterator[Pool]:
    """A pool on empty message tables."""
    pool = await open_pool(queue_database_url, min_size=1, max_size=6)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "TRUNCATE whatsapp_media_uses, whatsapp_media, payment_notices, "
                "whatsapp_outbound_messages, whatsapp_inbound_messages, "
                "whatsapp_message_statuses"
            )
        yield pool
    finally:
        await pool.close()


async def store_inbound(
    pool: Pool,
    *,
    customer: str = "16505551234",
    tenant_id: UUID | None = None,
    text: str | None = "hola",
    type: str = "text",
    sent_at: datetime | None = None,
    state: str = "pending",
    available_in: float = 0.0,
    phone_number_id: str = PNID,
) -> int:
    wamid = f"wamid.{uuid4().hex}"
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            INSERT INTO whatsapp_inbound_messages
                (wamid, phone_number_id, tenant_id, route, customer_id, customer_phone, type,
                 text, raw, sent_at, state, available_at, conversation_id)
            VALUES (%(wamid)s, %(pnid)s, %(tenant)s, %(route)s, %(customer)s, %(customer)s,
                    %(type)s, %(text)s, %(raw)s, %(sent_at)s, %(state)s,
                    now() + make_interval(secs => %(available_in)s),
                    changarrito_conversation(%(pnid)s, %(tenant)s, %(customer)s, NULL, NULL,
                                             %(sent_at)s, true))
            RETURNING id
            """,
            {
                "wamid": wamid,
                "pnid": phone_number_id,
                "tenant": tenant_id,
                "route": "tenant" if tenant_id else "platform",
                "customer": customer,
                "type": type,
                "text": text,
                "raw": json.dumps({"id": wamid}),
                "sent_at": sent_at or datetime.now(UTC),
                "state": state,
                "available_in": available_in,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def row(pool: Pool, message_id: int) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT state, attempts, locked_by, last_error, available_at - now() AS wait "
            "FROM whatsapp_inbound_messages WHERE id = %(id)s",
            {"id": message_id},
        )
        names = [c.name for c in cur.description or ()]
        found = await cur.fetchone()
    assert found is not None
    return dict(zip(names, found, strict=True))


async def test_a_claim_leases_the_oldest_due_message_to_one_worker(db: Pool) -> None:
    first = await store_inbound(db, customer="1")
    await store_inbound(db, customer="2")
    queue = MessageQueue(db, lease=60)

    (claimed,) = await queue.claim("w1")

    assert claimed.id == first and claimed.attempts == 1 and claimed.text == "hola"
    state = await row(db, first)
    assert state["state"] == "processing" and state["locked_by"] == "w1"


async def test_messages_waiting_for_their_backoff_or_already_settled_are_not_claimed(
    db: Pool,
) -> None:
    await store_inbound(db, available_in=60)
    await store_inbound(db, customer="2", state="answered")
    await store_inbound(db, customer="3", state="ignored", text=None)

    assert await MessageQueue(db).claim("w1") == []


async def test_two_workers_never_claim_the_same_message(db: Pool) -> None:
    ids = {await store_inbound(db, customer=str(n)) for n in range(30)}
    queue = MessageQueue(db, lease=60)

    async def drain(worker: str) -> list[int]:
        got: list[int] = []
        while claimed := await queue.claim(worker, limit=2):
            got += [m.id for m in claimed]
        return got

    results = await asyncio.gather(*(drain(f"w{n}") for n in range(4)))

    everything = [i for r in results for i in r]
    assert sorted(everything) == sorted(ids)  # each exactly once
    assert sum(1 for r in results if r) >= 2  # the work really was shared


async def test_a_claim_skips_rows_another_transaction_has_locked(db: Pool) -> None:
    locked = await store_inbound(db, customer="1")
    free = await store_inbound(db, customer="2")
    async with db.connection() as other, other.transaction():
        await other.execute(
            "SELECT 1 FROM whatsapp_inbound_messages WHERE id = %(id)s FOR UPDATE", {"id": locked}
        )
        claimed = await asyncio.wait_for(MessageQueue(db).claim("w1", limit=5), timeout=5)

    assert [m.id for m in claimed] == [free]


async def test_an_expired_lease_is_reclaimed_and_the_old_worker_can_no_longer_settle(
    db: Pool,
) -> None:
    message_id = await store_inbound(db)
    crashed = MessageQueue(db, lease=0.2)
    await crashed.claim("w-crashed")
    assert await MessageQueue(db).claim("w2") == []  # the lease still holds

    await asyncio.sleep(0.3)
    (again,) = await MessageQueue(db, lease=60).claim("w2")

    assert again.id == message_id and again.attempts == 2
    assert not await crashed.finish("w-crashed", message_id, "answered")
    assert await MessageQueue(db).finish("w2", message_id, "answered")
    assert (await row(db, message_id))["state"] == "answered"


async def test_a_renewed_lease_keeps_a_slow_message_with_its_worker(db: Pool) -> None:
    message_id = await store_inbound(db)
    queue = MessageQueue(db, lease=0.3)
    await queue.claim("w1")

    await asyncio.sleep(0.2)
    assert await queue.extend("w1", [message_id]) == {message_id}
    await asyncio.sleep(0.2)

    assert await MessageQueue(db).claim("w2") == []
    assert await queue.extend("w-other", [message_id]) == set()


async def test_a_retry_waits_its_backoff_and_records_the_error(db: Pool) -> None:
    message_id = await store_inbound(db)
    queue = MessageQueue(db, max_attempts=3)
    (message,) = await queue.claim("w1")

    state = await queue.retry("w1", message, delay=30, error="WhatsApp is busy (130429)")

    assert state == "pending"
    stored = await row(db, message_id)
    assert stored["last_error"] == "WhatsApp is busy (130429)"
    assert timedelta(seconds=25) < stored["wait"] <= timedelta(seconds=30)
    assert await queue.claim("w1") == []


async def test_a_message_out_of_attempts_is_dead_lettered_then_replayed_on_request(
    db: Pool,
) -> None:
    message_id = await store_inbound(db)
    queue = MessageQueue(db, max_attempts=2)
    states = []
    for _ in range(2):
        (message,) = await queue.claim("w1")
        states.append(await queue.retry("w1", message, delay=0, error="still down"))

    assert states == ["pending", "dead"]
    assert await queue.claim("w1") == []

    await queue.requeue(message_id)

    (replayed,) = await queue.claim("w1")
    assert replayed.id == message_id and replayed.attempts == 1


async def test_only_failed_or_dead_messages_can_be_replayed(db: Pool) -> None:
    answered = await store_inbound(db, state="answered")
    queue = MessageQueue(db)

    with pytest.raises(Conflict, match="answered"):
        await queue.requeue(answered)
    with pytest.raises(NotFound):
        await queue.requeue(987654)


async def test_a_replay_wakes_the_workers(db: Pool, queue_database_url: str) -> None:
    message_id = await store_inbound(db, state="failed")
    async with await psycopg.AsyncConnection.connect(
        queue_database_url, autocommit=True
    ) as listener:
        await listener.execute("LISTEN changarrito_inbound")
        await MessageQueue(db).requeue(message_id)
        notes = [n async for n in listener.notifies(timeout=2.0, stop_after=1)]

    assert [n.payload for n in notes] == [str(message_id)]


async def test_the_pair_rate_limit_holds_back_that_customers_messages_only(db: Pool) -> None:
    first = await store_inbound(db, customer="111")
    same_customer = await store_inbound(db, customer="111")
    other_customer = await store_inbound(db, customer="222")
    queue = MessageQueue(db, lease=60)
    (message,) = await queue.claim("w1")
    assert message.id == first

    await queue.retry("w1", message, delay=30, error="131056", per_recipient=True)

    assert (await row(db, same_customer))["wait"] > timedelta(seconds=25)
    assert (await row(db, other_customer))["wait"] <= timedelta(0)
    assert [m.id for m in await queue.claim("w2", limit=5)] == [other_customer]


async def test_a_customers_next_message_waits_while_their_previous_one_is_being_answered(
    db: Pool,
) -> None:
    first = await store_inbound(db, customer="111")
    second = await store_inbound(db, customer="111")
    queue = MessageQueue(db, lease=60)

    assert [m.id for m in await queue.claim("w1")] == [first]
    assert await queue.claim("w2") == []

    await queue.finish("w1", first, "answered")
    assert [m.id for m in await queue.claim("w2")] == [second]


async def test_the_conversation_holds_that_customers_messages_and_replies_oldest_first(
    db: Pool,
) -> None:
    tenant = uuid4()
    log = PostgresMessageLog(db)
    queue = MessageQueue(db, lease=60)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    earlier = await store_inbound(db, tenant_id=tenant, text="¿Abren hoy?", sent_at=t0)
    (claimed,) = await queue.claim("w1")
    assert claimed.id == earlier
    parts = await log.plan(
        claimed, "16505551234", ["Sí, de 9 a 18.", "¡Te esperamos!"], fallback=False
    )
    for n, part in enumerate(parts):
        await log.sent(part, f"wamid.R{n}")
    await queue.finish("w1", earlier, "answered")
    # Noise the conversation must not contain:
    await store_inbound(db, tenant_id=tenant, text="too old", sent_at=t0 - timedelta(days=2))
    await store_inbound(db, tenant_id=tenant, customer="999", text="someone else", sent_at=t0)
    await store_inbound(db, tenant_id=uuid4(), text="another tenant", sent_at=t0)
    await store_inbound(db, tenant_id=tenant, type="reaction", text="👍", sent_at=t0)
    current_id = await store_inbound(db, tenant_id=tenant, text="¿Y mañana?")
    current = next(m for m in await queue.claim("w1", limit=10) if m.id == current_id)
    # Written after it, not answered yet: the same turn, not history.
    waiting = await store_inbound(db, tenant_id=tenant, text="¿y el domingo?")

    turn = await log.turn(current, since=current.sent_at - timedelta(hours=24), limit=10)

    assert list(turn.history) == [
        ChatMessage(role="user", content="¿Abren hoy?"),
        ChatMessage(role="assistant", content="Sí, de 9 a 18.\n\n¡Te esperamos!"),
    ]
    assert [(m.id, m.text) for m in turn.waiting] == [(waiting, "¿y el domingo?")]
    assert turn.state == "bot" and turn.conversation_id is not None
    assert turn.last_received_at == turn.waiting[0].received_at
    assert (await log.turn(current, since=current.sent_at, limit=10)).history == ()
    since = t0 - timedelta(1)
    assert (await log.turn(current, since=since, limit=1)).history == turn.history[-1:]


async def test_a_reply_is_recorded_once_whole_and_its_wamid_takes_a_status_that_came_first(
    db: Pool,
) -> None:
    await store_inbound(db)
    (message,) = await MessageQueue(db).claim("w1")
    log = PostgresMessageLog(db)

    parts = await log.plan(message, "16505551234", ["uno", "dos"], fallback=False)
    again = await log.plan(message, "16505551234", ["otra", "respuesta", "distinta"], fallback=True)

    assert [p.text for p in again] == ["uno", "dos"]
    assert [p.part for p in parts] == [1, 2] and all(p.wamid is None for p in parts)
    # The plan marked its first part as being sent; a plan read back marks none.
    assert [(p.send_attempts, p.sending) for p in parts] == [(1, True), (0, False)]
    assert [(p.send_attempts, p.sending) for p in again] == [(1, False), (0, False)]
    async with db.connection() as conn:  # Meta's "delivered" webhook beat our commit
        await conn.execute(
            "INSERT INTO whatsapp_message_statuses (wamid, status, phone_number_id, occurred_at,"
            " raw) VALUES ('wamid.FAST', 'delivered', %(pnid)s, now(), '{}')",
            {"pnid": PNID},
        )
    await log.sent(parts[0], "wamid.FAST")

    first, second = await log.planned(message)
    assert (first.wamid, first.send_attempts) == ("wamid.FAST", 1)
    assert (second.wamid, second.send_attempts) == (None, 0)
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT status FROM whatsapp_outbound_messages WHERE wamid = 'wamid.FAST'"
        )
        assert await cur.fetchone() == ("delivered",)


async def test_each_wamid_marks_the_next_part_and_the_last_settles_the_answer_at_once(
    db: Pool,
) -> None:
    message_id = await store_inbound(db)
    (message,) = await MessageQueue(db).claim("w1", limit=5, one_per_conversation=True)
    log = PostgresMessageLog(db)
    first, second = await log.plan(message, "16505551234", ["uno", "dos"], fallback=False)

    assert message.claimed_by == "w1"
    assert await log.sent(first, "wamid.ONE", next_part=second)
    assert (await row(db, message_id))["state"] == "processing"
    assert [p.send_attempts for p in await log.planned(message)] == [1, 1]
    assert await log.sent(second, "wamid.TWO", answered=message)

    settled = await row(db, message_id)
    assert (settled["state"], settled["locked_by"], settled["last_error"]) == (
        "answered",
        None,
        None,
    )
    assert [p.wamid for p in await log.planned(message)] == ["wamid.ONE", "wamid.TWO"]


async def test_a_last_wamid_recorded_after_the_lease_was_lost_settles_nothing(db: Pool) -> None:
    message_id = await store_inbound(db)
    (message,) = await MessageQueue(db, lease=0.2).claim(
        "w-slow", limit=5, one_per_conversation=True
    )
    log = PostgresMessageLog(db)
    (part,) = await log.plan(message, "16505551234", ["uno"], fallback=False)
    await asyncio.sleep(0.3)
    (again,) = await MessageQueue(db, lease=60).claim("w2", limit=5, one_per_conversation=True)

    assert not await log.sent(part, "wamid.LATE", answered=message)

    assert (await row(db, message_id))["state"] == "processing"  # w2 holds it and resumes
    assert [p.wamid for p in await log.planned(again)] == ["wamid.LATE"]


async def test_recent_messages_are_listed_per_tenant_newest_first_with_their_state(
    db: Pool,
) -> None:
    tenant, other = uuid4(), uuid4()
    old = await store_inbound(db, tenant_id=tenant, customer="1")
    new = await store_inbound(db, tenant_id=tenant, customer="2", state="failed")
    await store_inbound(db, tenant_id=other, customer="3")
    platform = await store_inbound(db, customer="4")
    queue = MessageQueue(db)

    listed = await queue.recent(tenant)
    failed = await queue.recent(tenant, state="failed")

    assert [m.id for m in listed] == [new, old]
    assert [m.id for m in failed] == [new]
    assert [m.id for m in await queue.recent(None)] == [platform]
    assert [m.id for m in await queue.recent(tenant, limit=1)] == [new]


async def test_a_batch_claim_leases_the_oldest_due_message_of_each_conversation_only(
    db: Pool,
) -> None:
    first = await store_inbound(db, customer="111")
    await store_inbound(db, customer="111")  # waits for `first`
    other = await store_inbound(db, customer="222")
    later = await store_inbound(db, customer="333", available_in=60)
    queue = MessageQueue(db, lease=60)

    claimed = await queue.claim("w1", limit=10, one_per_conversation=True)

    assert [m.id for m in claimed] == [first, other]
    assert all(m.attempts == 1 and m.has_reply is False for m in claimed)
    assert {(await row(db, m.id))["locked_by"] for m in claimed} == {"w1"}
    assert (await row(db, later))["state"] == "pending"
    # Nothing more for anyone while `first` is being answered: its next one waits for it.
    assert await queue.claim("w2", limit=10, one_per_conversation=True) == []


async def test_a_batch_claim_skips_locked_rows_and_the_conversation_behind_them(
    db: Pool,
) -> None:
    locked = await store_inbound(db, customer="111")
    await store_inbound(db, customer="111")
    free = await store_inbound(db, customer="222")
    async with db.connection() as other, other.transaction():
        await other.execute(
            "SELECT 1 FROM whatsapp_inbound_messages WHERE id = %(id)s FOR UPDATE", {"id": locked}
        )
        claimed = await asyncio.wait_for(
            MessageQueue(db).claim("w1", limit=5, one_per_conversation=True), timeout=5
        )

    assert [m.id for m in claimed] == [free]


async def test_batch_claims_of_concurrent_workers_share_the_queue_once_each(db: Pool) -> None:
    ids = {await store_inbound(db, customer=str(n % 10)) for n in range(40)}
    queue = MessageQueue(db, lease=60)

    async def drain(worker: str) -> list[int]:
        got: list[int] = []
        while claimed := await queue.claim(worker, limit=4, one_per_conversation=True):
            assert len({m.customer_id for m in claimed}) == len(claimed)
            got += [m.id for m in claimed]
            for m in claimed:
                assert await queue.finish(worker, m.id, "answered")
        return got

    results = await asyncio.gather(*(drain(f"w{n}") for n in range(4)))

    everything = [i for r in results for i in r]
    assert sorted(everything) == sorted(ids)  # each exactly once


async def test_a_batch_claim_expires_like_any_lease_and_tells_a_reply_was_recorded(
    db: Pool,
) -> None:
    message_id = await store_inbound(db)
    crashed = MessageQueue(db, lease=0.2)
    (message,) = await crashed.claim("w-crashed", limit=5, one_per_conversation=True)
    await PostgresMessageLog(db).plan(message, "16505551234", ["uno"], fallback=False)
    assert await MessageQueue(db).claim("w2", limit=5, one_per_conversation=True) == []

    await asyncio.sleep(0.3)
    (again,) = await MessageQueue(db, lease=60).claim("w2", limit=5, one_per_conversation=True)

    assert again.id == message_id and again.attempts == 2 and again.has_reply is True
    assert not await crashed.finish("w-crashed", message_id, "answered")


async def test_a_batch_claim_is_fair_across_tenants_so_a_flood_does_not_hold_back_a_shop(
    db: Pool,
) -> None:
    flooded, quiet = uuid4(), uuid4()
    flood = [await store_inbound(db, customer=f"5{n:03}", tenant_id=flooded) for n in range(50)]
    shop = [await store_inbound(db, customer=f"6{n:03}", tenant_id=quiet) for n in range(2)]
    queue = MessageQueue(db, lease=60)

    claimed = await queue.claim("w1", limit=4, one_per_conversation=True)

    # Each tenant's oldest, then each tenant's second: the quiet shop waits for no flood.
    assert {m.id for m in claimed} == {flood[0], flood[1], shop[0], shop[1]}
    nxt = await queue.claim("w2", limit=4, one_per_conversation=True)
    assert [m.id for m in sorted(nxt, key=lambda m: m.id)] == flood[2:6]


async def test_a_fair_batch_claim_counts_the_platform_as_a_tenant_and_keeps_conversations(
    db: Pool,
) -> None:
    flooded = uuid4()
    flood = [await store_inbound(db, customer=f"5{n:03}", tenant_id=flooded) for n in range(20)]
    chatty = [await store_inbound(db, customer="7000") for _ in range(3)]  # the platform's
    queue = MessageQueue(db, lease=60)

    claimed = await queue.claim("w1", limit=3, one_per_conversation=True)

    # The platform's first turn comes before the flood's second; its customer's next
    # messages wait for that one, so the flood takes the remaining slots.
    assert {m.id for m in claimed} == {flood[0], chatty[0], flood[1]}
    assert chatty[1] not in {
        m.id for m in await queue.claim("w2", limit=10, one_per_conversation=True)
    }


# --- the fair claim's ring of tenants (issue 11: its cost does not grow with the platform) --


async def store_backlog(
    pool: Pool, conversations: dict[tuple[UUID | None, str], int], *, available_in: float = 0.0
) -> dict[tuple[UUID | None, str], list[int]]:
    """``n`` due pending messages for each (tenant, customer), in one statement; returns
    their ids per conversation, oldest first."""
    keys = [key for key, n in conversations.items() for _ in range(n)]
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            INSERT INTO whatsapp_inbound_messages
                (wamid, phone_number_id, tenant_id, route, customer_id, customer_phone, type,
                 text, raw, sent_at, available_at)
            SELECT 'wamid.' || gen_random_uuid(), coalesce(t::text, %(pnid)s), t,
                   CASE WHEN t IS NULL THEN 'platform' ELSE 'tenant' END, c, c, 'text', 'hola',
                   '{}', now(), now() + make_interval(secs => %(available_in)s + n * 1e-6)
            FROM unnest(%(tenants)s::uuid[], %(customers)s::text[]) WITH ORDINALITY AS x(t, c, n)
            ORDER BY n
            RETURNING id, tenant_id, customer_id
            """,
            {
                "pnid": PNID,
                "available_in": available_in,
                "tenants": [t for t, _ in keys],
                "customers": [c for _, c in keys],
            },
        )
        found: dict[tuple[UUID | None, str], list[int]] = {}
        for message_id, tenant, customer in await cur.fetchall():
            found.setdefault((tenant, customer), []).append(message_id)
    return {key: sorted(ids) for key, ids in found.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_with_many_backlogged_tenants_each_is_served_once_before_any_twice(
    db: Pool, seed: int
) -> None:
    rng = random.Random(seed)
    tenants = [uuid4() for _ in range(rng.randint(150, 200))]  # well past the claim's window
    backlog = await store_backlog(
        db, {(t, f"52{n}"): rng.randint(1, 3) for t in tenants for n in range(rng.randint(1, 3))}
    )
    waiting = await store_backlog(db, {(uuid4(), "1"): 2 for _ in range(20)}, available_in=600)
    queue = MessageQueue(db, lease=60)
    limit = rng.choice([2, 4, 8])
    served: list[UUID | None] = []
    claimed_per_conversation: dict[tuple[UUID | None, str | None], list[int]] = {}

    while claimed := await queue.claim("w1", limit=limit, one_per_conversation=True):
        conversations = {(m.tenant_id, m.customer_id) for m in claimed}
        assert len(conversations) == len(claimed)  # one message per conversation
        for m in claimed:
            claimed_per_conversation.setdefault((m.tenant_id, m.customer_id), []).append(m.id)
            served.append(m.tenant_id)
            assert await queue.finish("w1", m.id, "answered")
        assert len(served) < 10_000

    # Round robin: the first len(tenants) messages served are one of each tenant's.
    assert sorted(map(str, served[: len(tenants)])) == sorted(map(str, tenants))
    # Every message once, each conversation's oldest first; none still in its backoff.
    assert claimed_per_conversation == backlog
    assert not {key for key in waiting if key in claimed_per_conversation}


async def test_a_fair_claim_takes_the_tenants_after_where_the_last_one_stopped_wrapping_round(
    db: Pool,
) -> None:
    tenants = [UUID(int=n << 124) for n in range(1, 16)]  # spread round the ring
    await store_backlog(db, {(t, "1"): 3 for t in tenants})
    queue = MessageQueue(db, lease=60)
    queue._ring_start = tenants[11]

    batches = []
    for _ in range(3):
        claimed = await queue.claim("w1", limit=3, one_per_conversation=True)
        batches.append(sorted(m.tenant_id for m in claimed if m.tenant_id))
        for m in claimed:
            await queue.finish("w1", m.id, "answered")

    assert batches == [
        sorted([tenants[11], tenants[12], tenants[13]]),
        sorted([tenants[14], tenants[0], tenants[1]]),
        sorted([tenants[2], tenants[3], tenants[4]]),
    ]


async def test_the_platform_number_takes_its_turn_where_the_ring_of_tenants_wraps_round(
    db: Pool,
) -> None:
    tenants = [UUID(int=n << 124) for n in range(1, 16)]  # spread round the ring
    await store_backlog(db, {(t, "1"): 1 for t in tenants} | {(None, "7000"): 1})
    queue = MessageQueue(db, lease=60)
    queue._ring_start = tenants[13]

    claimed = await queue.claim("w1", limit=3, one_per_conversation=True)

    assert [m.tenant_id for m in claimed] == [tenants[13], tenants[14], None]
    again = await queue.claim("w1", limit=3, one_per_conversation=True)
    assert [m.tenant_id for m in again] == tenants[:3]


async def test_with_fewer_tenants_than_slots_the_extra_turns_rotate_among_them(
    db: Pool,
) -> None:
    tenants = [UUID(int=n << 124) for n in (3, 7, 11)]
    await store_backlog(db, {(t, f"52{n}"): 1 for t in tenants for n in range(10)})
    queue = MessageQueue(db, lease=60)
    counts: Counter[UUID | None] = Counter()

    for _ in range(3):
        claimed = await queue.claim("w1", limit=4, one_per_conversation=True)
        assert len(claimed) == 4
        counts.update(m.tenant_id for m in claimed)
        for m in claimed:
            await queue.finish("w1", m.id, "answered")

    # Each claim gives every tenant a turn and one of them a second: a different one each time.
    assert counts == dict.fromkeys(tenants, 4)


async def test_a_fair_claim_walks_past_tenants_whose_messages_all_wait_for_a_backoff(
    db: Pool,
) -> None:
    tenants = sorted(uuid4() for _ in range(60))
    await store_backlog(db, {(t, "1"): 1 for t in tenants[:-1]}, available_in=600)
    (due,) = (await store_backlog(db, {(tenants[-1], "1"): 1})).values()
    queue = MessageQueue(db, lease=60)
    queue._ring_start = tenants[0]

    claimed = await queue.claim("w1", limit=2, one_per_conversation=True)

    # 59 tenants in backoff first, fewer than the claim's 32 * 2 hops: the due one is reached.
    assert [m.id for m in claimed] == due


async def test_concurrent_fair_claims_answer_each_customer_one_message_at_a_time_in_order(
    db: Pool,
) -> None:
    tenants = [uuid4() for _ in range(40)]
    backlog = await store_backlog(db, {(t, f"52{n}"): 3 for t in tenants for n in range(2)})
    conversation_of = {i: key for key, ids in backlog.items() for i in ids}
    answering: set[tuple[UUID | None, str]] = set()
    order: dict[tuple[UUID | None, str], list[int]] = {}

    async def worker(name: str) -> None:
        queue = MessageQueue(db, lease=60)
        while claimed := await queue.claim(name, limit=4, one_per_conversation=True):
            for m in claimed:
                key = conversation_of[m.id]
                assert key not in answering  # nobody else is answering this customer
                answering.add(key)
                order.setdefault(key, []).append(m.id)
            await asyncio.sleep(0.001)
            for m in claimed:
                answering.discard(conversation_of[m.id])
                assert await queue.finish(name, m.id, "answered")

    await asyncio.gather(*(worker(f"w{n}") for n in range(4)))

    assert order == backlog  # every message once, each customer's oldest first
