"""LLM call overhead: our OpenAI provider (through the plugin registry) vs ``litellm.acompletion``.

Both call the same zero-latency OpenAI-compatible fake (``bench.fakes openai``, its own
process) one call at a time. A bare ``httpx`` POST of a pre-encoded body measures what the
server and the loopback cost, so that

    overhead(client) = median(client call) - median(bare httpx call)

is what the client library adds. The three are measured in interleaved rounds in one process,
after a warm-up, and every reply is checked. Target: ours <= 0.25x LiteLLM's overhead.

Run: ``make bench-llm`` (or ``bench/.venv/bin/python -m bench.llm --help``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import (
    describe_machine,
    exit_on_sigterm,
    free_port,
    machine,
    ratio,
    say,
    stop,
    summary,
    table,
    wait_for_port,
    write_results,
)

TARGET = 0.25
API_KEY = "sk-bench-0000000000000000000000000000"
MODEL = "gpt-4o-mini"
PROMPT = "Hola, ¿tienen tortillas de maíz hoy? [bench]"
EXPECTED = "Gracias, recibido [bench]."

Call = Callable[[], Awaitable[str]]


def quiet_litellm() -> Any:
    """LiteLLM with its network side effects off (no cost-map download, no telemetry): the
    machine has no internet, and they are not part of a call."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


async def build_calls(base_url: str) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]]:
    import httpx
    import msgspec

    from changarrito.adapters.http import DEFAULT_LIMITS, DEFAULT_TIMEOUT, HttpClients
    from changarrito.adapters.logs import configure_logging
    from changarrito.domain.chat import ChatMessage
    from changarrito.plugins.manager import load_plugins

    # Logging as the service configures it (CHANGARRITO_LOG_LEVEL, default INFO).
    configure_logging(os.environ.get("CHANGARRITO_LOG_LEVEL", "INFO"))
    # ... which sets the root logger: keep LiteLLM's own loggers at LITELLM_LOG (ERROR), as
    # they are without it, so that neither client pays for log lines.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # Ours: the registry as the composition root builds it, with the platform's endpoint
    # pointed at the fake through OPENAI_BASE_URL.
    http = HttpClients()
    registry = load_plugins({"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": API_KEY}, http=http)
    provider = registry.llm("openai")
    credentials = provider.parse_credentials({"apiKey": API_KEY})
    config = provider.parse_config({"model": MODEL})
    messages = [ChatMessage(role="user", content=PROMPT)]

    async def ours() -> str:
        reply = await provider.chat(messages, config, credentials)
        return reply.text

    litellm = quiet_litellm()

    async def theirs() -> str:
        response = await litellm.acompletion(
            model=f"openai/{MODEL}",
            messages=[{"role": "user", "content": PROMPT}],
            api_base=base_url,
            api_key=API_KEY,
        )
        return str(response.choices[0].message.content)

    # The floor: one pooled client, a body encoded once, the bytes read and nothing decoded.
    raw_client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS)
    body = msgspec.json.encode({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]})
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    url = base_url + "/chat/completions"

    async def raw() -> str:
        response = await raw_client.post(url, content=body, headers=headers)
        response.raise_for_status()
        return EXPECTED if EXPECTED.encode() in response.content else response.text

    async def close() -> None:
        await raw_client.aclose()
        await http.aclose()

    return {"raw httpx": raw, "changarrito": ours, "litellm": theirs}, close


async def measure(
    calls: dict[str, Call], rounds: int, per_round: int, warmup: int
) -> dict[str, Any]:
    for name, call in calls.items():
        for _ in range(warmup):
            text = await call()
            if text != EXPECTED:
                raise RuntimeError(f"{name} returned {text!r}, expected {EXPECTED!r}")
    samples: dict[str, list[int]] = {name: [] for name in calls}
    round_medians: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    clock = time.perf_counter_ns
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            call = calls[name]
            these = []
            for _ in range(per_round):
                started = clock()
                text = await call()
                these.append(clock() - started)
                if text != EXPECTED:
                    raise RuntimeError(f"{name} returned {text!r}")
            samples[name] += these
            round_medians[name].append(summary(these)["median"])
    return {"samples": samples, "round_medians": round_medians}


def report(measured: dict[str, Any], info: dict[str, Any], args: argparse.Namespace) -> None:
    stats = {name: summary(values) for name, values in measured["samples"].items()}
    floor = stats["raw httpx"]["median"]
    overhead = {name: s["median"] - floor for name, s in stats.items()}
    p99_overhead = {name: s["p99"] - stats["raw httpx"]["p99"] for name, s in stats.items()}
    # The same ratio per round: how stable the headline is.
    per_round = [
        ratio(ours - raw, lite - raw)
        for ours, lite, raw in zip(
            measured["round_medians"]["changarrito"],
            measured["round_medians"]["litellm"],
            measured["round_medians"]["raw httpx"],
            strict=True,
        )
    ]
    headline = ratio(overhead["changarrito"], overhead["litellm"])
    rows = []
    for name, s in stats.items():
        rows.append(
            (
                name,
                ratio(overhead[name], overhead["litellm"]) if name != "raw httpx" else None,
                overhead[name] / 1000,
                s["median"] / 1000,
                s["p99"] / 1000,
                p99_overhead[name] / 1000,
                s["n"],
            )
        )
    print()
    print(f"LLM call overhead — {describe_machine(info)}")
    print(
        table(
            (
                "client",
                "overhead ÷ litellm",
                "overhead µs",
                "median µs",
                "p99 µs",
                "p99 overhead µs",
                "calls",
            ),
            rows,
        )
    )
    verdict = "met" if headline is not None and headline <= TARGET else "MISSED"
    print(
        f"\nours/litellm overhead = {headline} (target <= {TARGET}: {verdict}); per round: "
        f"{per_round}"
    )
    path = write_results(
        "llm",
        {
            "machine": info,
            "settings": {
                "rounds": args.rounds,
                "calls_per_round": args.calls,
                "warmup": args.warmup,
                "concurrency": 1,
                "server": "bench.fakes openai (zero latency, own process)",
                "model": MODEL,
            },
            "ratios": {
                "changarrito_overhead_over_litellm_overhead": headline,
                "per_round": per_round,
                "target": TARGET,
                "met": verdict == "met",
                "changarrito_call_over_raw": ratio(stats["changarrito"]["median"], floor),
                "litellm_call_over_raw": ratio(stats["litellm"]["median"], floor),
            },
            "overhead_us": {k: round(v / 1000, 1) for k, v in overhead.items()},
            "p99_overhead_us": {k: round(v / 1000, 1) for k, v in p99_overhead.items()},
            "absolute_us": {
                k: {m: round(v / 1000, 1) if m != "n" else v for m, v in s.items()}
                for k, s in stats.items()
            },
        },
    )
    print(f"results: {path}")


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measurement
        [sys.executable, "-m", "bench.fakes", "openai", "--port", str(port)],
        start_new_session=True,
    )
    try:
        wait_for_port(port, server)
        calls, close = await build_calls(f"http://127.0.0.1:{port}/v1")
        try:
            say(f"measuring {args.rounds} rounds x {args.calls} calls per client ...")
            measured = await measure(calls, args.rounds, args.calls, args.warmup)
        finally:
            await close()
    finally:
        stop(server)
    report(measured, machine(), args)


def main() -> None:
    exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400, help="calls per client per round")
    parser.add_argument("--warmup", type=int, default=200)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
