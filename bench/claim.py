"""The workers' fair claim at 20, 2,000 and 10,000 tenants with a backlog.

Each size is a scratch database migrated by the service itself and seeded in the server
(``INSERT ... SELECT`` over ``generate_series``): every tenant has its own number and
``--customers`` customers, each with two due pending messages (the second waits for the
first) and two answered ones (the conversation the one-per-conversation check reads), and the
platform's number has a backlog too. Then three claims of ``--limit`` messages (the workers'
default concurrency) are timed one at a time, interleaved, each in a transaction that is
rolled back (so every claim sees the same queue):

- *floor*: a plain claim with no fairness and no conversation rule,
  ``SELECT ... ORDER BY available_at LIMIT n FOR UPDATE SKIP LOCKED`` and the same ``UPDATE``;
- *unbounded*: the fair claim before issue 11 (every tenant with pending messages examined,
  2 * limit candidates each), kept here as the "before" row;
- *bounded*: the service's claim (``queue.claim_statement``: a ring of tenants from a random
  start, at most ``FAIR_WINDOW * limit`` tenants with due messages).

Ratios to the floor first, then the absolute median and p99 (client-side, round trip
included). Each bounded claim must lease ``limit`` messages of ``limit`` different
conversations. At the largest size a second case puts every message in a backoff (an
outage): a claim then finds nothing, and the bounded one stops after ``FAIR_HOPS * limit``
tenants.

Run: ``make bench-claim`` (or ``bench/.venv/bin/python -m bench.claim --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    admin_url,
    describe_machine,
    exit_on_sigterm,
    machine,
    ratio,
    say,
    scratch_database,
    summary,
    table,
    write_results,
)

TARGET_MS = 20.0
SIZES = (20, 2_000, 10_000)

FLOOR = """
WITH due AS (
    SELECT m.id FROM whatsapp_inbound_messages m
    WHERE m.state = 'pending' AND m.available_at <= now()
    ORDER BY m.available_at, m.id
    LIMIT %(limit)s
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE whatsapp_inbound_messages m
SET state = 'processing', attempts = m.attempts + 1,
    locked_until = now() + make_interval(secs => %(lease)s), locked_by = %(worker)s,
    updated_at = now()
FROM due
WHERE m.id = due.id
RETURNING m.id, m.wamid, m.phone_number_id, m.tenant_id, m.type, m.text, m.sent_at,
          m.attempts, m.customer_id, m.customer_phone, m.customer_user_id,
          EXISTS (SELECT 1 FROM whatsapp_outbound_messages o WHERE o.inbound_id = m.id)
              AS has_reply
"""

#: ``claim_batch`` as it was before issue 11 (commit 0883a03), the "before" row.
UNBOUNDED = """
WITH RECURSIVE tenants AS (
    -- The tenants with pending messages, one index probe each (a loose index scan).
    (SELECT p.tenant_id FROM whatsapp_inbound_messages p
     WHERE p.state = 'pending' AND p.tenant_id IS NOT NULL
     ORDER BY p.tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT p.tenant_id FROM whatsapp_inbound_messages p
            WHERE p.state = 'pending' AND p.tenant_id > t.tenant_id
            ORDER BY p.tenant_id LIMIT 1)
    FROM tenants t
    WHERE t.tenant_id IS NOT NULL
),
candidates AS (
    SELECT c.id, c.tenant_id, c.available_at
    FROM tenants t
    CROSS JOIN LATERAL (
        SELECT m.id, m.tenant_id, m.available_at
        FROM whatsapp_inbound_messages m
        WHERE m.tenant_id = t.tenant_id AND m.state = 'pending' AND m.available_at <= now()
          AND NOT EXISTS (
              SELECT 1 FROM whatsapp_inbound_messages busy
              WHERE busy.phone_number_id = m.phone_number_id
                AND busy.customer_id = m.customer_id
                AND busy.id <> m.id
                AND ((busy.state = 'processing' AND busy.locked_until >= now())
                     OR ((busy.state = 'pending' AND busy.available_at <= now())
                         OR (busy.state = 'processing' AND busy.locked_until < now()))
                        AND (busy.available_at, busy.id) < (m.available_at, m.id)))
        ORDER BY m.available_at, m.id
        LIMIT 2 * %(limit)s
    ) c
    UNION ALL
    (SELECT m.id, m.tenant_id, m.available_at
     FROM whatsapp_inbound_messages m
     WHERE m.tenant_id IS NULL AND m.state = 'pending' AND m.available_at <= now()
       AND NOT EXISTS (
           SELECT 1 FROM whatsapp_inbound_messages busy
           WHERE busy.phone_number_id = m.phone_number_id
             AND busy.customer_id = m.customer_id
             AND busy.id <> m.id
             AND ((busy.state = 'processing' AND busy.locked_until >= now())
                  OR ((busy.state = 'pending' AND busy.available_at <= now())
                      OR (busy.state = 'processing' AND busy.locked_until < now()))
                     AND (busy.available_at, busy.id) < (m.available_at, m.id)))
     ORDER BY m.available_at, m.id
     LIMIT 2 * %(limit)s)
    UNION ALL
    (SELECT m.id, m.tenant_id, m.available_at
     FROM whatsapp_inbound_messages m
     WHERE m.state = 'processing' AND m.locked_until < now()
       AND NOT EXISTS (
           SELECT 1 FROM whatsapp_inbound_messages busy
           WHERE busy.phone_number_id = m.phone_number_id
             AND busy.customer_id = m.customer_id
             AND busy.id <> m.id
             AND ((busy.state = 'processing' AND busy.locked_until >= now())
                  OR ((busy.state = 'pending' AND busy.available_at <= now())
                      OR (busy.state = 'processing' AND busy.locked_until < now()))
                     AND (busy.available_at, busy.id) < (m.available_at, m.id)))
     ORDER BY m.locked_until
     LIMIT 2 * %(limit)s)
),
ranked AS (
    SELECT c.id, c.available_at,
           row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.available_at, c.id) AS turn
    FROM candidates c
),
due AS (
    -- The state is checked again on the locked row: another worker may have claimed it since.
    SELECT m.id
    FROM ranked r
    JOIN whatsapp_inbound_messages m ON m.id = r.id
    WHERE (m.state = 'pending' AND m.available_at <= now())
       OR (m.state = 'processing' AND m.locked_until < now())
    ORDER BY r.turn, r.available_at, r.id
    LIMIT %(limit)s
    FOR UPDATE OF m SKIP LOCKED
)
UPDATE whatsapp_inbound_messages m
SET state = 'processing',
    attempts = m.attempts + 1,
    locked_until = now() + make_interval(secs => %(lease)s),
    locked_by = %(worker)s,
    updated_at = now()
FROM due
WHERE m.id = due.id
RETURNING m.id, m.wamid, m.phone_number_id, m.tenant_id, m.type, m.text, m.sent_at,
          m.attempts, m.customer_id, m.customer_phone, m.customer_user_id,
          EXISTS (SELECT 1 FROM whatsapp_outbound_messages o WHERE o.inbound_id = m.id)
              AS has_reply
"""

SEED = """
WITH tenants AS (
    SELECT t, gen_random_uuid() AS tenant_id FROM generate_series(1, %(tenants)s) t
),
rows AS (
    SELECT tenant_id, (900000000000 + t)::text AS pnid, c, k
    FROM tenants, generate_series(1, %(customers)s) c, generate_series(1, 4) k
    UNION ALL
    SELECT NULL, '100000000000', c, k
    FROM generate_series(1, %(customers)s) c, generate_series(1, 4) k
)
INSERT INTO whatsapp_inbound_messages
    (wamid, phone_number_id, tenant_id, route, customer_id, customer_phone, type, text, raw,
     sent_at, state, available_at)
SELECT 'wamid.' || md5(random()::text || pnid || c || k), pnid, tenant_id,
       CASE WHEN tenant_id IS NULL THEN 'platform' ELSE 'tenant' END,
       '521' || (5500000000 + c), '521' || (5500000000 + c), 'text', 'hola', '{}',
       now() - make_interval(mins => 10 - k), CASE WHEN k <= 2 THEN 'answered' ELSE 'pending' END,
       now() - make_interval(secs => 600 * random())
FROM rows
"""

#: The outage case: every pending message waits for a backoff, so a claim finds nothing.
BACKOFF = """
UPDATE whatsapp_inbound_messages SET available_at = now() + interval '1 hour'
WHERE state = 'pending'
"""


async def migrated(url: str) -> None:
    from changarrito.adapters.postgres.migrate import migrate
    from changarrito.adapters.postgres.pool import open_pool

    pool = await open_pool(url, max_size=1)
    try:
        await migrate(pool)
    finally:
        await pool.close()


def seed(url: str, tenants: int, customers: int) -> float:
    import psycopg

    began = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED, {"tenants": tenants, "customers": customers})
        conn.execute("VACUUM ANALYZE whatsapp_inbound_messages")
    return time.perf_counter() - began


def measure(url: str, limit: int, iterations: int, *, backlog: bool) -> dict[str, Any]:
    import psycopg

    from changarrito.adapters.postgres.queue import claim_statement, next_start, random_start

    ring = [random_start()]
    times: dict[str, list[float]] = {"floor": [], "unbounded": [], "bounded": []}
    tenants_per_claim: list[int] = []
    with psycopg.connect(url) as conn:

        def one(name: str) -> list[Any]:
            if name == "bounded":  # from where the previous one stopped, as the workers do
                query, params = claim_statement(
                    "bench", limit, 60, one_per_conversation=True, start=ring[0]
                )
            else:
                query = FLOOR if name == "floor" else UNBOUNDED
                params = {"worker": "bench", "limit": limit, "lease": 60}
            began = time.perf_counter_ns()
            rows = conn.execute(query, params).fetchall()
            times[name].append((time.perf_counter_ns() - began) / 1e6)
            conn.rollback()
            if name == "bounded":
                ring[0] = next_start(ring[0], [r[3] for r in rows], limit) or random_start()
            return rows

        for name in times:  # warm-up: the plans, the caches
            for _ in range(3):
                one(name)
        for name in times:
            times[name].clear()
        for _ in range(iterations):
            for name in times:
                rows = one(name)
                if name == "bounded" and backlog:
                    conversations = {(r[2], r[8]) for r in rows}
                    if len(rows) != limit or len(conversations) != limit:
                        raise AssertionError(f"the bounded claim leased {len(rows)} messages")
                    tenants_per_claim.append(len({r[3] for r in rows}))
    return {
        "ms": {name: summary(values) for name, values in times.items()},
        "distinct_tenants_per_claim": summary(tenants_per_claim) if tenants_per_claim else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    results = []
    for size in args.sizes:
        with scratch_database(admin_url(), prefix="chg_bench_claim") as url:
            asyncio.run(migrated(url))
            seconds = seed(url, size, args.customers)
            say(f"{size:,} tenants seeded in {seconds:.1f} s; measuring")
            measured = measure(url, args.limit, args.iterations, backlog=True)
            results.append({"tenants": size, "case": "backlog", **measured})
            if size == max(args.sizes):  # an outage: every message waits for its backoff
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(BACKOFF)
                    conn.execute("VACUUM ANALYZE whatsapp_inbound_messages")
                measured = measure(url, args.limit, args.iterations, backlog=False)
                results.append({"tenants": size, "case": "all in backoff", **measured})
    return {"results": results}


def report(data: dict[str, Any]) -> str:
    rows = []
    for result in data["results"]:
        ms = result["ms"]
        floor = ms["floor"]["median"]
        for name in ("floor", "unbounded", "bounded"):
            rows.append(
                [
                    f"{result['tenants']:,}",
                    result["case"],
                    name,
                    ratio(ms[name]["median"], floor),
                    ratio(ms[name]["p99"], ms["floor"]["p99"]),
                    ms[name]["median"],
                    ms[name]["p99"],
                ]
            )
    return table(
        ["tenants", "case", "claim", "÷ floor median", "÷ floor p99", "median ms", "p99 ms"], rows
    )


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="bench.claim", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--limit", type=int, default=16, help="messages per claim")
    parser.add_argument("--customers", type=int, default=3, help="conversations per tenant")
    parser.add_argument("--iterations", type=int, default=200, help="claims timed per query")
    args = parser.parse_args()
    info = machine(admin_url())
    say(describe_machine(info), "| load", info.get("loadavg_1_5_15"))
    data = {"machine": info, "args": vars(args), **run(args)}
    data["target_ms"] = TARGET_MS
    data["met"] = all(r["ms"]["bounded"]["p99"] < TARGET_MS for r in data["results"])
    print(report(data))
    verdict = "met" if data["met"] else "MISSED"
    print(f"\nbounded claim p99 < {TARGET_MS:.0f} ms at every size: {verdict}")
    print(f"results: {write_results('claim', data)}")


if __name__ == "__main__":
    main()
