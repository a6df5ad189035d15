"""Conversations end to end, against a real ``changarrito serve`` and worker processes: a
burst gets one reply, a person can take over (by the owner writing from the WhatsApp
Business app, or by the model's handoff tool), the bot comes back after the idle time, what
cannot be read is told once, an edit or a deletion before the answer counts, and a worker
killed mid-burst still gives exactly one reply."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from changarrito.domain.conversations import DEFAULT_HANDOFF_MESSAGE
from fakes.fake_llm import FakeLLM, last_user_text, slow_answer
from fakes.world import Shop, Worker, World, fakes, module_world, running_server, wait_for
from whatsapp_payloads import message, new_wamid, text_message

QUIET = 1.5
IDLE_HOURS = 0.002  # 7.2 seconds


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    yield from module_world(pg_admin_url)


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = world.env(
        CHANGARRITO_QUIET_PERIOD=str(QUIET), CHANGARRITO_HANDOFF_IDLE_HOURS=str(IDLE_HOURS)
    )
    with running_server(env, tmp_path_factory.mktemp("serve")) as url:
        yield url


@pytest.fixture(autouse=True)
def _well_behaved_fakes_again(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "world" in request.fixturenames:
        world = request.getfixturevalue("world")
        world.reset()
        world.llm.clear_replies()


def customer_number(n: int) -> str:
    return f"52155{n:08d}"


def sends_to(world: World, customer: str) -> list[Any]:
    return [s for s in world.graph.sends() if str(s.body.get("to")).lstrip("+") == customer]


def chats_with(world: World, text: str) -> list[Any]:
    return [c for c in world.llm.chats() if text in last_user_text(c.body["messages"])]


def conversation(world: World, shop: Shop, customer: str) -> dict[str, Any]:
    with psycopg.connect(world.database_url) as conn:
        cur = conn.execute(
            "SELECT v.id, v.state, v.state_changed_by FROM whatsapp_conversations v"
            " JOIN whatsapp_contacts c ON c.id = v.contact_id"
            " WHERE c.phone_number_id = %s AND c.phone = %s",
            (shop.phone_number_id, customer),
        )
        row = cur.fetchone()
        names = [c.name for c in cur.description or ()]
    assert row is not None, f"no conversation with {customer}"
    return dict(zip(names, row, strict=True))


def echo(world: World, server: str, shop: Shop, customer: str, text: str) -> None:
    """The owner writes ``text`` to ``customer`` from the WhatsApp Business app."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "smb_message_echoes",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": shop.phone_number_id,
                            },
                            "message_echoes": [
                                {
                                    "from": "15550783881",
                                    "to": customer,
                                    "id": new_wamid(),
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    assert world.post(server, payload, shop.webhook_secret).status_code == 200


def test_three_messages_a_second_apart_get_one_llm_call_and_one_reply(
    world: World, server: str
) -> None:
    shop = world.shop("tortillas", "121000000000012")
    customer = customer_number(1)
    wamids = []
    for text in ("hola", "una pregunta", "¿tienen tortillas?"):
        wamids.append(world.say(server, shop, text, sender=customer))
        time.sleep(1)

    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamids[-1]))
    time.sleep(QUIET + 0.5)  # nothing else follows

    assert sends_to(world, customer) == [reply]
    (chat,) = chats_with(world, "hola")
    assert last_user_text(chat.body["messages"]) == "hola\n\nuna pregunta\n\n¿tienen tortillas?"
    assert [world.inbound(w)["state"] for w in wamids] == ["answered", "joined", "joined"]


def test_the_owner_writing_from_the_app_hands_the_conversation_over_and_the_bot_stays_quiet(
    world: World, server: str
) -> None:
    shop = world.shop("abarrotes", "122000000000012")
    customer = customer_number(2)
    first = world.say(server, shop, "¿Hacen envíos?", sender=customer)
    wait_for("the bot's reply", lambda: world.graph.replies_to(first))

    echo(world, server, shop, customer, "Sí, yo te lo llevo en la tarde")
    later = world.say(server, shop, "¡Gracias! ¿A qué hora?", sender=customer)

    wait_for("the message to be settled", lambda: world.inbound(later)["state"] == "ignored")
    assert world.inbound(later)["last_error"] == "a person is answering this conversation"
    assert len(sends_to(world, customer)) == 1
    state = conversation(world, shop, customer)
    assert (state["state"], state["state_changed_by"]) == ("human", "owner:15550783881")
    with psycopg.connect(world.database_url) as conn:
        owner = conn.execute(
            "SELECT author, text FROM whatsapp_outbound_messages WHERE conversation_id = %s"
            " AND author = 'owner'",
            (state["id"],),
        ).fetchall()
    assert owner == [("owner", "Sí, yo te lo llevo en la tarde")]


def test_a_bot_reply_being_written_when_the_owner_writes_is_dropped_unsent(
    world: World, server: str
) -> None:
    shop = world.shop("carniceria", "123000000000012")
    customer = customer_number(3)
    world.llm.script(slow_answer("Tenemos arrachera a 250 el kilo.", delay=2.5))
    wamid = world.say(server, shop, "¿Precio de la arrachera?", sender=customer)
    wait_for("the LLM to be writing the reply", lambda: world.llm.in_flight)

    echo(world, server, shop, customer, "Te atiendo yo, ¿cuántos kilos?")

    wait_for("the message to be settled", lambda: world.inbound(wamid)["state"] == "ignored")
    assert "a person took the conversation over" in world.inbound(wamid)["last_error"]
    time.sleep(0.5)
    assert sends_to(world, customer) == []


def test_the_models_handoff_tells_the_customer_and_the_next_message_waits_for_a_person(
    world: World, server: str
) -> None:
    shop = world.shop("farmacia", "124000000000012")
    customer = customer_number(4)
    world.llm.reply_with_tool_call(
        "handoff", {"reason": "quiere un reembolso"}, when="Quiero mi dinero"
    )

    wamid = world.say(server, shop, "Quiero mi dinero", sender=customer)

    (reply,) = wait_for("the handoff message", lambda: world.graph.replies_to(wamid))
    assert reply.body["text"]["body"] == DEFAULT_HANDOFF_MESSAGE
    (chat,) = chats_with(world, "Quiero mi dinero")
    assert FakeLLM.tools_offered(chat) == ["handoff"]
    state = conversation(world, shop, customer)
    assert (state["state"], state["state_changed_by"]) == ("human", "model")

    later = world.say(server, shop, "¿Hola?", sender=customer)
    wait_for("the message to be settled", lambda: world.inbound(later)["state"] == "ignored")
    assert len(sends_to(world, customer)) == 1


def test_after_the_idle_time_the_bot_answers_again(world: World, server: str) -> None:
    shop = world.shop("papeleria", "125000000000012")
    customer = customer_number(5)
    echo(world, server, shop, customer, "Hola, soy la dueña")
    time.sleep(IDLE_HOURS * 3600 + 0.5)

    wamid = world.say(server, shop, "¿Tienen cartulinas?", sender=customer)

    wait_for("the bot's reply", lambda: world.graph.replies_to(wamid))
    state = conversation(world, shop, customer)
    assert (state["state"], state["state_changed_by"]) == ("bot", "idle")


def test_a_sticker_gets_the_text_only_reply_once_per_conversation(
    world: World, server: str
) -> None:
    shop = world.shop("panaderia", "126000000000012")
    customer = customer_number(6)
    asked_before = len(world.llm.chats())
    first = message("sticker", {"id": "8801", "mime_type": "image/webp"}, sender=customer)
    world.post(server, World.text_webhook(shop.phone_number_id, first), shop.webhook_secret)

    (reply,) = wait_for("the text-only reply", lambda: world.graph.replies_to(first["id"]))
    assert reply.body["text"]["body"].startswith("Solo puedo leer mensajes de texto")

    second = message("sticker", {"id": "8802", "mime_type": "image/webp"}, sender=customer)
    world.post(server, World.text_webhook(shop.phone_number_id, second), shop.webhook_secret)
    wait_for("the second one settled", lambda: world.inbound(second["id"])["state"] == "ignored")
    assert len(sends_to(world, customer)) == 1
    assert len(world.llm.chats()) == asked_before  # the LLM was never asked


def test_an_edit_before_the_answer_is_what_the_assistant_reads_and_a_deletion_is_not_answered(
    world: World, server: str
) -> None:
    shop = world.shop("fruteria", "127000000000012")
    customer, other = customer_number(7), customer_number(8)
    said = text_message("dos kilos de mango", sender=customer)
    edit = message(
        "edit",
        {
            "original_message_id": said["id"],
            "message": {"type": "text", "text": {"body": "tres kilos de mango"}},
        },
        sender=customer,
    )
    world.post(server, World.text_webhook(shop.phone_number_id, said, edit), shop.webhook_secret)
    gone = text_message("mándame el número de cuenta", sender=other)
    revoke = message("revoke", {"original_message_id": gone["id"]}, sender=other)
    world.post(server, World.text_webhook(shop.phone_number_id, gone), shop.webhook_secret)
    world.post(server, World.text_webhook(shop.phone_number_id, revoke), shop.webhook_secret)

    wait_for("the edited one answered", lambda: world.graph.replies_to(said["id"]))
    assert chats_with(world, "tres kilos de mango") and not chats_with(world, "dos kilos")
    time.sleep(QUIET + 0.5)
    assert world.inbound(gone["id"])["state"] == "ignored"
    assert (
        world.inbound(gone["id"])["last_error"] == "deleted by the customer before it was answered"
    )
    assert sends_to(world, other) == []


@pytest.fixture
def fresh_world(fresh_database_url: str) -> Iterator[World]:
    for graph, llm in fakes():
        yield World(fresh_database_url, graph, llm)


def test_a_worker_killed_mid_burst_leaves_exactly_one_reply(
    fresh_world: World, start_server: Any, tmp_path: Path
) -> None:
    shop = fresh_world.shop("tacos", "128000000000012")
    customer = customer_number(9)
    env = fresh_world.env(
        CHANGARRITO_QUIET_PERIOD="1",
        CHANGARRITO_WORKERS_CONCURRENCY="2",
        CHANGARRITO_WORKER_LEASE="1.5",
    )
    server = start_server("all", {**env, "CHANGARRITO_WORKERS_CONCURRENCY": "0"})  # intake only
    workers = [Worker(env, tmp_path / "worker-1")]
    try:
        fresh_world.llm.script(slow_answer("Son 25 pesos cada uno.", delay=5))
        wamids = []
        for text in ("buenas", "¿cuánto el de pastor?", "y una coca"):
            wamids.append(fresh_world.say(server.url, shop, text, sender=customer))
            time.sleep(0.3)
        wait_for("the LLM to be writing the reply", lambda: fresh_world.llm.in_flight)
        workers[0].signal(signal.SIGKILL)
        workers[0].process.wait(timeout=10)
        workers.append(Worker(env, tmp_path / "worker-2"))

        wait_for("the reply", lambda: sends_to(fresh_world, customer), 30)
        time.sleep(2.5)  # the lease of the killed worker's message ran out long ago
        assert len(sends_to(fresh_world, customer)) == 1
        asked = [last_user_text(c.body["messages"]) for c in chats_with(fresh_world, "buenas")]
        # The killed worker's request is recorded once its answer is due, if at all.
        assert asked and set(asked) == {"buenas\n\n¿cuánto el de pastor?\n\ny una coca"}
        states = sorted(fresh_world.inbound(w)["state"] for w in wamids)
        assert states == ["answered", "joined", "joined"]
    finally:
        for worker in workers:
            worker.close()


def test_a_message_that_arrives_while_the_reply_is_written_is_answered_next_not_in_parallel(
    world: World, server: str
) -> None:
    shop = world.shop("mercado", "129000000000012")
    customer = customer_number(10)
    world.llm.script(slow_answer("Sí, hay nopales.", delay=2))
    first = world.say(server, shop, "¿Hay nopales?", sender=customer)
    wait_for("the LLM to be writing the reply", lambda: world.llm.in_flight)

    second = world.say(server, shop, "¿Y cilantro?", sender=customer)

    (reply,) = wait_for("the second reply", lambda: world.graph.replies_to(second))
    (answer,) = world.graph.replies_to(first)
    assert answer.body["text"]["body"] == "Sí, hay nopales." and answer.at < reply.at
    (later,) = chats_with(world, "¿Y cilantro?")
    assert [m["content"] for m in later.body["messages"][-3:]] == [
        "¿Hay nopales?",
        "Sí, hay nopales.",
        "¿Y cilantro?",
    ]
