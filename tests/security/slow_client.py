"""A slow client for the slow-client tests: it sends its bytes one at a time and reports what
the server answered and when it closed the connection."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterable


async def dribble(
    port: int, data: Iterable[int], every: float, seconds: float, *, first: bytes = b""
) -> tuple[bytes, float]:
    """Sends ``first`` at once, then ``data`` one byte every ``every`` seconds (nothing when it
    is empty), for at most ``seconds``; returns what the server answered and when it closed
    (or ``seconds``). A reset counts as a close: the server did not read what we sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    writer.write(first)

    async def drip() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(every)

    dripping = asyncio.create_task(drip())
    answer = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                answer += chunk
    except (TimeoutError, ConnectionError):
        pass
    finally:
        closed_after = time.monotonic() - start
        dripping.cancel()
        with contextlib.suppress(BaseException):
            await dripping
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return answer, closed_after


def endless_spaces() -> Iterable[int]:
    """Body bytes for ever (a body that never completes)."""
    return itertools.repeat(ord(" "))
