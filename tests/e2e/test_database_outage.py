"""PostgreSQL going away under load, end to end (issue 10, "What to keep").

The real ``changarrito serve`` process takes a steady stream of signed webhooks for the
platform's number, and its workers answer each through the fake LLM and the fake Graph API,
while the database goes away:

- on the machine's PostgreSQL, every connection of the service's database is terminated with
  ``pg_terminate_backend``, again and again, for a few seconds;
- on the embedded PostgreSQL (no ``DATABASE_URL``), the server is stopped, and started again
  a few seconds later.

What Meta and the customers see must hold: while the database is gone a webhook is refused
with 503 (never a 500, never a hang), so Meta delivers it again; every webhook acknowledged
with 200 is stored and answered exactly once, and so is every refused one once Meta's
redelivery (done here) gets its 200; within 5 seconds of the database's return, ``/ready`` is
200 and a new webhook is acknowledged and answered.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from fakes.fake_graph import quoted
from fakes.world import (
    PLATFORM_APP_SECRET,
    PLATFORM_PNID,
    World,
    module_world,
    running_server,
    wait_for,
)
from whatsapp_payloads import change, encode, signed_headers, text_message, webhook

#: How long the connections are terminated, again and again.
OUTAGE = 3.0
#: How long the embedded server stays stopped: longer than the intake waits for a connection
#: (5 s), so that webhooks are refused, not only delayed.
STOPPED = 6.0
#: How soon after its return the service must take and answer webhooks again.
RECOVERY = 5.0
#: Concurrent senders of webhooks (Meta delivers in parallel).
SENDERS = 4

_customers = itertools.count(5215550000001)


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    yield from module_world(pg_admin_url)


@pytest.fixture
def embedded_home() -> Iterator[Path]:
    """Not under pytest's basetemp: a concurrent pytest session resets that folder to 0700,
    and PostgreSQL runs as another user when the tests run as root."""
    home = Path(tempfile.mkdtemp(prefix="changarrito-outage-"))
    try:
        yield home
    finally:
        # serve stops the server it started, not the one started again here.
        with contextlib.suppress(AssertionError):
            Embedded(home / "pgdata").stop()
        shutil.rmtree(home, ignore_errors=True)


def service_env(world: World) -> dict[str, str]:
    return world.env(
        CHANGARRITO_WORKERS_CONCURRENCY="8",
        CHANGARRITO_MAX_ATTEMPTS="50",  # an outage must not dead-letter anything
        # Longer than the outage, as the default (120 s) is: a worker that lives through it
        # keeps its messages (the e2e default of 2 s is for workers that die).
        CHANGARRITO_WORKER_LEASE="30",
    )


def test_connections_terminated_under_load_lose_nothing_and_answer_nothing_twice(
    world: World, pg_admin_url: str, tmp_path: Path
) -> None:
    dbname = conninfo_to_dict(world.database_url)["dbname"]
    with running_server(service_env(world), tmp_path / "serve") as url:
        meta = Meta(url, world)
        with meta.delivering():
            meta.wait_until_answered(5)
            killed = terminate_connections(pg_admin_url, dbname, OUTAGE)
            recovered = back_within(url, meta, time.monotonic())

        assert killed > 0, "no connection of the service was terminated: no fault was injected"
        meta.check(recovered)


def test_the_embedded_postgres_stopped_and_started_again_loses_nothing(
    world: World, embedded_home: Path
) -> None:
    env = service_env(world)
    del env["DATABASE_URL"], env["CHANGARRITO_ENCRYPTION_KEYS"]  # the embedded default
    with running_server(env, embedded_home) as url:
        embedded = Embedded(embedded_home / "pgdata")
        meta = Meta(url, World(embedded.url(), world.graph, world.llm))
        with meta.delivering():
            meta.wait_until_answered(5)
            embedded.stop()
            stopped = time.monotonic()
            wait_for("/ready to answer 503", lambda: ready_status(url) == 503, timeout=10)
            time.sleep(max(0.0, STOPPED - (time.monotonic() - stopped)))  # the outage itself
            embedded.start()
            recovered = back_within(url, meta, time.monotonic())

        meta.check(recovered)


# --- Meta's side ----------------------------------------------------------------------------


@dataclass
class Meta:
    """Delivers webhooks as Meta does, from several threads, and keeps what each got."""

    url: str
    world: World
    acknowledged: list[str] = field(default_factory=list)
    refused: dict[str, bytes] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    def deliver(self, text: str) -> tuple[str, int | str]:
        """One customer's message (each its own conversation, answered in parallel)."""
        message = text_message(text, sender=str(next(_customers)))
        body = encode(webhook(change(PLATFORM_PNID, messages=[message])))
        return message["id"], self._post(message["id"], body)

    def _post(self, wamid: str, body: bytes) -> int | str:
        try:
            response = httpx.post(
                self.url + "/webhooks/whatsapp",
                content=body,
                headers=signed_headers(body, PLATFORM_APP_SECRET),
                timeout=15,
            )
        except httpx.HTTPError as exc:  # a hang or a dropped connection: never acceptable
            outcome: int | str = type(exc).__name__
        else:
            outcome = response.status_code
            if outcome == 503:
                problem = response.json()
                if not problem.get("type", "").endswith("/storage-unavailable"):
                    outcome = f"503 {problem.get('type')}"
        with self._lock:
            if outcome == 200:
                self.acknowledged.append(wamid)
                self.refused.pop(wamid, None)
            elif outcome == 503:
                self.refused[wamid] = body
            else:
                self.wrong.append(f"{wamid}: {outcome}")
        return outcome

    @contextmanager
    def delivering(self) -> Iterator[None]:
        def sender(n: int) -> None:
            i = 0
            while not self._stop.is_set():
                i += 1
                self.deliver(f"¿Tienen pan? (envío {n}.{i})")
                time.sleep(0.05)

        with ThreadPoolExecutor(SENDERS) as pool:
            futures = [pool.submit(sender, n) for n in range(SENDERS)]
            try:
                yield
            finally:
                self._stop.set()
                for f in futures:
                    f.result()

    def wait_until_answered(self, count: int) -> None:
        """Until ``count`` more of the acknowledged webhooks have been answered."""
        goal = len(self._answered()) + count
        wait_for(f"{count} more webhooks answered", lambda: len(self._answered()) >= goal, 30)

    def _answered(self) -> set[str]:
        with self._lock:
            acked = set(self.acknowledged)
        return {quoted(s) for s in self.world.graph.sends()} & acked

    def redeliver_refused(self) -> None:
        """Meta delivers every refused webhook again until it gets its 200."""
        while True:
            with self._lock:
                pending = dict(self.refused)
            if not pending:
                return
            for wamid, body in pending.items():
                self._post(wamid, body)
            time.sleep(0.1)

    def check(self, recovered: float) -> None:
        """Every requirement of the module's docstring, once the load has stopped."""
        assert not self.wrong, f"answered neither 200 nor 503: {self.wrong[:10]}"
        assert recovered <= RECOVERY, f"back {recovered:.1f}s after the database returned"
        refused = list(self.refused)
        self.redeliver_refused()
        everything = set(self.acknowledged)
        assert refused, "no webhook was refused: the outage was not observed"
        assert set(refused) <= everything
        wait_for(
            "every webhook answered",
            lambda: all(self.world.graph.replies_to(w) for w in everything),
            timeout=30,
        )
        time.sleep(1.0)  # a second answer would come within a retry backoff (0.5 s here)
        twice = {w: n for w in everything if (n := len(self.world.graph.replies_to(w))) != 1}
        assert not twice, f"answered more than once: {twice}"
        wait_for("every answer settled", lambda: self.states(everything) == {"answered"}, 30)

    def states(self, wamids: set[str]) -> set[str]:
        """The states of these inbound messages (``missing`` for one not stored)."""
        with psycopg.connect(self.world.database_url) as conn:
            rows = conn.execute(
                "SELECT wamid, state FROM whatsapp_inbound_messages WHERE wamid = ANY(%s)",
                (list(wamids),),
            ).fetchall()
        return {state for _, state in rows} | ({"missing"} if len(rows) < len(wamids) else set())


def back_within(url: str, meta: Meta, since: float) -> float:
    """Seconds from ``since`` until ``/ready`` is 200 and a new webhook is acknowledged and
    answered."""

    wait_for("/ready", lambda: ready_status(url) == 200, timeout=30)
    while True:
        wamid, status = meta.deliver("¿Ya volvieron?")
        if status == 200:
            break
        assert time.monotonic() - since < 30, "the intake did not come back"
        time.sleep(0.05)
    wait_for("the new webhook answered", lambda: meta.world.graph.replies_to(wamid), timeout=30)
    return time.monotonic() - since


def ready_status(url: str) -> int | None:
    try:
        return httpx.get(url + "/ready", timeout=15).status_code
    except httpx.HTTPError:
        return None


# --- the faults ------------------------------------------------------------------------------


def terminate_connections(admin_url: str, dbname: str, seconds: float) -> int:
    """Terminates every connection to ``dbname`` (but this one) for ``seconds``, as fast as
    they come back; returns how many were terminated."""
    killed = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchone()
            killed += row[0] if row else 0
            time.sleep(0.01)
    return killed


class Embedded:
    """The serve process's embedded PostgreSQL, stopped and started from outside."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata

    def _running(self) -> Any:
        info = _pgserver().utils.PostmasterInfo.read_from_pgdata(self.pgdata)
        return info if info is not None and info.is_running() else None

    def url(self) -> str:
        info = self._running()
        assert info is not None, "the embedded PostgreSQL is not running"
        return str(info.get_uri(database="changarrito"))

    def stop(self) -> None:
        """A fast shutdown (SIGINT to the postmaster), as ``pg_ctl stop -m fast`` does."""
        info = self._running()
        assert info is not None, "the embedded PostgreSQL is not running"
        os.kill(info.pid, signal.SIGINT)
        wait_for("the embedded PostgreSQL to stop", lambda: self._running() is None, 15)

    def start(self) -> None:
        """Started as pgserver starts it (same socket folder); this process's handle is
        dropped at once, so the serve process stays the one that stops it at exit."""
        handle = _pgserver().get_server(self.pgdata, cleanup_mode=None)
        handle.cleanup()


def _pgserver() -> Any:
    with warnings.catch_warnings():  # platformdirs complains about XDG_RUNTIME_DIR in CI
        warnings.simplefilter("ignore")
        import pgserver
        import pgserver.utils

    return pgserver
