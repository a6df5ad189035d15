"""End to end: an inbound webhook to the reply received by a (fake) Graph API.

``changarrito serve`` (one process, its in-process message workers at their default
concurrency unless ``--workers-concurrency``) on the machine's PostgreSQL, with every upstream
on 127.0.0.1 and answering at once: the OpenAI-compatible fake (each tenant's own key, its
``baseUrl`` pointing there) and the Graph API fake (``WHATSAPP_API_BASE_URL``). ``loadgen``
posts signed single-text webhooks to the tenants' numbers at a constant rate (default
200/s for 60 s); each text carries a unique ``[token]`` that the fake LLM echoes into its
answer, so the fake Graph API can tell which webhook each reply answers.

Reported: replies received vs webhooks acknowledged (nothing may be lost, nothing answered
twice), and the latency from each webhook's due time to its reply's arrival (median, p99),
next to the webhook's own acknowledgement latency in the same run.

Run: ``make bench-e2e`` (or ``bench/.venv/bin/python -m bench.e2e --help``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import (
    admin_url,
    describe_machine,
    exit_on_sigterm,
    free_port,
    machine,
    ratio,
    say,
    scratch_database,
    stop,
    summary,
    table,
    wait_for_port,
    write_results,
)
from bench.payloads import Generator, write_bodies
from bench.service import APP_SECRET, seed, service_env, start_changarrito

TARGET_RATE = 200.0


def fake(kind: str, stack: ExitStack) -> int:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fakes", kind, "--port", str(port)], start_new_session=True
    )
    stack.callback(stop, proc)
    wait_for_port(port, proc)
    return port


def replies(graph_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{graph_port}/__bench/replies", timeout=30) as r:
        return dict(json.loads(r.read()))


def queue_states(url: str) -> dict[str, int]:
    """How many inbound messages are in each state once the load and the drain are over."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT state, count(*) FROM whatsapp_inbound_messages GROUP BY state")
        return {str(state): int(n) for state, n in rows.fetchall()}


def run(args: argparse.Namespace, stack: ExitStack, url: str, workdir: Path) -> dict[str, Any]:
    from changarrito.adapters.crypto.keyring import KeyRing

    llm_port = fake("openai", stack)
    graph_port = fake("graph", stack)
    keys = KeyRing.generate().serialize()
    llm = {
        "apiKey": "sk-bench-tenant-0000000000000000",
        "baseUrl": f"http://127.0.0.1:{llm_port}/v1",
    }
    numbers = seed(url, keys, args.tenants, extra_llm=llm)
    extra = {"WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}"}
    if args.workers_concurrency is not None:
        extra["CHANGARRITO_WORKERS_CONCURRENCY"] = str(args.workers_concurrency)
    env = service_env(url, keys, extra)
    total = int(args.rate * args.duration)
    gen = Generator(numbers, prefix="E2E", seed=7)
    bodies = workdir / "e2e.txt"
    tokens = [f"m{i:07d}" for i in range(total)]
    write_bodies(bodies, (gen.text(token=t) for t in tokens), APP_SECRET)
    service = start_changarrito(env, workdir)
    stack.callback(service.stop)
    say(f"posting {total:,} webhooks at {args.rate:g}/s for {args.duration:g} s ...")
    ack = workdir / "ack.txt"
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(service.port),
        "--bodies",
        str(bodies),
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration),
        "--connections",
        str(args.connections),
        "--acknowledged",
        str(ack),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 180)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed:\n{out.stderr}\n{service.tail()}")
    load = json.loads(out.stdout.strip().splitlines()[-1])
    acknowledged = {int(x) for x in ack.read_text().split()}
    wanted = {tokens[i] for i in acknowledged}
    say(f"{len(acknowledged):,} acknowledged; waiting up to {args.drain:g} s for the replies ...")
    deadline = time.monotonic() + args.drain
    got = replies(graph_port)
    while time.monotonic() < deadline and len({t for t, _, _ in got["replies"]} & wanted) < len(
        wanted
    ):
        time.sleep(1)
        got = replies(graph_port)
    service.stop()
    states = queue_states(url)
    due = {tokens[i]: load["start_monotonic"] + i * load["interval"] for i in range(total)}
    first: dict[str, int] = {}
    duplicates = 0
    for token, arrived_ns, _ in got["replies"]:
        if token in first:
            duplicates += 1
            continue
        first[token] = arrived_ns
    latencies_ms = [(first[t] / 1e9 - due[t]) * 1000 for t in wanted if t in first]
    return {
        "load": load,
        "webhooks_due": total,
        "webhooks_acknowledged": len(acknowledged),
        "replies_for_acknowledged": len(wanted & first.keys()),
        "lost": len(wanted - first.keys()),
        "duplicate_replies": duplicates,
        "replies_not_sent_by_us": len(first.keys() - set(tokens)),
        "untraced_replies": got["untraced"],
        "read_receipts": got["read"],
        "inbound_states_at_end": states,
        "e2e_ms": summary(latencies_ms) if latencies_ms else None,
        "log_tail": service.tail(20) if len(wanted - first.keys()) else None,
    }


def report(data: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    e2e = data["e2e_ms"] or {}
    ack = data["load"]["latency_us"] or {}
    ack_median = ack.get("median", 0) / 1000
    print()
    print(
        f"End to end — {describe_machine(info)}; {args.tenants} tenants; "
        f"workers: {args.workers_concurrency or 'service default'}"
    )
    rows = [
        ("webhook acknowledged (200)", 1.0, ack_median, ack.get("p99", 0) / 1000),
        (
            "reply received by Graph fake",
            ratio(e2e.get("median", 0), ack_median),
            e2e.get("median"),
            e2e.get("p99"),
        ),
    ]
    print(table(("from due time to", "÷ ack median", "median ms", "p99 ms"), rows))
    ok = (
        data["lost"] == 0
        and data["duplicate_replies"] == 0
        and data["webhooks_acknowledged"] == data["webhooks_due"]
    )
    rate = data["load"]["achieved_rate"]
    print(
        f"\nsent {data['webhooks_due']:,} at {rate}/s (target {args.rate:g}/s); acknowledged "
        f"{data['webhooks_acknowledged']:,}; replies {data['replies_for_acknowledged']:,}; "
        f"unanswered {data['lost']} (inbound states at the end: "
        f"{data['inbound_states_at_end']}); duplicates {data['duplicate_replies']} -> "
        f"{'nothing lost' if ok else 'LOSS OR DUPLICATES'}"
    )
    if data.get("log_tail"):
        print(data["log_tail"])
    path = write_results(
        "e2e",
        {
            "machine": info,
            "settings": {**vars(args), "database": data["database"]},
            "ratios": {"e2e_median_over_ack_median": ratio(e2e.get("median", 0), ack_median)},
            "nothing_lost": ok,
            **{k: v for k, v in data.items() if k != "database"},
        },
    )
    print(f"results: {path}")


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="webhooks per second")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--workers-concurrency",
        type=int,
        default=None,
        help="CHANGARRITO_WORKERS_CONCURRENCY (default: the service's)",
    )
    parser.add_argument("--drain", type=float, default=60, help="seconds to wait for replies")
    parser.add_argument(
        "--embedded", action="store_true", help="PostgreSQL from pgserver instead of the machine's"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="changarrito-bench-e2e-"))
    with ExitStack() as stack:
        if args.embedded:
            from bench.embedded import embedded_admin_url

            admin = stack.enter_context(embedded_admin_url())
            where = "an embedded PostgreSQL (pgserver) given as DATABASE_URL"
        else:
            admin = admin_url()
            where = "the machine's PostgreSQL via DATABASE_URL (" + admin.split("@")[-1] + ")"
        url = stack.enter_context(scratch_database(admin))
        info = machine(url)
        data = run(args, stack, url, workdir)
        data["database"] = where
    report(data, info, args)


if __name__ == "__main__":
    main()
