"""Webhook intake: ``changarrito serve`` (durable, group commit) vs a bare Litestar endpoint
and pywa's own FastAPI webhook handler, in one run, under the same server settings.

For each round, every server (in an order that rotates between rounds) is started alone,
checked with a few bodies, warmed up, then measured twice with bodies never sent before:

1. *peak*: ``wrk`` (closed loop, ``-t``/``-c`` connections) cycling through pre-signed bodies
   (``wrk/intake.lua``): requests/s, p50/p99;
2. *80 % of peak*: ``loadgen`` (open loop, its own process) at 0.8x that server's own peak:
   p50/p99 from each request's due time.

Then, for Changarrito, every message and status of every body answered 200 in phase 2 is
looked up in PostgreSQL: acknowledged must mean stored.

Run: ``make bench-intake`` (or ``bench/.venv/bin/python -m bench.intake --help``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    admin_url,
    describe_machine,
    exit_on_sigterm,
    machine,
    ratio,
    say,
    scratch_database,
    table,
    write_results,
)
from bench.payloads import Generator, encode, messages_in, sign, write_bodies
from bench.service import (
    APP_SECRET,
    PLATFORM_NUMBER,
    Service,
    seed,
    server_choices,
    service_env,
    start_baseline,
    start_changarrito,
)

TARGETS = {"over_bare": 0.7, "over_pywa": 1.4, "p99_ms_at_80pct": 50.0}
SERVERS = ("bare", "pywa", "changarrito")
LUA = ROOT / "bench" / "wrk" / "intake.lua"


def wrk(port: int, bodies: Path, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    argv = [
        "wrk",
        "-t",
        str(args.threads),
        "-c",
        str(args.connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
        "--",
        str(bodies),
        str(args.threads),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            data["rps"] = round(data["requests"] / (data["duration_us"] / 1e6), 1)
            return data
    raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def loadgen(
    port: int, bodies: Path, rate: float, seconds: float, ack: Path, args: argparse.Namespace
) -> dict[str, Any]:
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--bodies",
        str(bodies),
        "--rate",
        f"{rate:.1f}",
        "--duration",
        str(seconds),
        "--connections",
        str(args.connections),
        "--acknowledged",
        str(ack),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def post(port: int, body: bytes, signature: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/whatsapp",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def pywa_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__bench/stats", timeout=10) as r:
        return dict(json.loads(r.read()))


def smoke(service: Service, gen: Generator) -> dict[str, Any]:
    """One body of each kind must be answered 200 (and, by pywa, parsed without error)."""
    payloads = [gen.text(), gen.status(), gen.batch(3)]
    for payload in payloads:
        body = encode(payload)
        status = post(service.port, body, sign(body, APP_SECRET))
        if status != 200:
            raise RuntimeError(f"{service.name} answered {status} to a valid body")
    if service.name == "pywa":
        time.sleep(0.5)
        stats = pywa_stats(service.port)
        if stats["errors"] or stats["messages"] < 2 or stats["statuses"] < 1 or not stats["bsuids"]:
            raise RuntimeError(f"pywa did not parse the bench's bodies: {stats}")
        return stats
    return {}


def stored(database_url: str, bodies: Path, ack: Path) -> dict[str, int]:
    """Of the bodies answered 200, how many messages and statuses are in PostgreSQL."""
    import psycopg

    lines = {int(x) for x in ack.read_text().split()}
    wamids: list[str] = []
    statuses: list[tuple[str, str]] = []
    with bodies.open("rb") as f:
        for i, line in enumerate(f):
            if i not in lines:
                continue
            payload = json.loads(line.split(b"\t", 1)[1])
            wamids += messages_in(payload)
            for e in payload["entry"]:
                for ch in e["changes"]:
                    statuses += [(s["id"], s["status"]) for s in ch["value"].get("statuses", [])]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM whatsapp_inbound_messages WHERE wamid = ANY(%s)", (wamids,)
        ).fetchone()
        found = row[0] if row else 0
        row = conn.execute(
            "SELECT count(*) FROM whatsapp_message_statuses s JOIN unnest(%s::text[], %s::text[])"
            " AS a(wamid, status) ON s.wamid = a.wamid AND s.status = a.status",
            ([w for w, _ in statuses], [s for _, s in statuses]),
        ).fetchone()
        found_statuses = row[0] if row else 0
    return {
        "acknowledged_bodies": len(lines),
        "messages_acknowledged": len(wamids),
        "messages_stored": found,
        "statuses_acknowledged": len(statuses),
        "statuses_stored": found_statuses,
    }


def measure(
    service: Service,
    files: dict[str, Path],
    gen: Generator,
    args: argparse.Namespace,
    database_url: str | None,
    workdir: Path,
) -> dict[str, Any]:
    result: dict[str, Any] = {"smoke": smoke(service, gen)}
    say(f"  {service.name}: warm-up {args.warmup:g} s, peak {args.duration:g} s ...")
    wrk(service.port, files["warmup"], args, args.warmup)
    peak = wrk(service.port, files["peak"], args, args.duration)
    result["peak"] = peak
    rate = round(0.8 * peak["rps"], 1)
    say(f"  {service.name}: {peak['rps']:,.0f} req/s; now {rate:,.0f}/s for {args.paced:g} s ...")
    # Fresh bodies for the paced phase, never sent before.
    paced_file = workdir / f"paced-{service.name}-{gen.prefix}.txt"
    write_bodies(paced_file, (gen.mixed() for _ in range(int(rate * args.paced) + 10)), APP_SECRET)
    time.sleep(1)
    ack = workdir / f"ack-{service.name}-{gen.prefix}.txt"
    result["at_80pct"] = loadgen(service.port, paced_file, rate, args.paced, ack, args)
    if service.name == "pywa":
        time.sleep(1)
        result["pywa_handled"] = pywa_stats(service.port)
    if service.name == "changarrito" and database_url:
        result["durability"] = stored(database_url, paced_file, ack)
    return result


def run_round(
    r: int,
    args: argparse.Namespace,
    numbers: list[Any],
    env: dict[str, str] | None,
    database_url: str | None,
    workdir: Path,
    loop: str,
    http: str,
) -> dict[str, Any]:
    order = list(SERVERS[r % 3 :] + SERVERS[: r % 3])
    say(f"round {r + 1}: {' -> '.join(order)}")
    # Bodies of this round: shared by the three servers, never seen by any before.
    gen = Generator(numbers, prefix=f"R{r}", seed=r)
    files = {"warmup": workdir / f"warmup-{r}.txt", "peak": workdir / f"peak-{r}.txt"}
    write_bodies(
        files["warmup"], (gen.mixed() for _ in range(int(args.max_rps * args.warmup))), APP_SECRET
    )
    info = write_bodies(
        files["peak"], (gen.mixed() for _ in range(int(args.max_rps * args.duration))), APP_SECRET
    )
    out: dict[str, Any] = {"order": order, "peak_bodies": info}
    for name in order:
        if name == "changarrito":
            assert env is not None
            service = start_changarrito(env, workdir)
        else:
            service = start_baseline(name, workdir, loop, http)
        # Each server gets its own body stream for smoke and paced phases (same generator
        # rules, unique wamids), and the shared warm-up and peak files.
        sgen = Generator(numbers, prefix=f"R{r}{name[0].upper()}", seed=r * 10 + len(name))
        try:
            out[name] = measure(
                service, files, sgen, args, database_url if name == "changarrito" else None, workdir
            )
        except Exception:
            say(service.tail())
            raise
        finally:
            service.stop()
    return out


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    per_round = []
    for rd in rounds:
        rps = {n: rd[n]["peak"]["rps"] for n in SERVERS}
        per_round.append(
            {
                "changarrito_over_bare": ratio(rps["changarrito"], rps["bare"]),
                "changarrito_over_pywa": ratio(rps["changarrito"], rps["pywa"]),
                "pywa_over_bare": ratio(rps["pywa"], rps["bare"]),
            }
        )
    ratios = {k: med([p[k] for p in per_round if p[k] is not None]) for k in per_round[0]}
    p99_80 = med([rd["changarrito"]["at_80pct"]["latency_us"]["p99"] / 1000 for rd in rounds])
    return {"ratios": ratios, "per_round": per_round, "changarrito_p99_ms_at_80pct": p99_80}


def report(data: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    rounds = data["rounds"]
    s = summarise(rounds)
    print()
    print(f"Webhook intake — {describe_machine(info)}")
    print(
        f"servers: uvicorn, 1 process, loop={data['loop']}, http={data['http']}, access log "
        f"off; changarrito on {data['database']}; wrk -t{args.threads} -c{args.connections}"
    )
    rows = []
    for i, rd in enumerate(rounds):
        bare = rd["bare"]["peak"]["rps"]
        pywa = rd["pywa"]["peak"]["rps"]
        for name in SERVERS:
            m = rd[name]
            peak, paced = m["peak"], m["at_80pct"]
            lat = paced["latency_us"] or {}
            errors = peak["errors_status"] + peak["errors_timeout"] + peak["errors_connect"]
            rows.append(
                (
                    i + 1,
                    name,
                    ratio(peak["rps"], bare),
                    ratio(peak["rps"], pywa),
                    peak["rps"],
                    peak["latency_us"]["p50"] / 1000,
                    peak["latency_us"]["p99"] / 1000,
                    paced["achieved_rate"],
                    lat.get("median", 0) / 1000,
                    lat.get("p99", 0) / 1000,
                    errors
                    + sum(v for k, v in paced["statuses"].items() if k != "200")
                    + paced["failures"],
                    peak["wrapped"],
                )
            )
    print(
        table(
            (
                "round",
                "server",
                "÷ bare",
                "÷ pywa",
                "req/s",
                "p50 ms",
                "p99 ms",
                "80% req/s",
                "80% p50 ms",
                "80% p99 ms",
                "errors",
                "repeats",
            ),
            rows,
        )
    )
    r = s["ratios"]
    verdicts = {
        "over_bare": r["changarrito_over_bare"] >= TARGETS["over_bare"],
        "over_pywa": r["changarrito_over_pywa"] >= TARGETS["over_pywa"],
        "p99_ms_at_80pct": s["changarrito_p99_ms_at_80pct"] < TARGETS["p99_ms_at_80pct"],
    }
    print(
        f"\nchangarrito ÷ bare = {r['changarrito_over_bare']} (target >= 0.7: "
        f"{'met' if verdicts['over_bare'] else 'MISSED'}); ÷ pywa = "
        f"{r['changarrito_over_pywa']} (target >= 1.4: "
        f"{'met' if verdicts['over_pywa'] else 'MISSED'}); pywa ÷ bare = {r['pywa_over_bare']}"
    )
    print(
        f"changarrito p99 at 80 % of its peak = {s['changarrito_p99_ms_at_80pct']} ms (target "
        f"< 50: {'met' if verdicts['p99_ms_at_80pct'] else 'MISSED'})"
    )
    for i, rd in enumerate(rounds):
        if "durability" in rd["changarrito"]:
            print(f"round {i + 1} durability: {rd['changarrito']['durability']}")
        if "pywa_handled" in rd["pywa"]:
            print(f"round {i + 1} pywa handlers: {rd['pywa']['pywa_handled']}")
    path = write_results(
        "intake",
        {
            "machine": info,
            "settings": {
                **vars(args),
                "loop": data["loop"],
                "http": data["http"],
                "database": data["database"],
                "tenants": args.tenants,
                "changarrito_env": data["env_shown"],
            },
            "ratios": {**s["ratios"], "per_round": s["per_round"]},
            "targets": {**TARGETS, "met": verdicts},
            "changarrito_p99_ms_at_80pct": s["changarrito_p99_ms_at_80pct"],
            "rounds": rounds,
        },
    )
    print(f"results: {path}")


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=15, help="seconds of the peak phase")
    parser.add_argument("--paced", type=float, default=15, help="seconds at 80 %% of peak")
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument(
        "--max-rps",
        type=float,
        default=6000,
        help="bodies generated per second of peak phase (more than any server does)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="PostgreSQL from pgserver (the service's embedded default) instead of the machine's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (bodies, logs)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: run `make bench-setup` (apt-get install -y wrk)")
    from changarrito.adapters.crypto.keyring import KeyRing

    loop, http = server_choices()
    workdir = Path(tempfile.mkdtemp(prefix="changarrito-bench-intake-"))
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
        keys = KeyRing.generate().serialize()
        numbers = [PLATFORM_NUMBER, *seed(url, keys, args.tenants)]
        env = service_env(url, keys, {"CHANGARRITO_WORKERS_CONCURRENCY": "0"})
        shown = {
            k: ("***" if "KEY" in k or "SECRET" in k or "TOKEN" in k or k == "DATABASE_URL" else v)
            for k, v in env.items()
            if k.startswith(("CHANGARRITO_", "WHATSAPP_", "DATABASE"))
        }
        shown.pop("CHANGARRITO_HOME", None)
        rounds = [
            run_round(r, args, numbers, env, url, workdir, loop, http) for r in range(args.rounds)
        ]
    data = {"rounds": rounds, "loop": loop, "http": http, "database": where, "env_shown": shown}
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"work folder kept: {workdir}")
    report(data, info, args)


if __name__ == "__main__":
    main()
