"""Webhook intake: ``changarrito serve`` (durable, group commit) vs a bare Litestar endpoint
and pywa's asyncio webhook handler on FastAPI, in one run, every server on the same stack: the
one ``serve`` runs on (``--stack`` measures another: ``bench/servers.py``).

Rows: ``bare`` (the issue's floor: a Litestar handler that reads the body); ``bare-asgi``
(the same as a plain ASGI route, the kind of route Changarrito's webhook is: a second, lower
floor, so the first ratio cannot hide what the route kind alone buys); ``pywa``
(``pywa_async``, async handlers); ``changarrito`` (bodies for the tenants' and the
platform's numbers); ``unknown`` (the same service, bodies for a number
nobody owns, signed with the platform's app secret: stored ``unrouted``); and with
``--pywa-sync`` a ``pywa-sync`` row (pywa's synchronous client, handlers in a thread pool).

For each round, every server (in an order that rotates between rounds) is started alone,
checked with a few bodies, warmed up, then measured twice with bodies never sent before:

1. *peak*: ``wrk`` (closed loop, ``-t``/``-c`` connections) cycling through pre-signed bodies
   (``wrk/intake.lua``): requests/s, p50/p99;
2. *80 % of peak*: ``loadgen`` (open loop, its own process) at 0.8x that server's own peak:
   p50/p99 from each request's due time.

Then, for Changarrito (both rows), every message and status of every body answered 200 in
phase 2 is looked up in PostgreSQL: acknowledged must mean stored.

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
    cpu_seconds,
    describe_machine,
    exit_on_sigterm,
    free_port,
    machine,
    postgres_cpu_seconds,
    ratio,
    say,
    scratch_database,
    table,
    write_results,
)
from bench.payloads import Generator, Number, encode, messages_in, sign, write_bodies
from bench.servers import APP_SECRET_ENV, PHONE_ID_ENV
from bench.service import (
    APP_SECRET,
    PLATFORM_NUMBER,
    PROJECT_VENV,
    Service,
    seed,
    service_env,
    start,
    start_changarrito,
)

TARGETS = {"over_bare": 0.7, "over_pywa": 1.4, "p99_ms_at_80pct": 50.0, "unknown_over_known": 0.9}
SERVERS = ("bare", "bare-asgi", "pywa", "changarrito", "unknown")
#: The Changarrito rows (the same service; ``unknown`` gets bodies for ``NOBODYS_NUMBER``).
CHANGARRITO = ("changarrito", "unknown")
#: A number (and business account) no tenant has and the platform's is not: a shop that left
#: but whose number still points at us.
NOBODYS_NUMBER = Number("190000000000009", "525599999999", "290000000000009")
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
    if service.name.startswith("pywa"):
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
    name: str,
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
    spy = profiler(service, name, args, workdir)
    cpu, pg_cpu = cpu_seconds(service.proc.pid), postgres_cpu_seconds()
    peak = wrk(service.port, files["peak"], args, args.duration)
    # CPU per request: what the server (and PostgreSQL) spent on each, whatever else the
    # machine was doing; steadier than req/s on a shared machine.
    peak["server_cpu_us"] = round(1e6 * (cpu_seconds(service.proc.pid) - cpu) / peak["requests"], 1)
    peak["postgres_cpu_us"] = round(1e6 * (postgres_cpu_seconds() - pg_cpu) / peak["requests"], 1)
    if spy is not None:
        spy.wait(timeout=60)
        result["profile"] = str(workdir / f"profile-{service.name}.txt")
        say(f"  {service.name}: profile of the peak phase in {result['profile']}")
    result["peak"] = peak
    rate = round(0.8 * peak["rps"], 1)
    say(f"  {service.name}: {peak['rps']:,.0f} req/s; now {rate:,.0f}/s for {args.paced:g} s ...")
    # Fresh bodies for the paced phase, never sent before.
    paced_file = workdir / f"paced-{service.name}-{gen.prefix}.txt"
    write_bodies(paced_file, (gen.mixed() for _ in range(int(rate * args.paced) + 10)), APP_SECRET)
    time.sleep(1)
    ack = workdir / f"ack-{service.name}-{gen.prefix}.txt"
    result["at_80pct"] = loadgen(service.port, paced_file, rate, args.paced, ack, args)
    if name.startswith("pywa"):
        time.sleep(1)
        result["pywa_handled"] = pywa_stats(service.port)
    if name in CHANGARRITO and database_url:
        result["durability"] = stored(database_url, paced_file, ack)
    return result


def profiler(
    service: Service, name: str, args: argparse.Namespace, workdir: Path
) -> subprocess.Popen[bytes] | None:
    """py-spy sampling a Changarrito row's server through its peak phase (``--profile``),
    as collapsed stacks (one line per stack and its sample count: grep and sum them)."""
    if not args.profile or name not in CHANGARRITO:
        return None
    spy = Path(sys.executable).parent / "py-spy"
    out = workdir / f"profile-{service.name}.txt"
    argv = [str(spy), "record", "--pid", str(service.proc.pid), "--format", "raw"]
    argv += ["--duration", str(max(1, round(args.duration))), "--rate", "200", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def servers_of(args: argparse.Namespace) -> tuple[str, ...]:
    chosen = (*SERVERS, "pywa-sync") if args.pywa_sync else SERVERS
    if args.only:
        chosen = tuple(n for n in chosen if n in args.only.split(","))
    return chosen


def describe_stack(stack: str) -> str:
    """What every row runs on. For ``serve``: what ``changarrito serve`` picks in the project's
    own virtualenv, which must be what the baselines get in ``bench/.venv``."""
    from importlib.metadata import version

    if stack == "granian":
        return (
            f"granian {version('granian')} (asgi, uvloop, single-threaded runtime, HTTP/1, "
            "header read timeout = CHANGARRITO_REQUEST_TIMEOUT)"
        )
    if stack == "h11":
        return f"uvicorn {version('uvicorn')} on asyncio + h11 (no head deadline)"
    from changarrito.entrypoints.server import HTTP_PARSER, LOOP

    probe = "from changarrito.entrypoints.server import HTTP_PARSER, LOOP; print(LOOP, HTTP_PARSER)"
    python = PROJECT_VENV / "bin" / "python"
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True)
    ours = f"{LOOP} {HTTP_PARSER}"
    if out.stdout.strip() != ours:
        raise SystemExit(
            f"changarrito serve runs on {out.stdout.strip()!r} in .venv but the baselines would "
            f"run on {ours!r} in bench/.venv: run `make bench-setup` again"
        )
    return f"uvicorn {version('uvicorn')} on {LOOP} + {HTTP_PARSER}, head deadline (serve's own)"


def start_server(name: str, stack: str, env: dict[str, str], workdir: Path, rnd: int) -> Service:
    """``name``'s server on ``stack``: on serve's own stack Changarrito is the real
    ``changarrito serve``; every other server (and Changarrito on another stack) is
    ``bench.servers`` with the same environment."""
    kind = "changarrito" if name in CHANGARRITO else name
    label = f"{name}-{rnd}"
    if kind == "changarrito" and stack == "serve":
        return start_changarrito(env, workdir, name=label)
    port = free_port()
    argv = [sys.executable, "-m", "bench.servers", kind, "--port", str(port), "--stack", stack]
    peers = {APP_SECRET_ENV: APP_SECRET, PHONE_ID_ENV: PLATFORM_NUMBER.phone_number_id}
    return start(label, argv, {**env, **peers}, port, workdir)


def bodies_for(
    name: str, gen: Generator, rate: float, args: argparse.Namespace, workdir: Path, r: int
) -> dict[str, Path]:
    """Warm-up and peak files of ``rate`` bodies per second of each phase."""
    files = {}
    for phase, seconds in (("warmup", args.warmup), ("peak", args.duration)):
        files[phase] = workdir / f"{phase}-{name}-{r}.txt"
        write_bodies(files[phase], (gen.mixed() for _ in range(int(rate * seconds))), APP_SECRET)
    return files


def run_round(
    r: int,
    args: argparse.Namespace,
    numbers: list[Any],
    env: dict[str, str],
    database_url: str | None,
    workdir: Path,
    servers: tuple[str, ...],
) -> dict[str, Any]:
    k = r % len(servers)
    order = list(servers[k:] + servers[:k])
    say(f"round {r + 1}: {' -> '.join(order)}")
    # Bodies of this round: shared by the servers, never seen by any before; the unknown
    # number's row gets its own (same mix, a number nobody owns).
    known = Generator(numbers, prefix=f"R{r}", seed=r)
    nobodys = [NOBODYS_NUMBER]
    unknown = Generator(nobodys, prefix=f"R{r}N", seed=r)
    files = {"known": bodies_for("known", known, args.max_rps, args, workdir, r)}
    if "unknown" in servers:
        # Only Changarrito gets these: half as many are more than it answers.
        files["unknown"] = bodies_for("unknown", unknown, args.max_rps / 2, args, workdir, r)
    out: dict[str, Any] = {"order": order}
    for name in order:
        service = start_server(name, args.stack, env, workdir, r)
        # Each server gets its own body stream for smoke and paced phases (same generator
        # rules, unique wamids), and the shared warm-up and peak files.
        sgen = Generator(
            nobodys if name == "unknown" else numbers,
            prefix=f"R{r}{name.upper().replace('-', '')}",
            seed=r * 10 + len(name),
        )
        try:
            out[name] = measure(
                name,
                service,
                files["unknown" if name == "unknown" else "known"],
                sgen,
                args,
                database_url if name in CHANGARRITO else None,
                workdir,
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
        rps = {n: rd[n]["peak"]["rps"] for n in rd["order"]}

        def over(a: str, b: str, rps: dict[str, float] = rps) -> float | None:
            return ratio(rps[a], rps[b]) if a in rps and b in rps else None

        per_round.append(
            {
                "changarrito_over_bare": over("changarrito", "bare"),
                "changarrito_over_bare_asgi": over("changarrito", "bare-asgi"),
                "changarrito_over_pywa": over("changarrito", "pywa"),
                "pywa_over_bare": over("pywa", "bare"),
                "unknown_over_known": over("unknown", "changarrito"),
                "changarrito_over_pywa_sync": over("changarrito", "pywa-sync"),
            }
        )
    ratios = {
        k: med(values) if (values := [p[k] for p in per_round if p[k] is not None]) else None
        for k in per_round[0]
    }
    p99s = [
        rd["changarrito"]["at_80pct"]["latency_us"]["p99"] / 1000
        for rd in rounds
        if "changarrito" in rd
    ]
    p99_80 = med(p99s) if p99s else None
    return {"ratios": ratios, "per_round": per_round, "changarrito_p99_ms_at_80pct": p99_80}


def met(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else "met" if ok else "MISSED"


def report(data: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    rounds = data["rounds"]
    s = summarise(rounds)
    print()
    print(f"Webhook intake — {describe_machine(info)}")
    print(
        f"servers: {data['stack']}, 1 process each; changarrito on {data['database']}; "
        f"wrk -t{args.threads} -c{args.connections}"
    )
    rows = []
    for i, rd in enumerate(rounds):
        bare = rd["bare"]["peak"]["rps"] if "bare" in rd else 0
        pywa = rd["pywa"]["peak"]["rps"] if "pywa" in rd else 0
        for name in servers_of(args):
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
                    peak.get("server_cpu_us"),
                    peak.get("postgres_cpu_us"),
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
                "cpu µs/req",
                "pg µs/req",
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
    p99 = s["changarrito_p99_ms_at_80pct"]
    verdicts = {
        "over_bare": met(r["changarrito_over_bare"], TARGETS["over_bare"]),
        "over_pywa": met(r["changarrito_over_pywa"], TARGETS["over_pywa"]),
        "p99_ms_at_80pct": None if p99 is None else p99 < TARGETS["p99_ms_at_80pct"],
        "unknown_over_known": met(r["unknown_over_known"], TARGETS["unknown_over_known"]),
    }
    print(
        f"\nchangarrito ÷ bare = {r['changarrito_over_bare']} (target >= 0.7: "
        f"{verdict(verdicts['over_bare'])}); ÷ pywa = {r['changarrito_over_pywa']} (target "
        f">= 1.4: {verdict(verdicts['over_pywa'])}); pywa ÷ bare = {r['pywa_over_bare']}"
    )
    print(
        f"changarrito p99 at 80 % of its peak = {p99} ms (target < 50: "
        f"{verdict(verdicts['p99_ms_at_80pct'])}); unknown ÷ known number = "
        f"{r['unknown_over_known']} (target >= 0.9: {verdict(verdicts['unknown_over_known'])})"
    )
    if r["changarrito_over_bare_asgi"] is not None:
        print(
            f"changarrito ÷ bare-asgi (the floor of a plain ASGI route) = "
            f"{r['changarrito_over_bare_asgi']}"
        )
    if r["changarrito_over_pywa_sync"] is not None:
        print(f"changarrito ÷ pywa-sync (thread-pool handlers) = {r['changarrito_over_pywa_sync']}")
    for i, rd in enumerate(rounds):
        for name in servers_of(args):
            if "durability" in rd[name]:
                print(f"round {i + 1} {name} durability: {rd[name]['durability']}")
            if "pywa_handled" in rd[name]:
                print(f"round {i + 1} {name} handlers: {rd[name]['pywa_handled']}")
    path = write_results(
        "intake",
        {
            "machine": info,
            "settings": {
                **vars(args),
                "servers": list(servers_of(args)),
                "stack_described": data["stack"],
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
        default=25000,
        help="bodies generated per second of peak phase (more than any server does)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="PostgreSQL from pgserver (the service's embedded default) instead of the machine's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (bodies, logs)")
    parser.add_argument(
        "--stack",
        choices=("serve", "h11", "granian"),
        default="serve",
        help="the server stack of every row (default: the one `changarrito serve` runs on)",
    )
    parser.add_argument(
        "--pywa-sync",
        action="store_true",
        help="add a row for pywa's synchronous client (handlers in a thread pool)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated rows to run (e.g. bare,changarrito to compare stacks); the "
        "ratios need bare, pywa, changarrito and unknown",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the Changarrito rows' server with py-spy through the peak phase "
        "(collapsed stacks in the work folder; implies --keep)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="Changarrito's CHANGARRITO_LOG_LEVEL (default INFO, the service's default: one "
        "line per delivery, written to the row's log file)",
    )
    args = parser.parse_args()
    args.keep = args.keep or args.profile
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: run `make bench-setup` (apt-get install -y wrk)")
    from changarrito.adapters.crypto.keyring import KeyRing

    stack_described = describe_stack(args.stack)
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
        env = service_env(
            url,
            keys,
            {"CHANGARRITO_WORKERS_CONCURRENCY": "0", "CHANGARRITO_LOG_LEVEL": args.log_level},
        )
        shown = {
            k: ("***" if "KEY" in k or "SECRET" in k or "TOKEN" in k or k == "DATABASE_URL" else v)
            for k, v in env.items()
            if k.startswith(("CHANGARRITO_", "WHATSAPP_", "DATABASE"))
        }
        shown.pop("CHANGARRITO_HOME", None)
        rounds = [
            run_round(r, args, numbers, env, url, workdir, servers_of(args))
            for r in range(args.rounds)
        ]
    data = {"rounds": rounds, "stack": stack_described, "database": where, "env_shown": shown}
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"work folder kept: {workdir}")
    report(data, info, args)


if __name__ == "__main__":
    main()
