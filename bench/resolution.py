"""Credential resolution by ``phone_number_id``: cached and uncached, at 10, 10,000 and
100,000 tenants.

The tenants are real rows: each has a WhatsApp number, a WhatsApp credential and an OpenAI
credential, encrypted with the service's own cipher and loaded with ``COPY``. The resolver is
the one the composition root builds (``bootstrap(...).resolver``) on the machine's PostgreSQL
(or the embedded one, ``--embedded``).

Measured, one call at a time, with ``time.perf_counter_ns`` around each call:

- *cached*: ``resolver.sender(phone_number_id)`` and ``route`` + ``resolve(tenant, llm)``, over
  random numbers of every seeded tenant, once all are cached. Counted: database checkouts and
  decryptions during the hits (both must be 0). Baseline: a ``dict`` lookup of the same keys.
- *uncached*: the same calls with the cache emptied before each (outside the timing).
  Baseline: one ``SELECT 1`` through the same pool.

Run: ``make bench-resolution`` (or ``bench/.venv/bin/python -m bench.resolution --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import ExitStack
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

TARGET_CACHED_MEDIAN_US = 3.0
SIZES = (10, 10_000, 100_000)


class CountingCipher:
    """The store's cipher, counting decryptions."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.decryptions = 0

    async def encrypt(self, plaintext: bytes, context: bytes) -> dict[str, Any]:
        return dict(await self.inner.encrypt(plaintext, context))

    async def decrypt(self, envelope: Mapping[str, Any], context: bytes) -> bytes:
        self.decryptions += 1
        return bytes(await self.inner.decrypt(envelope, context))

    def is_current(self, envelope: Mapping[str, Any]) -> bool:
        return bool(self.inner.is_current(envelope))


def number_of(i: int) -> str:
    return f"{900_000_000_000 + i}"


async def seed(service: Any, start: int, stop: int) -> float:
    """Tenants ``start``..``stop - 1``, each with a number and two encrypted credentials."""
    from changarrito.adapters.postgres.credential_rows import context_for
    from changarrito.domain.model import IntegrationType

    began = time.perf_counter()
    cipher = service.storage.cipher
    tenants, numbers, creds = [], [], []
    for i in range(start, stop):
        tid = uuid.uuid4()
        pnid = number_of(i)
        tenants.append((tid, f"Tienda {i}"))
        numbers.append((uuid.uuid4(), tid, pnid, f"+52 55 {i:08d}", f"Tienda {i}"))
        wa_secrets = {
            "accessToken": "EAAG" + os.urandom(24).hex(),
            "appSecret": os.urandom(16).hex(),
            "verifyToken": os.urandom(8).hex(),
        }
        wa_config = {
            "phoneNumberId": pnid,
            "businessAccountId": f"{100_000 + i}",
            "phoneNumber": f"+52 55 {i:08d}",
            "displayName": f"Tienda {i}",
        }
        llm_secrets = {"apiKey": "sk-" + os.urandom(20).hex()}
        llm_config = {"model": "gpt-4o-mini", "systemPrompt": "Eres la tienda de la esquina."}
        for itype, provider, secrets, config in (
            (IntegrationType.WHATSAPP, "meta", wa_secrets, wa_config),
            (IntegrationType.LLM, "openai", llm_secrets, llm_config),
        ):
            plaintext = json.dumps(secrets, sort_keys=True).encode()
            envelope = await cipher.encrypt(plaintext, context_for(tid, itype, provider))
            creds.append(
                (uuid.uuid4(), tid, itype.value, provider, json.dumps(envelope), json.dumps(config))
            )
    async with service.storage.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        async with cur.copy("COPY tenants (id, name) FROM STDIN") as copy:
            for row in tenants:
                await copy.write_row(row)
        async with cur.copy(
            "COPY tenant_whatsapp_numbers (id, tenant_id, phone_number_id, phone_number, "
            "display_name) FROM STDIN"
        ) as copy:
            for row in numbers:
                await copy.write_row(row)
        async with cur.copy(
            "COPY tenant_integration_credentials (id, tenant_id, integration_type, provider, "
            "credentials, config) FROM STDIN"
        ) as copy:
            for row in creds:
                await copy.write_row(row)
    async with service.storage.pool.connection() as conn:
        await conn.execute(
            "ANALYZE tenants, tenant_whatsapp_numbers, tenant_integration_credentials"
        )
    return time.perf_counter() - began


async def tenant_of(service: Any, pnid: str) -> uuid.UUID:
    route = await service.resolver.route(pnid)
    assert route.tenant_id is not None
    return route.tenant_id  # type: ignore[no-any-return]


async def warm(service: Any, pnids: list[str], concurrency: int = 32) -> float:
    """Caches every number's route, sender and LLM credential through the real path."""
    from changarrito.domain.model import IntegrationType

    resolver = service.resolver
    began = time.perf_counter()

    async def one(pnid: str) -> None:
        sender = await resolver.sender(pnid)
        assert sender.config["phoneNumberId"] == pnid
        route = await resolver.route(pnid)
        await resolver.resolve(route.tenant_id, IntegrationType.LLM)

    for i in range(0, len(pnids), concurrency):
        await asyncio.gather(*(one(p) for p in pnids[i : i + concurrency]))
    return time.perf_counter() - began


async def time_calls(
    call: Callable[[str], Awaitable[Any]], keys: list[str], before: Callable[[], None] | None
) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for key in keys:
        if before is not None:
            before()
        started = clock()
        await call(key)
        samples.append(clock() - started)
    return samples


async def measure_size(service: Any, n: int, args: argparse.Namespace) -> dict[str, Any]:
    from changarrito.domain.model import IntegrationType

    resolver = service.resolver
    cache = service.cache
    pool = service.storage.pool
    counting: CountingCipher = service.storage.store.cipher
    cache.clear()
    pnids = [number_of(i) for i in range(n)]
    say(f"  {n:>7,} tenants: warming the cache through the real path ...")
    warm_s = await warm(service, pnids)
    rng = random.Random(n)
    keys = [rng.choice(pnids) for _ in range(args.cached)]
    plain = {p: object() for p in pnids}

    async def dict_lookup(key: str) -> Any:
        return plain[key]

    async def sender(key: str) -> Any:
        return await resolver.sender(key)

    async def route_resolve(key: str) -> Any:
        route = await resolver.route(key)
        return await resolver.resolve(route.tenant_id, IntegrationType.LLM)

    async def select_1(key: str) -> Any:
        async with pool.connection() as conn:
            await conn.execute("SELECT 1")

    result: dict[str, Any] = {"tenants": n, "warm_seconds": round(warm_s, 1)}
    # Cached: nothing may reach the database or the cipher.
    checkouts = pool.get_stats().get("requests_num", 0)
    decryptions = counting.decryptions
    cached = {
        "dict lookup (baseline)": await time_calls(dict_lookup, keys, None),
        "sender(pnid)": await time_calls(sender, keys, None),
        "route + resolve(llm)": await time_calls(route_resolve, keys, None),
    }
    result["cached_db_checkouts"] = pool.get_stats().get("requests_num", 0) - checkouts
    result["cached_decryptions"] = counting.decryptions - decryptions
    result["cached_ns"] = {k: summary(v) for k, v in cached.items()}
    # Uncached: every call finds the cache empty.
    ukeys = keys[: args.uncached]
    before = pool.get_stats().get("requests_num", 0)
    decryptions = counting.decryptions
    uncached = {"SELECT 1 via the pool (baseline)": await time_calls(select_1, ukeys, None)}
    base_checkouts = pool.get_stats().get("requests_num", 0) - before
    counts: dict[str, tuple[float, float]] = {}
    for name, call in (("sender(pnid)", sender), ("route + resolve(llm)", route_resolve)):
        before = pool.get_stats().get("requests_num", 0)
        decryptions = counting.decryptions
        uncached[name] = await time_calls(call, ukeys, cache.clear)
        counts[name] = (
            (pool.get_stats().get("requests_num", 0) - before) / len(ukeys),
            (counting.decryptions - decryptions) / len(ukeys),
        )
    result["uncached_ns"] = {k: summary(v) for k, v in uncached.items()}
    result["uncached_checkouts_per_call"] = {k: c for k, (c, _) in counts.items()}
    result["uncached_checkouts_per_call"]["SELECT 1 via the pool (baseline)"] = (
        base_checkouts / len(ukeys)
    )
    result["uncached_decryptions_per_call"] = {k: d for k, (_, d) in counts.items()}
    cache.clear()
    return result


async def run(args: argparse.Namespace, url: str, where: str) -> dict[str, Any]:
    from changarrito.adapters.crypto.keyring import KeyRing
    from changarrito.adapters.logs import configure_logging
    from changarrito.bootstrap import Database, bootstrap
    from changarrito.settings import Settings

    configure_logging(os.environ.get("CHANGARRITO_LOG_LEVEL", "WARNING"))
    keyring = KeyRing.generate()
    # A TTL longer than the warm-up of 100,000 tenants on a busy machine: every timed hit must
    # be a hit (the counters below prove it).
    env = {
        "DATABASE_URL": url,
        "CHANGARRITO_ENCRYPTION_KEYS": keyring.serialize(),
        "CREDENTIALS_CACHE_TTL": str(args.ttl),
    }
    settings = Settings.from_env(env)
    service = await bootstrap(settings, Database(url, keyring))
    service.storage.store.cipher = CountingCipher(service.storage.store.cipher)
    sizes = sorted(set(args.sizes))
    results = []
    try:
        seeded = 0
        for n in sizes:
            cipher = service.storage.cipher.name
            say(f"seeding tenants {seeded:,}..{n:,} (encrypted with {cipher}) ...")
            seconds = await seed(service, seeded, n)
            say(f"  seeded {n - seeded:,} tenants in {seconds:.1f} s")
            seeded = n
            results.append(await measure_size(service, n, args))
    finally:
        await service.aclose()
    return {"database": where, "sizes": results}


def report(data: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    sizes = data["sizes"]
    smallest = sizes[0]
    print()
    print(f"Credential resolution — {describe_machine(info)}; database: {data['database']}")
    rows = []
    for s in sizes:
        base = s["cached_ns"]["dict lookup (baseline)"]["median"]
        for name, st in s["cached_ns"].items():
            first = smallest["cached_ns"][name]["median"]
            rows.append(
                (
                    f"{s['tenants']:,}",
                    name,
                    ratio(st["median"], base),
                    ratio(st["median"], first),
                    st["median"] / 1000,
                    st["p99"] / 1000,
                )
            )
    print("\ncached (all tenants cached; random numbers)")
    print(
        table(
            (
                "tenants",
                "call",
                "÷ dict lookup",
                f"÷ at {smallest['tenants']:,}",
                "median µs",
                "p99 µs",
            ),
            rows,
        )
    )
    rows = []
    for s in sizes:
        base = s["uncached_ns"]["SELECT 1 via the pool (baseline)"]["median"]
        for name, st in s["uncached_ns"].items():
            first = smallest["uncached_ns"][name]["median"]
            rows.append(
                (
                    f"{s['tenants']:,}",
                    name,
                    ratio(st["median"], base),
                    ratio(st["median"], first),
                    st["median"] / 1000,
                    st["p99"] / 1000,
                    s["uncached_checkouts_per_call"][name],
                    s["uncached_decryptions_per_call"].get(name, 0),
                )
            )
    print("\nuncached (cache emptied before each call)")
    print(
        table(
            (
                "tenants",
                "call",
                "÷ SELECT 1",
                f"÷ at {smallest['tenants']:,}",
                "median µs",
                "p99 µs",
                "pool checkouts",
                "decryptions",
            ),
            rows,
        )
    )
    hits_clean = all(s["cached_db_checkouts"] == 0 and s["cached_decryptions"] == 0 for s in sizes)
    worst = max(s["cached_ns"]["sender(pnid)"]["median"] for s in sizes) / 1000
    verdict = "met" if worst <= TARGET_CACHED_MEDIAN_US and hits_clean else "MISSED"
    print(
        f"\ncached sender median, worst size: {worst:.2f} µs (target <= "
        f"{TARGET_CACHED_MEDIAN_US} µs: {verdict}); database checkouts / decryptions during "
        f"hits: {[(s['cached_db_checkouts'], s['cached_decryptions']) for s in sizes]}"
    )
    path = write_results(
        "resolution",
        {
            "machine": info,
            "settings": {
                "cache_ttl_s": args.ttl,
                "cached_calls": args.cached,
                "uncached_calls": args.uncached,
                "database": data["database"],
                "sizes": [s["tenants"] for s in sizes],
            },
            "ratios": {
                str(s["tenants"]): {
                    "cached_sender_over_dict": ratio(
                        s["cached_ns"]["sender(pnid)"]["median"],
                        s["cached_ns"]["dict lookup (baseline)"]["median"],
                    ),
                    "cached_sender_over_smallest": ratio(
                        s["cached_ns"]["sender(pnid)"]["median"],
                        smallest["cached_ns"]["sender(pnid)"]["median"],
                    ),
                    "uncached_sender_over_select_1": ratio(
                        s["uncached_ns"]["sender(pnid)"]["median"],
                        s["uncached_ns"]["SELECT 1 via the pool (baseline)"]["median"],
                    ),
                    "uncached_resolve_over_select_1": ratio(
                        s["uncached_ns"]["route + resolve(llm)"]["median"],
                        s["uncached_ns"]["SELECT 1 via the pool (baseline)"]["median"],
                    ),
                }
                for s in sizes
            },
            "target": {
                "cached_median_us": TARGET_CACHED_MEDIAN_US,
                "worst_cached_median_us": round(worst, 3),
                "no_db_no_decrypt_on_hits": hits_clean,
                "met": verdict == "met",
            },
            "absolute": sizes,
        },
    )
    print(f"results: {path}")


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--cached", type=int, default=200_000, help="timed cached calls per size")
    parser.add_argument("--uncached", type=int, default=2_000, help="timed uncached calls")
    parser.add_argument("--ttl", type=float, default=3600, help="CREDENTIALS_CACHE_TTL, seconds")
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use an embedded PostgreSQL (pgserver) instead of the machine's",
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        if args.embedded:
            from bench.embedded import embedded_admin_url

            admin = stack.enter_context(embedded_admin_url())
            where = "embedded PostgreSQL (pgserver)"
        else:
            admin = admin_url()
            where = "the machine's PostgreSQL (" + admin.split("@")[-1] + ")"
        url = stack.enter_context(scratch_database(admin))
        info = machine(url)
        data = asyncio.run(run(args, url, where))
    report(data, info, args)


if __name__ == "__main__":
    main()
