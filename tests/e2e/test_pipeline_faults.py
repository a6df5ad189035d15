"""Faults, end to end: Graph throttling, a rejected token and timeouts, an overloaded or broken
LLM, and a worker process killed with SIGKILL in the middle of a batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes._server import Answer
from fakes.fake_graph import FakeGraph, quoted
from fakes.fake_llm import FakeLLM
from fakes.world import (
    PLATFORM_PNID,
    Worker,
    World,
    fakes,
    module_world,
    running_server,
    wait_for,
)
from whatsapp_payloads import text_message


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    """One database and one pair of fakes for the tests sharing ``server``."""
    yield from module_world(pg_admin_url)


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = world.env(
        CHANGARRITO_GRAPH_TIMEOUT="0.5",
        CHANGARRITO_MAX_ATTEMPTS="3",
        CHANGARRITO_FALLBACK_TEXT="Volvemos pronto.",
    )
    with running_server(env, tmp_path_factory.mktemp("serve")) as url:
        yield url


@pytest.fixture(autouse=True)
def _well_behaved_fakes_again(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "world" in request.fixturenames:
        request.getfixturevalue("world").reset()


@pytest.fixture
def fresh_world(fresh_database_url: str) -> Iterator[World]:
    """A world of its own, for tests that run their own processes."""
    for graph, llm in fakes():
        yield World(fresh_database_url, graph, llm)


def attempts_to(world: World, wamid: str) -> list[object]:
    """Every send quoting ``wamid`` that reached the fake, accepted or not."""
    return [s for s in world.graph.sends(accepted_only=False) if quoted(s) == wamid]


def test_a_throughput_limit_is_retried_and_the_customer_gets_one_reply(
    world: World, server: str
) -> None:
    shop = world.shop("pan", "111000000000011")
    world.graph.script_sends(FakeGraph.error(130429, message="Rate limit hit"))

    wamid = world.say(server, shop, "¿Hay conchas?")

    wait_for("the answer", lambda: world.inbound(wamid)["state"] == "answered")
    assert len(attempts_to(world, wamid)) == 2
    assert len(world.graph.replies_to(wamid)) == 1
    assert world.inbound(wamid)["attempts"] == 2
    assert (
        len(world.chats_about("¿Hay conchas?")) == 1
    )  # the recorded reply was re-sent, not regenerated


def test_a_rejected_token_fails_at_once_and_marks_the_credential_unverified(
    world: World, server: str
) -> None:
    shop = world.shop("tacos", "222000000000022")
    world.graph.script_sends(FakeGraph.error(190, 401, "Error validating access token"))

    wamid = world.say(server, shop, "Tres al pastor")

    failed = wait_for("the failure", lambda: (m := world.inbound(wamid))["state"] == "failed" and m)
    assert failed["attempts"] == 1
    assert "access token" in failed["last_error"]
    assert shop.token not in failed["last_error"]
    verified, error = world.credential_verification(shop.tenant_id)
    assert not verified and "access token" in (error or "")
    assert len(attempts_to(world, wamid)) == 1  # never retried

    # Once the shop fixed its token, an operator replays the message.
    replay = subprocess.run(
        [
            str(Path(sys.executable).with_name("changarrito")),
            "messages",
            "retry",
            str(failed["id"]),
        ],
        env={"PATH": os.environ.get("PATH", ""), **world.env()},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    wait_for("the replayed answer", lambda: world.inbound(wamid)["state"] == "answered")
    assert len(world.graph.replies_to(wamid)) == 1


def test_a_graph_api_that_stops_answering_is_retried_after_the_timeout(
    world: World, server: str
) -> None:
    shop = world.shop("jugos", "333000000000033")
    world.graph.script_sends(Answer(hang=True))

    wamid = world.say(server, shop, "Un jugo verde")

    wait_for("the answer", lambda: world.inbound(wamid)["state"] == "answered")
    assert len(world.graph.replies_to(wamid)) == 1
    assert world.inbound(wamid)["attempts"] == 2


def test_an_overloaded_llm_is_retried_and_its_answer_is_sent(world: World, server: str) -> None:
    shop = world.shop("cafe", "444000000000044")
    world.llm.script(FakeLLM.error(529, "Overloaded"))

    wamid = world.say(server, shop, "Un café de olla")

    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    assert reply.body["text"]["body"] == "Respuesta a: Un café de olla"
    assert [c.status for c in world.chats_about("Un café de olla")] == [529, 200]


def test_an_llm_that_stays_overloaded_gets_the_shops_fallback_text_instead_of_silence(
    world: World, server: str
) -> None:
    shop = world.shop("nieves", "555000000000055", fallback_text="¡Gracias! Te respondo en breve.")
    world.llm.script(*[FakeLLM.error(529, "Overloaded")] * 10)

    wamid = world.say(server, shop, "¿De qué sabores?")

    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    assert reply.body["text"]["body"] == "¡Gracias! Te respondo en breve."
    assert len(world.chats_about("¿De qué sabores?")) == 3


def test_an_llm_that_refuses_the_key_gets_the_platforms_fallback_text_at_once(
    world: World, server: str
) -> None:
    world.llm.script(FakeLLM.error(401, "Incorrect API key provided"))

    wamid = world.say(server, PLATFORM_PNID, "Hola")

    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    assert reply.body["text"]["body"] == "Volvemos pronto."
    assert len(world.chats_about("Hola")) == 1
    assert world.inbound(wamid)["attempts"] == 1


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.close()


def test_a_worker_killed_mid_batch_loses_nothing_and_answers_nothing_twice(
    fresh_world: World, start_server, workers: list[Worker], tmp_path: Path
) -> None:
    shop = fresh_world.shop("dulces", "666000000000066")
    env = fresh_world.env(CHANGARRITO_WORKERS_CONCURRENCY="1", CHANGARRITO_WORKER_LEASE="1.5")
    server = start_server("all", {**env, "CHANGARRITO_WORKERS_CONCURRENCY": "0"})  # intake only
    fresh_world.graph.send_delay = 0.3
    workers.append(Worker(env, tmp_path / "worker-1"))
    messages = [text_message(f"pedido {n}", sender=f"52155100000{n:02d}") for n in range(8)]
    fresh_world.post(
        server.url, World.text_webhook(shop.phone_number_id, *messages), shop.webhook_secret
    )

    # Kill it while a send is in flight, after a few replies went out.
    wait_for(
        "three replies", lambda: len(fresh_world.graph.sends()) >= 3 and fresh_world.graph.in_flight
    )
    workers[0].signal(signal.SIGKILL)
    workers[0].process.wait(timeout=10)
    done_before = len(fresh_world.graph.sends())
    assert done_before < len(messages)
    workers.append(Worker(env, tmp_path / "worker-2"))

    wamids = [m["id"] for m in messages]
    wait_for("every reply", lambda: all(fresh_world.graph.replies_to(w) for w in wamids), 90)
    wait_for(
        "every answer", lambda: all(fresh_world.inbound(w)["state"] == "answered" for w in wamids)
    )
    assert sorted(quoted(s) for s in fresh_world.graph.sends()) == sorted(wamids)  # once each
    assert len(fresh_world.graph.sends(accepted_only=False)) > len(messages)  # one was cut short
    answered = [
        json.loads(line) for line in workers[1].output().splitlines() if "message.answered" in line
    ]
    assert [a["resent_parts"] for a in answered if a["resent_parts"]] == [1]


def test_a_worker_stopped_with_sigterm_finishes_the_message_in_hand(
    fresh_world: World, start_server, workers: list[Worker], tmp_path: Path
) -> None:
    shop = fresh_world.shop("chiles", "777000000000077")
    env = fresh_world.env(CHANGARRITO_WORKERS_CONCURRENCY="1")
    server = start_server("all", {**env, "CHANGARRITO_WORKERS_CONCURRENCY": "0"})
    fresh_world.graph.send_delay = 0.5
    worker = Worker(env, tmp_path / "worker")
    workers.append(worker)

    wamid = fresh_world.say(server.url, shop, "Chiles en nogada")
    wait_for("the send in flight", lambda: fresh_world.graph.in_flight)
    worker.signal(signal.SIGTERM)

    assert worker.process.wait(timeout=10) == 0
    assert fresh_world.inbound(wamid)["state"] == "answered"
    assert len(fresh_world.graph.replies_to(wamid)) == 1
