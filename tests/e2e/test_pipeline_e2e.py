"""End to end: the real ``changarrito serve``, a fake Graph API and a fake LLM on local ports.
A customer writes (a signed webhook), the shop answers (what reaches the fake Graph API)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_graph import phone_number_id, quoted
from fakes.world import (
    PLATFORM_LLM_KEY,
    PLATFORM_MODEL,
    PLATFORM_PNID,
    PLATFORM_TOKEN,
    World,
    module_world,
    running_server,
    wait_for,
)
from whatsapp_payloads import CUSTOMER, message, text_message


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    """One database, one pair of fakes for the module; each test seeds shops of its own."""
    yield from module_world(pg_admin_url)


@pytest.fixture(scope="module")
def serve_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def server(world: World, serve_folder: Path) -> Iterator[str]:
    """One real ``changarrito serve`` (role all, its workers in-process) for every test here."""
    env = world.env(CHANGARRITO_WORKERS_CONCURRENCY="4")
    with running_server(env, serve_folder) as url:
        yield url


def log_lines(folder: Path) -> list[dict[str, Any]]:
    lines = []
    for line in (folder / "serve.log").read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(line))
    return lines


def test_a_shop_with_its_own_credentials_answers_from_its_number_with_its_llm(
    world: World, server: str
) -> None:
    shop = world.shop("lupita", "111000000000001")

    wamid = world.say(server, shop, "¿Tienen pan dulce?")

    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    assert phone_number_id(reply) == shop.phone_number_id
    assert reply.headers["authorization"] == f"Bearer {shop.token}"
    assert reply.body["to"] == f"+{CUSTOMER}"
    assert reply.body["text"]["body"] == "Respuesta a: ¿Tienen pan dulce?"
    (chat,) = world.chats_about("¿Tienen pan dulce?")
    assert chat.headers["authorization"] == f"Bearer {shop.llm_key}"
    assert chat.body["model"] == "lupita-model"
    assert chat.body["messages"][0] == {"role": "system", "content": shop.system_prompt}
    assert chat.body["messages"][-1] == {"role": "user", "content": "¿Tienen pan dulce?"}
    (read,) = [r for r in world.graph.reads() if r.body["message_id"] == wamid]
    assert read.body["message_id"] == wamid and read.body["typing_indicator"] == {"type": "text"}
    assert read.headers["authorization"] == f"Bearer {shop.token}"
    wait_for("the answered state", lambda: world.inbound(wamid)["state"] == "answered")


def test_every_log_line_of_a_messages_journey_names_tenant_number_and_wamid(
    world: World, server: str, serve_folder: Path
) -> None:
    shop = world.shop("cocina", "121000000000012")
    wamid = world.say(server, shop, "¿Qué hay de comer?")
    wait_for("the answer", lambda: world.inbound(wamid)["state"] == "answered")

    journey = [line for line in log_lines(serve_folder) if line.get("wamid") == wamid]

    events = [line["event"] for line in journey]
    assert "message.claimed" in events and "message.answered" in events
    assert any(str(e).startswith("HTTP Request: POST") for e in events)  # httpx's lines too
    for line in journey:
        assert line["tenant_id"] == str(shop.tenant_id), line
        assert line["phone_number_id"] == shop.phone_number_id, line
    text = (serve_folder / "serve.log").read_text()
    for secret in (shop.token, shop.llm_key, shop.app_secret):
        assert secret and secret not in text


def test_a_shop_on_the_platforms_llm_answers_from_its_own_number_with_its_own_token(
    world: World, server: str
) -> None:
    shop = world.shop("tortas", "222000000000002", own_llm=False, own_app=False)

    wamid = world.say(server, shop, "Una torta de jamón")

    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    assert phone_number_id(reply) == shop.phone_number_id
    assert reply.headers["authorization"] == f"Bearer {shop.token}"
    (chat,) = world.chats_about("Una torta de jamón")
    assert chat.headers["authorization"] == f"Bearer {PLATFORM_LLM_KEY}"
    assert chat.body["model"] == PLATFORM_MODEL
    assert all(m["role"] != "system" for m in chat.body["messages"])


def test_the_platforms_own_number_answers_with_the_platforms_token_and_llm(
    world: World, server: str
) -> None:

    wamid = world.say(server, PLATFORM_PNID, "Hola, ¿quién eres?")

    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    assert phone_number_id(reply) == PLATFORM_PNID
    assert reply.headers["authorization"] == f"Bearer {PLATFORM_TOKEN}"
    (chat,) = world.chats_about("Hola, ¿quién eres?")
    assert chat.headers["authorization"] == f"Bearer {PLATFORM_LLM_KEY}"


def test_two_shops_in_one_batch_each_answer_with_their_own_credentials_only(
    world: World, server: str
) -> None:
    a = world.shop("abarrotes", "333000000000003")
    b = world.shop("birria", "444000000000004", own_llm=False, own_app=False)
    to_a = text_message("para A", sender="5215511111111")
    to_b = text_message("para B", sender="5215522222222")
    # One webhook, one app: B has no app of its own, so it is signed with the platform's secret;
    # A's own-app number goes in a webhook of its own, signed with its app's secret.
    world.post(server, World.text_webhook(b.phone_number_id, to_b), b.webhook_secret)
    world.post(server, World.text_webhook(a.phone_number_id, to_a), a.webhook_secret)

    (reply_a,) = wait_for("A's reply", lambda: world.graph.replies_to(to_a["id"]))
    (reply_b,) = wait_for("B's reply", lambda: world.graph.replies_to(to_b["id"]))

    assert (phone_number_id(reply_a), reply_a.body["to"]) == (a.phone_number_id, "+5215511111111")
    assert (phone_number_id(reply_b), reply_b.body["to"]) == (b.phone_number_id, "+5215522222222")
    assert reply_a.headers["authorization"] == f"Bearer {a.token}"
    assert reply_b.headers["authorization"] == f"Bearer {b.token}"
    (chat_a,) = world.chats_about("para A")
    (chat_b,) = world.chats_about("para B")
    assert chat_a.headers["authorization"] == f"Bearer {a.llm_key}"
    assert chat_b.headers["authorization"] == f"Bearer {PLATFORM_LLM_KEY}"


def test_the_conversation_so_far_reaches_the_llm(world: World, server: str) -> None:
    shop = world.shop("mole", "555000000000005")
    first = world.say(server, shop, "Hola")
    wait_for("the first reply", lambda: world.graph.replies_to(first))
    wait_for("the first answer's commit", lambda: world.inbound(first)["state"] == "answered")

    second = world.say(server, shop, "¿Y mole negro?")

    wait_for("the second reply", lambda: world.graph.replies_to(second))
    (chat,) = world.chats_about("¿Y mole negro?")
    last = chat.body["messages"]
    assert last[1:] == [
        {"role": "user", "content": "Hola"},
        {"role": "assistant", "content": "Respuesta a: Hola"},
        {"role": "user", "content": "¿Y mole negro?"},
    ]


def test_the_same_batch_posted_five_times_at_once_gets_one_reply(world: World, server: str) -> None:
    shop = world.shop("elotes", "666000000000006")
    messages = [text_message(f"mensaje {n}", sender=f"52155000000{n:02d}") for n in range(5)]
    payload = World.text_webhook(shop.phone_number_id, *messages)

    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda _: world.post(server, payload, shop.webhook_secret), range(5)))

    wamids = [m["id"] for m in messages]
    wait_for("every reply", lambda: all(world.graph.replies_to(w) for w in wamids))
    time.sleep(1.0)  # time enough for a duplicate to show up, were there one
    assert [len(world.graph.replies_to(w)) for w in wamids] == [1] * 5
    assert [len(world.chats_about(f"mensaje {n}")) for n in range(5)] == [1] * 5


def test_messages_with_nothing_to_answer_and_numbers_nobody_owns_get_no_reply(
    world: World, server: str
) -> None:
    shop = world.shop("flores", "777000000000007")
    reaction = message("reaction", {"message_id": "wamid.OURS", "emoji": "👍"})
    world.post(server, World.text_webhook(shop.phone_number_id, reaction), shop.webhook_secret)
    stranger = world.say(server, "123456789012345", "¿Hola?")
    answered = world.say(server, shop, "Después de la reacción")

    wait_for("the reply to the text", lambda: world.graph.replies_to(answered))
    time.sleep(0.5)

    from_shop = [s for s in world.graph.sends() if phone_number_id(s) == shop.phone_number_id]
    assert [quoted(s) for s in from_shop] == [answered]
    assert not [s for s in world.graph.sends() if phone_number_id(s) == "123456789012345"]
    assert world.inbound(reaction["id"])["state"] == "ignored"
    assert world.inbound(stranger)["state"] == "ignored"


def test_messages_list_shows_a_tenants_messages_and_their_state(world: World, server: str) -> None:
    shop = world.shop("tamales", "888000000000008")
    wamid = world.say(server, shop, "Quiero 12 tamales")
    wait_for("the answer", lambda: world.inbound(wamid)["state"] == "answered")

    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "changarrito.entrypoints.cli",
            "messages",
            "list",
            "--tenant",
            str(shop.tenant_id),
            "--json",
        ],
        env={**world.env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    (row,) = json.loads(listed.stdout)
    assert row["state"] == "answered" and row["partsSent"] == 1
    assert row["preview"] == "Quiero 12 tamales"
    for secret in (shop.token, shop.llm_key, shop.app_secret):
        assert secret and secret not in listed.stdout + listed.stderr
