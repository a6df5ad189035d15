"""A constant-rate (open-loop) load generator: what wrk2 does and wrk cannot.

Sends the pre-signed bodies of a file (``payloads`` format) at a fixed rate over a pool of
keep-alive connections, on asyncio, in its own process. Request ``i`` is *due* at
``start + i / rate``; its latency runs from that due time, not from when a connection was
free, so a server that falls behind shows it in the percentiles (no coordinated omission).
The service time (from the actual write) is reported too.

Prints one line of JSON: requests due, answered, statuses, achieved rate, both latency
summaries (µs), and the line numbers of the bodies answered 200 (for the durability check).

Run: ``python -m bench.loadgen --port P --bodies FILE --rate R --duration S``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from bench.common import summary
from bench.payloads import read_bodies


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status


async def run(args: argparse.Namespace) -> tuple[dict[str, object], list[int]]:
    bodies = read_bodies(Path(args.bodies))[args.offset :]
    total = min(len(bodies), int(args.rate * args.duration))
    if total < int(args.rate * args.duration):
        print(
            f"loadgen: only {len(bodies)} bodies for {args.rate * args.duration:.0f} requests",
            file=sys.stderr,
        )
    host = f"127.0.0.1:{args.port}"
    requests = [
        (
            f"POST {args.path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Hub-Signature-256: {sig}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for sig, body in bodies[:total]
    ]
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        idle.put_nowait(Connection(reader, writer))
    latencies: list[float] = []
    service: list[float] = []
    statuses: dict[int, int] = {}
    acknowledged: list[int] = []
    failures = 0
    clock = time.monotonic  # CLOCK_MONOTONIC: the fakes of other processes read the same clock
    interval = 1.0 / args.rate
    start = clock() + 0.05

    async def one(i: int, due: float) -> None:
        nonlocal failures
        conn = await idle.get()
        sent = clock()
        try:
            status = await conn.send(requests[i])
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            failures += 1
            try:  # replace the broken connection
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
                idle.put_nowait(Connection(reader, writer))
            except OSError:
                pass
            return
        done = clock()
        idle.put_nowait(conn)
        latencies.append((done - due) * 1e6)
        service.append((done - sent) * 1e6)
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            acknowledged.append(args.offset + i)

    tasks: set[asyncio.Task[None]] = set()
    i = 0
    while i < total:
        now = clock()
        while i < total and start + i * interval <= now:
            task = asyncio.create_task(one(i, start + i * interval))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start + i * interval - clock()))
    if tasks:
        await asyncio.wait(tasks, timeout=args.drain)
    elapsed = clock() - start
    unanswered = total - len(latencies) - failures
    result: dict[str, object] = {
        "rate_target": args.rate,
        "due": total,
        "answered": len(latencies),
        "failures": failures,
        "unanswered_after_drain": unanswered,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "achieved_rate": round(len(latencies) / elapsed, 1) if elapsed > 0 else None,
        "elapsed_s": round(elapsed, 2),
        "latency_us": summary(latencies) if latencies else None,
        "service_us": summary(service) if service else None,
        "connections": args.connections,
        "loop": type(asyncio.get_running_loop()).__module__,
        # Request i (line offset + i) was due at start_monotonic + i * interval.
        "start_monotonic": start,
        "interval": interval,
    }
    return result, sorted(acknowledged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/webhooks/whatsapp")
    parser.add_argument("--bodies", required=True)
    parser.add_argument("--offset", type=int, default=0, help="first line of the file to send")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait at the end")
    parser.add_argument("--acknowledged", help="file to write the line numbers answered 200")
    args = parser.parse_args()
    try:  # a cheaper loop for the load generator only (never for the servers measured)
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    summary_, acknowledged = result
    if args.acknowledged:
        Path(args.acknowledged).write_text("\n".join(map(str, acknowledged)) + "\n")
    print(json.dumps(summary_), flush=True)


if __name__ == "__main__":
    main()
