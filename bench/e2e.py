"""End to end: an inbound webhook to the reply received by a (fake) Graph API, and capacity.

The servers answer the same signed single-text webhooks, one after the other, each with a
fresh pair of fakes on 127.0.0.1 that answer at once: the OpenAI-compatible LLM fake and the
Graph API fake (and ``changarrito-events`` a third, the events' sink). Each text carries a
unique ``[token]`` that the fake LLM echoes into its answer, so the Graph fake knows which
webhook each reply answers and when it arrived.

- ``changarrito``: ``changarrito serve`` (one process, its in-process message workers at
  their default concurrency unless ``--workers-concurrency``) on the machine's PostgreSQL,
  every tenant with its own OpenAI key whose ``baseUrl`` is the LLM fake, and
  ``WHATSAPP_API_BASE_URL`` at the Graph fake. Durable: acknowledged means committed, and
  each message is answered exactly once.
- ``changarrito-bursts``: the same with the quiet period on (``--quiet-period``, default 2 s,
  the service's default): a conversation is answered once its customer has been quiet that
  long, so that a burst gets one reply. The report gives the median latency it adds (its
  median minus ``changarrito``'s at the same rate) and, with ``--capacity``, its capacity over
  ``changarrito``'s. ``changarrito`` itself runs with the quiet period off, as the peer
  answers: its figures are comparable with the runs before conversations existed.
- ``changarrito-events``: ``changarrito`` (the same environment, bursts off) with the events
  outbox on: ``CHANGARRITO_EVENTS_URL`` at a third fake, the sink (``bench/fakes.py sink``:
  204 at once, counting), and ``CHANGARRITO_EVENTS_SECRET``. Every stored message files a
  ``message.received`` event (a trigger) that the workers post, signed, to the sink. Its steps
  hold only when the events keep up too (the same rule as the replies: fewer than 1 % of the
  webhooks due more than ``STALE_AFTER`` seconds before the load's end without their event by
  then), the drain waits for the events as well, and the report checks that the sink got one
  event per stored message. With ``--capacity``: its capacity over ``changarrito``'s (what the
  outbox costs).
- ``changarrito-baseline``: ``changarrito`` from another checkout (``--baseline-checkout``, a
  clone at an earlier commit with its own ``.venv``), its database seeded and migrated by that
  checkout's code: an A/B of the commits in one run, on one machine, with one bench. With
  ``--capacity``: ``changarrito``'s capacity over the baseline's (what the commits since
  cost, e.g. the usage ledger). ``--checkout`` runs the other Changarrito servers from a
  clone too (a commit exactly, rather than a working tree someone is editing).
- ``pywa``: the naive bot of ``bench/e2e_peer.py`` (pywa_async on FastAPI, the handler awaits
  the LLM through httpx and replies through Graph), on the same server stack as ``serve``.
  Nothing stored.

``loadgen`` posts the webhooks at a constant rate (open loop). A *step* is one rate for some
seconds; it **holds** when every webhook was acknowledged and, when the load ends, fewer than
1 % of the webhooks due more than ``STALE_AFTER`` seconds earlier are still unanswered (the
backlog did not grow). ``--capacity`` searches the highest rate that holds (short steps:
``--search-duration``, rates growing by half until one fails, then bisected), then confirms it
for ``--duration`` seconds, stepping down by a tenth while the confirmation fails. After a
step that did not hold, the peer is restarted (its backlog is in its memory and would
weigh on the next step); Changarrito's is in its queue, answered within the drain. Its
tables that every message updates (``VACUUMED``: the queue's, the conversations' and the
events' outbox) are vacuumed and analysed once, before the first step; after that they are
left to autovacuum, as in a service running for hours, so later steps inherit the dead rows
of earlier ones (``--vacuum-between-steps`` vacuums before every step instead, which
flatters the claim; the server's ``autovacuum`` and ``autovacuum_naptime`` are reported, and a
run on a server with autovacuum off says so: nothing clears the dead rows there). Without
``--capacity``, one step at ``--rate`` (default 200/s for 60 s). After each step the bench
waits (``--drain``) for the remaining replies, then counts lost and duplicate replies.
``--profile`` samples ``serve`` with py-spy through each step (collapsed stacks in the work
folder: one line per stack and its sample count, to sum).

Reported per server and step: replies received vs webhooks acknowledged, latency from each
webhook's due time to its reply's arrival (median, p99), the webhook's acknowledgement
latency, the server process's CPU time per reply (from the load's start to the drain's end;
the database's own CPU is not in it), the CPU of every ``postgres`` process per reply over the
same span (the server's share of the database's work; the machine's other database users
would be counted too, so run it on a quiet machine), and with ``--capacity`` each server's
capacity and the ratios: Changarrito's to the peer's, and each variant's to ``changarrito``'s.
The ratios of CPU per reply at the rates both servers ran are given too: they move less with
the machine's other load than the capacities do.

Run: ``make bench-e2e`` (or ``bench/.venv/bin/python -m bench.e2e --help``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    admin_url,
    describe_machine,
    exit_on_sigterm,
    free_port,
    machine,
    postgres_cpu_seconds,
    ratio,
    say,
    scratch_database,
    stop,
    summary,
    table,
    wait_for_port,
    write_results,
)
from bench.payloads import Generator, Number, write_bodies
from bench.service import (
    APP_SECRET,
    PLATFORM_NUMBER,
    Service,
    seed,
    seed_with,
    service_env,
    start,
    start_changarrito,
)

TARGET_RATE = 200.0
#: ``changarrito`` runs with bursts off (a quiet period of 0: each message answered at once,
#: as the peer does); ``changarrito-bursts`` with the quiet period on (``--quiet-period``,
#: the service's default), to measure what it adds; ``changarrito-events`` with the events
#: outbox on; ``changarrito-baseline`` from another checkout (``--baseline-checkout``).
SERVERS = (
    "changarrito",
    "changarrito-bursts",
    "changarrito-events",
    "changarrito-baseline",
    "pywa",
)
#: Without ``--servers``: all but the baseline, which runs when ``--baseline-checkout`` is given.
DEFAULT_SERVERS = ("changarrito", "changarrito-bursts", "changarrito-events", "pywa")
#: The events' signing key of ``changarrito-events`` (``whsec_`` and the base64 of 24 bytes).
EVENTS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: A webhook due this many seconds before the load ended and still unanswered is backlog.
STALE_AFTER = 2.0
#: The share of such webhooks a step may leave unanswered and still hold.
STALE_SHARE = 0.01


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


def sink_count(sink_port: int, before_ns: float | None = None) -> dict[str, Any]:
    """The sink's counts: posts, distinct ``webhook-id``, types, distinct received messages;
    with ``before_ns`` (``time.monotonic_ns``) also how many posts had arrived by then."""
    query = "" if before_ns is None else f"?before={int(before_ns)}"
    url = f"http://127.0.0.1:{sink_port}/__bench/count{query}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return dict(json.loads(r.read()))


def stored_messages(url: str) -> int:
    """How many inbound messages the database holds (each files one ``message.received``)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM whatsapp_inbound_messages").fetchone()
        return int(row[0]) if row else 0


def ledger_rows(url: str) -> int | None:
    """Rows of the usage ledger (one per LLM answer here), or ``None`` for a commit before
    it: that the code measured wrote it."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_regclass('usage_ledger') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return None
        row = conn.execute("SELECT count(*) FROM usage_ledger").fetchone()
        return int(row[0]) if row else 0


def event_states(url: str) -> dict[str, int]:
    """The outbox's events per type and state once the load and the drain are over."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT type || ':' || state, count(*) FROM changarrito_events GROUP BY 1 ORDER BY 1"
        )
        return {str(key): int(n) for key, n in rows.fetchall()}


def checkout_state(path: Path) -> dict[str, Any]:
    """Which code a server ran: the checkout's commit and its uncommitted changes (how many
    files, and a digest of the diff and of the untracked files, to tell two trees apart)."""
    import hashlib

    def git(*argv: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(path), *argv], capture_output=True, text=True, timeout=30
        )
        return out.stdout

    digest = hashlib.sha256(git("diff", "HEAD").encode())
    untracked = git("ls-files", "--others", "--exclude-standard").split()
    for name in sorted(untracked):
        digest.update(name.encode())
        digest.update((path / name).read_bytes())
    return {
        "path": str(path),
        "commit": git("log", "-1", "--format=%h %s").strip(),
        "uncommitted_files": len(git("status", "--porcelain").splitlines()),
        "uncommitted_sha256": digest.hexdigest()[:16],
    }


def checkout_of(name: str, args: argparse.Namespace) -> Path:
    """The checkout whose ``.venv`` runs server ``name``: ``--baseline-checkout`` for
    ``changarrito-baseline``, ``--checkout`` (default: this one) for the other Changarrito
    servers."""
    if name == "changarrito-baseline":
        return Path(args.baseline_checkout).resolve()
    return Path(args.checkout).resolve() if args.checkout else ROOT


#: The tables every message updates (their dead rows are what a step inherits), those the
#: commit measured has: the outbox's only since the events (migration 0017).
VACUUMED = (
    "whatsapp_inbound_messages",
    "whatsapp_outbound_messages",
    "whatsapp_message_statuses",
    "whatsapp_conversations",
    "changarrito_events",
)


def vacuum(url: str) -> None:
    """Vacuums and analyses ``VACUUMED``: once before the first step, and before every step
    with ``--vacuum-between-steps`` (then no step inherits the dead rows of those before it,
    which a long-running service, on autovacuum alone, does)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        present = [
            name
            for name in VACUUMED
            if (row := conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()) and row[0]
        ]
        conn.execute("VACUUM (ANALYZE) " + ", ".join(present))


def autovacuum_settings(url: str) -> dict[str, str]:
    """The server's autovacuum switch and naptime (server-wide; the per-table parameters are
    the migrations'): with autovacuum off, nothing clears the dead rows between steps."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings "
            "WHERE name IN ('autovacuum', 'autovacuum_naptime')"
        )
        return {str(name): str(setting) for name, setting in rows.fetchall()}


def queue_states(url: str) -> dict[str, int]:
    """How many inbound messages are in each state once the load and the drain are over."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT state, count(*) FROM whatsapp_inbound_messages GROUP BY state")
        return {str(state): int(n) for state, n in rows.fetchall()}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process ``pid`` has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """One server under test, with its own fakes; ``step`` loads it at one rate."""

    def __init__(
        self,
        name: str,
        service: Service,
        graph_port: int,
        numbers: list[Number],
        workdir: Path,
        relaunch: Callable[[], Service] | None = None,
        database_url: str | None = None,
        quiet_period: float = 0.0,
        sink_port: int | None = None,
    ) -> None:
        self.name = name
        #: The events' sink (``changarrito-events``): its steps hold only if the events keep up.
        self.sink_port = sink_port
        #: Every reply comes this much later by design: the backlog count allows for it.
        self.quiet_period = quiet_period
        self.service = service
        self.relaunch = relaunch
        self.graph_port = graph_port
        self.numbers = numbers
        self.workdir = workdir
        self.database_url = database_url
        self.steps = 0
        self.seen = {"untraced": 0, "read": 0, "events": 0}  # the fakes' counts before a step

    def recover(self) -> None:
        """After a step that did not hold: a server whose backlog lives in its memory (the
        peer's background tasks) is started afresh, so that the next step does not inherit
        it. Changarrito's backlog is in its queue: answered within the drain, or counted."""
        if self.relaunch is None:
            return
        say(f"  {self.name}: restarted, to drop the backlog it holds in memory")
        self.service.stop()
        self.service = self.relaunch()

    def profiler(self, args: argparse.Namespace, duration: float) -> subprocess.Popen[bytes] | None:
        """py-spy sampling Changarrito's ``serve`` through the step (``--profile``), as
        collapsed stacks in the work folder (one line per stack and its sample count)."""
        if not args.profile or self.name != "changarrito":
            return None
        spy = Path(sys.executable).parent / "py-spy"
        out = self.workdir / f"profile-{self.name}-{self.steps}.txt"
        argv = [str(spy), "record", "--pid", str(self.service.proc.pid), "--format", "raw"]
        argv += ["--duration", str(max(1, round(duration))), "--rate", "200", "-o", str(out)]
        say(f"  profiling {self.name} into {out}")
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def step(self, args: argparse.Namespace, rate: float, duration: float) -> dict[str, Any]:
        self.steps += 1
        prefix = f"{self.name[:3].upper()}{self.steps:02d}"
        total = int(rate * duration)
        gen = Generator(self.numbers, prefix=f"E2E{prefix}", seed=self.steps)
        # Meta's timestamps from now on: the service answers no message Meta timestamped
        # more than 24 hours ago (the window), and the generator's fixed default is older.
        gen.base_ts = int(time.time())
        bodies = self.workdir / f"{self.name}-{self.steps}.txt"
        tokens = [f"{prefix}m{i:07d}" for i in range(total)]
        write_bodies(bodies, (gen.text(token=t) for t in tokens), APP_SECRET)
        say(f"{self.name}: {total:,} webhooks at {rate:g}/s for {duration:g} s ...")
        ack = self.workdir / f"{self.name}-{self.steps}-ack.txt"
        argv = [
            sys.executable,
            "-m",
            "bench.loadgen",
            "--port",
            str(self.service.port),
            "--bodies",
            str(bodies),
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--connections",
            str(args.connections),
            "--acknowledged",
            str(ack),
        ]
        if self.database_url is not None and (args.vacuum_between_steps or self.steps == 1):
            vacuum(self.database_url)
        spy = self.profiler(args, duration)
        cpu_before = cpu_seconds(self.service.proc.pid)
        pg_before = postgres_cpu_seconds()
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 180)
        if spy is not None:
            spy.wait(timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen failed:\n{out.stderr}\n{self.service.tail()}")
        load = json.loads(out.stdout.strip().splitlines()[-1])
        acknowledged = {int(x) for x in ack.read_text().split()}
        wanted = {tokens[i] for i in acknowledged}
        mine = set(tokens)
        deadline = time.monotonic() + args.drain
        got = replies(self.graph_port)
        while time.monotonic() < deadline and len(
            {t for t, _, _ in got["replies"] if t in mine} & wanted
        ) < len(wanted):
            time.sleep(0.5)
            got = replies(self.graph_port)
        if self.sink_port is not None and self.database_url is not None:
            # The events too: one per stored message (every step's, so far).
            stored = stored_messages(self.database_url)
            while (
                time.monotonic() < deadline
                and sink_count(self.sink_port)["received_messages"] < stored
            ):
                time.sleep(0.5)
        cpu = cpu_seconds(self.service.proc.pid) - cpu_before
        pg_cpu = postgres_cpu_seconds() - pg_before
        start_s, interval = load["start_monotonic"], load["interval"]
        due = {t: start_s + i * interval for i, t in enumerate(tokens)}
        load_end_ns = (start_s + total * interval) * 1e9
        first: dict[str, int] = {}
        duplicates = 0
        for token, arrived_ns, _ in got["replies"]:
            if token not in mine:
                continue
            if token in first:
                duplicates += 1
                continue
            first[token] = arrived_ns
        latencies_ms = [(first[t] / 1e9 - due[t]) * 1000 for t in wanted if t in first]
        # The backlog when the load ended: webhooks due well before then, still unanswered.
        stale_after = STALE_AFTER + self.quiet_period
        old = [t for t in wanted if due[t] <= start_s + total * interval - stale_after]
        stale = sum(1 for t in old if t not in first or first[t] > load_end_ns)
        answered_in_load = sum(1 for t in wanted if t in first and first[t] <= load_end_ns)
        held = len(acknowledged) == total and stale <= STALE_SHARE * max(1, len(old))
        events: dict[str, Any] | None = None
        if self.sink_port is not None:
            # Each acknowledged webhook is one stored text, so one event: the ones due well
            # before the load's end should have theirs by then.
            counts = sink_count(self.sink_port, before_ns=load_end_ns)
            by_end = counts["before"] - self.seen["events"]
            events = {
                "delivered": counts["count"] - self.seen["events"],
                "delivered_during_load": by_end,
                "lag_at_load_end": max(0, len(acknowledged) - by_end),
                "held": len(old) - by_end <= STALE_SHARE * max(1, len(old)),
            }
            held = held and events["held"]
            self.seen["events"] = counts["count"]
        result = {
            "rate": rate,
            "duration_s": duration,
            "held": held,
            "load": load,
            "webhooks_due": total,
            "webhooks_acknowledged": len(acknowledged),
            "replies_for_acknowledged": len(wanted & first.keys()),
            "replied_during_load_per_s": round(answered_in_load / duration, 1),
            "backlog_at_load_end": len(wanted) - answered_in_load,
            "stale_at_load_end": stale,
            "lost": len(wanted - first.keys()),
            "duplicate_replies": duplicates,
            # Replies with no token: fallback texts (the LLM failed), never expected here.
            "untraced_replies": got["untraced"] - self.seen["untraced"],
            "read_receipts": got["read"] - self.seen["read"],
            "e2e_ms": summary(latencies_ms) if latencies_ms else None,
            # The server process's CPU from the load's start to the drain's end, per reply.
            "server_cpu_ms_per_reply": round(1000 * cpu / max(1, len(first)), 3),
            # Every postgres process's CPU over the same span, per reply.
            "pg_cpu_ms_per_reply": round(1000 * pg_cpu / max(1, len(first)), 3),
            "events": events,
        }
        self.seen.update(untraced=got["untraced"], read=got["read"])
        e2e = result["e2e_ms"] or {}
        say(
            f"  {'held' if held else 'did not hold'}: replied "
            f"{result['replies_for_acknowledged']:,} of {len(acknowledged):,} acknowledged, "
            f"{result['replied_during_load_per_s']}/s "
            f"during the load, backlog at its end {result['backlog_at_load_end']:,}, "
            f"duplicates {duplicates}, reply p50 {e2e.get('median', 0):.0f} ms, "
            f"p99 {e2e.get('p99', 0):.0f} ms, server CPU {result['server_cpu_ms_per_reply']} ms, "
            f"postgres {result['pg_cpu_ms_per_reply']} ms per reply"
            + (
                f"; events {events['delivered']:,}, {events['delivered_during_load']:,} during "
                f"the load (lag at its end {events['lag_at_load_end']:,}"
                + ("" if events["held"] else ": DID NOT KEEP UP")
                + ")"
                if events
                else ""
            )
        )
        return result


def start_target(
    name: str, args: argparse.Namespace, stack: ExitStack, workdir: Path, admin: str
) -> tuple[Target, str | None]:
    """Starts ``name`` with its own fakes; returns it and its database URL (Changarrito's)."""
    llm_port = fake("openai", stack)
    graph_port = fake("graph", stack)
    if name == "pywa":
        port = free_port()
        env = {**os.environ, "BENCH_APP_SECRET": APP_SECRET}
        argv = [
            sys.executable,
            "-m",
            "bench.e2e_peer",
            "--port",
            str(port),
            "--llm-url",
            f"http://127.0.0.1:{llm_port}/v1",
            "--graph-url",
            f"http://127.0.0.1:{graph_port}",
            "--phone-id",
            PLATFORM_NUMBER.phone_number_id,
        ]
        from bench.service import tenant_number

        def launch() -> Service:
            return start("pywa", argv, env, port, workdir)

        numbers = [tenant_number(i) for i in range(args.tenants)]
        peer = Target(name, launch(), graph_port, numbers, workdir, relaunch=launch)
        stack.callback(lambda: peer.service.stop())
        return peer, None
    from changarrito.adapters.crypto.keyring import KeyRing

    url = stack.enter_context(scratch_database(admin))
    keys = KeyRing.generate().serialize()
    llm = {
        "apiKey": "sk-bench-tenant-0000000000000000",
        "baseUrl": f"http://127.0.0.1:{llm_port}/v1",
    }
    checkout = checkout_of(name, args)
    venv = None if checkout == ROOT else checkout / ".venv"
    if venv is None:
        numbers = seed(url, keys, args.tenants, extra_llm=llm)
    else:
        numbers = seed_with(venv, url, keys, args.tenants, extra_llm=llm)
    extra = {
        "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{graph_port}",
        # The tenants' LLM baseUrl is the fake on this host (a one-host harness).
        "CHANGARRITO_ALLOW_PRIVATE_URLS": "loopback",
    }
    if args.workers_concurrency is not None:
        extra["CHANGARRITO_WORKERS_CONCURRENCY"] = str(args.workers_concurrency)
    quiet = args.quiet_period if name == "changarrito-bursts" else 0.0
    extra["CHANGARRITO_QUIET_PERIOD"] = f"{quiet:g}"
    sink_port = None
    if name == "changarrito-events":
        sink_port = fake("sink", stack)
        extra["CHANGARRITO_EVENTS_URL"] = f"http://127.0.0.1:{sink_port}/events"
        extra["CHANGARRITO_EVENTS_SECRET"] = EVENTS_SECRET
    env = service_env(url, keys, extra)
    if venv is None:
        service = start_changarrito(env, workdir, name=name)
    else:
        service = start_changarrito(env, workdir, name=name, venv=venv)
    stack.callback(service.stop)
    target = Target(
        name,
        service,
        graph_port,
        numbers,
        workdir,
        database_url=url,
        quiet_period=quiet,
        sink_port=sink_port,
    )
    return target, url


def search(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """The highest rate that holds: short steps from ``--start-rate``, up by half until one
    fails (down by a third until one holds when the first fails), bisected to
    ``--resolution``, then confirmed for ``--duration`` (down by a tenth while it fails)."""
    steps = []
    held: float | None = None
    failed: float | None = None
    rate = args.start_rate
    while args.resolution <= rate <= args.max_rate:
        result = target.step(args, rate, args.search_duration)
        steps.append(result)
        if not result["held"]:
            target.recover()
        if result["held"]:
            held = rate
            if failed is not None:
                break
            rate = round(rate * 1.5 / args.resolution) * args.resolution
        else:
            failed = rate
            if held is not None:
                break
            rate = round(rate * 2 / 3 / args.resolution) * args.resolution
    while held is not None and failed is not None and failed - held > args.resolution:
        rate = round((held + failed) / 2 / args.resolution) * args.resolution
        result = target.step(args, rate, args.search_duration)
        steps.append(result)
        if result["held"]:
            held = rate
        else:
            failed = rate
            target.recover()
    confirmed = None
    rate = held or args.start_rate
    for _ in range(4):
        result = target.step(args, rate, args.duration)
        steps.append(result)
        if result["held"]:
            confirmed = result
            break
        target.recover()
        rate = round(rate * 0.9 / args.resolution) * args.resolution
    return {
        "capacity": confirmed["rate"] if confirmed else None,
        "confirmed": confirmed,
        "steps": steps,
    }


#: The variants measured against ``changarrito`` in the same run: (server, whose capacity is
#: divided by whose, what the ratio says, its target).
VARIANTS = (
    ("changarrito-bursts", "changarrito", "bursts on ÷ off", None),
    ("changarrito-events", "changarrito", "events outbox on ÷ off", 0.9),
    ("changarrito", "changarrito-baseline", "its checkout ÷ the baseline checkout", 0.9),
)


def common_rates(runs: dict[str, Any], over: str, under: str) -> list[float]:
    """The rates both servers ran and held (a rate run twice counts its last step)."""
    a = {s["rate"] for s in runs.get(over, {}).get("steps", []) if s["held"]}
    b = {s["rate"] for s in runs.get(under, {}).get("steps", []) if s["held"]}
    return sorted(a & b)


def same_rate_ratio(runs: dict[str, Any], over: str, under: str, key: str) -> float | None:
    """The median, over the rates both servers ran and held, of ``over``'s ``key`` (a CPU per
    reply) divided by ``under``'s: less moved by the machine's other load than capacity."""
    a = {s["rate"]: s.get(key) for s in runs.get(over, {}).get("steps", []) if s["held"]}
    b = {s["rate"]: s.get(key) for s in runs.get(under, {}).get("steps", []) if s["held"]}
    found = sorted(float(a[r]) / float(b[r]) for r in set(a) & set(b) if a[r] and b[r])
    if not found:
        return None
    mid = len(found) // 2
    value = found[mid] if len(found) % 2 else (found[mid - 1] + found[mid]) / 2
    return round(value, 3)


def report(runs: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(
        f"End to end — {describe_machine(info)}; {args.tenants} tenants; "
        f"changarrito workers: {args.workers_concurrency or 'service default'}"
    )
    for name, tree in info.get("trees", {}).items():
        print(
            f"{name}: {tree['path']} at {tree['commit']}, {tree['uncommitted_files']} "
            f"uncommitted files (digest {tree['uncommitted_sha256']})"
        )
    if "autovacuum" in info:
        between = "before every step" if args.vacuum_between_steps else "once, before step 1"
        print(f"queue tables vacuumed {between}; server autovacuum: {info['autovacuum']}")
    capacities = {name: run.get("capacity") for name, run in runs.items()}
    ratios: dict[str, Any] = {}
    # Ratios first, absolute numbers after.
    if args.capacity:
        print("\ncapacity (highest rate held for", f"{args.duration:g} s):", capacities)
        if capacities.get("changarrito") and capacities.get("pywa"):
            ratios["capacity_changarrito_over_pywa"] = ratio(
                capacities["changarrito"], capacities["pywa"]
            )
            print(
                f"changarrito ÷ pywa_async bot: {ratios['capacity_changarrito_over_pywa']} "
                "(target ≥ 0.7)"
            )
    for over, under, what, target in VARIANTS:
        if over not in runs or under not in runs:
            continue
        key = f"{over}_over_{under}"
        found: dict[str, Any] = {
            "capacity": ratio(capacities[over], capacities[under])
            if capacities.get(over) and capacities.get(under)
            else None,
            "server_cpu_per_reply": same_rate_ratio(runs, over, under, "server_cpu_ms_per_reply"),
            "pg_cpu_per_reply": same_rate_ratio(runs, over, under, "pg_cpu_ms_per_reply"),
            "same_rates": common_rates(runs, over, under),
        }
        ratios[key] = found
        goal = f" (target ≥ {target})" if target and found["capacity"] is not None else ""
        print(
            f"{over} ÷ {under} ({what}): capacity {found['capacity'] or '-'}{goal}; "
            f"at the same rates ({', '.join(f'{r:g}' for r in found['same_rates']) or 'none'}/s), "
            f"server CPU per reply {found['server_cpu_per_reply'] or '-'}, "
            f"postgres CPU per reply {found['pg_cpu_per_reply'] or '-'}"
        )
    if capacities.get("changarrito") and capacities.get("changarrito-bursts"):
        ratios["capacity_bursts_on_over_off"] = ratio(
            capacities["changarrito-bursts"], capacities["changarrito"]
        )
    quiet = quiet_period_cost(runs, args.quiet_period)
    if quiet:
        ratios["quiet_period_added_median_ms"] = quiet
        print(
            f"quiet period {args.quiet_period:g} s (changarrito-bursts minus changarrito, median "
            "reply latency at the same rate; every webhook here is a new customer's only "
            "message, so each waits one whole quiet period): "
            + ", ".join(f"+{ms:.0f} ms at {rate}/s" for rate, ms in quiet.items())
        )
    rows = []
    verdicts = []
    for name, run in runs.items():
        for s in run["steps"]:
            e2e = s["e2e_ms"] or {}
            ack = s["load"]["latency_us"] or {}
            events = s.get("events") or {}
            rows.append(
                (
                    name,
                    f"{s['rate']:g}",
                    f"{s['duration_s']:g}",
                    "yes" if s["held"] else "no",
                    s["load"]["achieved_rate"],
                    s["replied_during_load_per_s"],
                    s["backlog_at_load_end"],
                    events.get("lag_at_load_end"),
                    ack.get("median", 0) / 1000,
                    ack.get("p99", 0) / 1000,
                    e2e.get("median"),
                    e2e.get("p99"),
                    s.get("server_cpu_ms_per_reply"),
                    s.get("pg_cpu_ms_per_reply"),
                    s["lost"],
                    s["duplicate_replies"],
                )
            )
            if s["untraced_replies"]:
                verdicts.append(
                    f"{name} at {s['rate']:g}/s: {s['untraced_replies']} replies without their"
                    " token (fallback texts: the LLM failed) -> INVALID RUN"
                )
            if name.startswith("changarrito") and s["duplicate_replies"]:
                verdicts.append(f"{name} at {s['rate']:g}/s: DUPLICATE REPLIES")
        states = run.get("inbound_states_at_end") or {}
        unanswered = sum(s["lost"] for s in run["steps"])
        queued = states.get("pending", 0) + states.get("processing", 0)
        if name.startswith("changarrito") and unanswered:
            verdicts.append(
                f"{name}: {unanswered} not answered within the drain, "
                + ("all still queued (stored, not lost)" if queued >= unanswered else "LOSS")
            )
        if run.get("events") is not None:
            ev = run["events"]
            one_each = (
                ev["sink_received_messages"] == ev["stored_messages"]
                and ev["sink_posts"] == ev["sink_distinct_ids"]
            )
            verdicts.append(
                f"{name}: {ev['stored_messages']:,} messages stored, the sink got "
                f"{ev['sink_posts']:,} posts ({ev['sink_distinct_ids']:,} distinct webhook-ids, "
                f"message.received for {ev['sink_received_messages']:,} distinct messages); "
                f"outbox at the end: {ev['outbox']} -> "
                + ("one event per stored message" if one_each else "NOT ONE EVENT PER MESSAGE")
            )
    headers = (
        "server",
        "rate/s",
        "s",
        "held",
        "acked/s",
        "replied/s",
        "backlog",
        "event lag",
        "ack p50 ms",
        "ack p99 ms",
        "reply p50 ms",
        "reply p99 ms",
        "CPU ms/reply",
        "pg ms/reply",
        "unanswered",
        "dups",
    )
    print()
    print(table(headers, rows))
    for name, run in runs.items():
        if run.get("inbound_states_at_end") is not None:
            ledger = run.get("usage_ledger_rows")
            print(
                f"{name} inbound states at the end: {run['inbound_states_at_end']}; usage "
                "ledger rows: " + ("no ledger at this commit" if ledger is None else f"{ledger:,}")
            )
    print("\n".join(verdicts) or "nothing lost, nothing answered twice")
    path = write_results(
        "e2e",
        {
            "machine": info,
            "settings": vars(args),
            "ratios": ratios,
            "capacities": capacities,
            "runs": runs,
        },
    )
    print(f"results: {path}")


def quiet_period_cost(runs: dict[str, Any], quiet: float) -> dict[str, float]:
    """The median reply latency the quiet period adds: changarrito-bursts' minus
    changarrito's, at each rate both ran (``{"200": 2012.0}``)."""
    off = {s["rate"]: s["e2e_ms"] for s in runs.get("changarrito", {}).get("steps", [])}
    on = {s["rate"]: s["e2e_ms"] for s in runs.get("changarrito-bursts", {}).get("steps", [])}
    return {
        f"{rate:g}": on[rate]["median"] - off[rate]["median"]
        for rate in sorted(set(off) & set(on))
        if off[rate] and on[rate] and quiet > 0
    }


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--servers",
        default=None,
        help=f"comma-separated, of {', '.join(SERVERS)} (default: {', '.join(DEFAULT_SERVERS)}, "
        "and changarrito-baseline with --baseline-checkout)",
    )
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="webhooks per second")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument(
        "--capacity", action="store_true", help="search each server's highest holding rate"
    )
    parser.add_argument("--search-duration", type=float, default=15, help="seconds per step")
    parser.add_argument("--start-rate", type=float, default=100)
    parser.add_argument("--max-rate", type=float, default=2000)
    parser.add_argument("--resolution", type=float, default=10, help="rates are multiples")
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
        "--quiet-period",
        type=float,
        default=2.0,
        help="CHANGARRITO_QUIET_PERIOD of changarrito-bursts (changarrito runs with 0)",
    )
    parser.add_argument(
        "--vacuum-between-steps",
        action="store_true",
        help="vacuum changarrito's queue tables before every step (default: once, before "
        "the first; then autovacuum only, as a long-running service)",
    )
    parser.add_argument(
        "--baseline-checkout",
        default=None,
        help="another checkout of the project with its own .venv (make .venv/.installed-stamp "
        "there): server changarrito-baseline runs its serve, for an A/B of two commits",
    )
    parser.add_argument(
        "--checkout",
        default=None,
        help="run the Changarrito servers other than the baseline from this checkout's .venv "
        "(default: this one's)",
    )
    parser.add_argument(
        "--embedded", action="store_true", help="PostgreSQL from pgserver instead of the machine's"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample changarrito's server with py-spy through each step (collapsed stacks in "
        "the work folder, which is kept)",
    )
    args = parser.parse_args()
    if args.servers is None:
        default = DEFAULT_SERVERS[:-1] + ("changarrito-baseline",) * bool(args.baseline_checkout)
        args.servers = ",".join(default + DEFAULT_SERVERS[-1:])
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if unknown := set(names) - set(SERVERS):
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if "changarrito-baseline" in names and not args.baseline_checkout:
        parser.error("changarrito-baseline needs --baseline-checkout")
    for checkout in (args.checkout, args.baseline_checkout):
        if checkout and not (Path(checkout) / ".venv" / "bin" / "changarrito").exists():
            parser.error(f"{checkout}/.venv/bin/changarrito is missing")
    workdir = Path(tempfile.mkdtemp(prefix="changarrito-bench-e2e-"))
    runs: dict[str, Any] = {}
    with ExitStack() as outer:
        if args.embedded:
            from bench.embedded import embedded_admin_url

            admin = outer.enter_context(embedded_admin_url())
        else:
            admin = admin_url()
        info: dict[str, Any] | None = None
        # The code each Changarrito server ran, read as it starts (the tree may be edited
        # while the bench runs; a started server keeps what it imported).
        trees: dict[str, Any] = {}
        for name in names:
            with ExitStack() as stack:
                if name != "pywa":
                    trees[name] = checkout_state(checkout_of(name, args))
                target, url = start_target(name, args, stack, workdir, admin)
                if info is None or url:
                    info = machine(url)
                if url:
                    info["autovacuum"] = autovacuum_settings(url)
                    if info["autovacuum"].get("autovacuum") != "on" and not (
                        args.vacuum_between_steps
                    ):
                        say(
                            "warning: the server's autovacuum is off: nothing clears the "
                            "message tables' dead rows between steps"
                        )
                run: dict[str, Any] = (
                    search(target, args)
                    if args.capacity
                    else {"steps": [target.step(args, args.rate, args.duration)]}
                )
                target.service.stop()
                if url:
                    run["inbound_states_at_end"] = queue_states(url)
                    run["usage_ledger_rows"] = ledger_rows(url)
                if url and target.sink_port is not None:
                    sink = sink_count(target.sink_port)
                    run["events"] = {
                        "stored_messages": stored_messages(url),
                        "sink_posts": sink["count"],
                        "sink_distinct_ids": sink["distinct"],
                        "sink_received_messages": sink["received_messages"],
                        "sink_types": sink["types"],
                        "outbox": event_states(url),
                    }
                if any(s["lost"] for s in run["steps"]):
                    run["log_tail"] = target.service.tail(20)
                runs[name] = run
        assert info is not None
        info["trees"] = trees
        info["database"] = (
            "an embedded PostgreSQL (pgserver) given as DATABASE_URL"
            if args.embedded
            else "the machine's PostgreSQL via DATABASE_URL (" + admin.split("@")[-1] + ")"
        )
    report(runs, info, args)


if __name__ == "__main__":
    main()
