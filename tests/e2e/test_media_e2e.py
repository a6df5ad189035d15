"""The customer's media end to end, against a real ``changarrito serve`` and worker processes:
a voice note is answered with a reply that used its transcript (on the shop's own key, on
the platform's for a shop on the platform's LLM, and for a shop whose model cannot
transcribe only when the operator allows it), a photo reaches a model with vision as an
image part, a voice note that cannot be used gets one clear reply and a visible reason, and
a worker killed between the transcription and the reply leaves one transcription and one
reply."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.postgres.pool import open_pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.domain.model import Credential, IntegrationType, Secrets
from fakes.fake_llm import FakeLLM, last_user_text, slow_answer
from fakes.world import (
    PLATFORM_LLM_KEY,
    Shop,
    Worker,
    World,
    fakes,
    module_world,
    running_server,
    wait_for,
)
from whatsapp_payloads import message

#: A voice note's bytes (an OGG page header and silence: the fake does not listen).
OGG = b"OggS\x00\x02" + bytes(4000)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(2000)


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    yield from module_world(pg_admin_url)


def serve(world: World, folder: Path, **env: str) -> Any:
    return running_server(world.env(ANTHROPIC_BASE_URL=world.llm.url + "/v1", **env), folder)


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The operator allows the platform's transcription for shops with an LLM of their own."""
    with serve(
        world,
        tmp_path_factory.mktemp("serve"),
        CHANGARRITO_TRANSCRIPTION_PLATFORM_FALLBACK="on",
    ) as url:
        yield url


@pytest.fixture
def fresh_world(fresh_database_url: str) -> Iterator[World]:
    for graph, llm in fakes():
        yield World(fresh_database_url, graph, llm)


@pytest.fixture(autouse=True)
def _well_behaved_fakes_again(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "world" in request.fixturenames:
        world = request.getfixturevalue("world")
        world.reset()
        world.llm.set_transcript(None)
        world.llm.script_transcription()


def own_llm(world: World, shop: Shop, provider: str, key: str, **config: Any) -> None:
    """Gives ``shop`` an LLM credential of ``provider`` (the fake LLM answers for both)."""

    async def save() -> None:
        pool = await open_pool(world.database_url, max_size=1)
        try:
            store = PostgresStore(pool, AesGcmCipher(world.keyring))
            secrets = {"apiKey": key}
            if provider == "openai":
                secrets["baseUrl"] = world.llm.url + "/v1"
            await store.save_credential(
                Credential(shop.tenant_id, IntegrationType.LLM, provider, Secrets(secrets), config)
            )
        finally:
            await pool.close()

    asyncio.run(save())
    world.seeded_at = time.monotonic()
    time.sleep(0.5)  # the change notification reaches the server's cache


def voice_note(world: World, shop: Shop, media_id: str, customer: str) -> dict[str, Any]:
    """A voice note Graph holds for ``shop``'s number, as the customer's webhook names it
    (its bytes, ``audio_of(media_id)``, differ per id)."""
    audio = audio_of(media_id)
    world.graph.add_media(media_id, audio, "audio/ogg", token=shop.token)
    return message(
        "audio",
        {
            "id": media_id,
            "mime_type": "audio/ogg; codecs=opus",
            "sha256": base64.b64encode(hashlib.sha256(audio).digest()).decode(),
            "voice": True,
        },
        sender=customer,
    )


def send(world: World, server: str, shop: Shop, *messages: dict[str, Any]) -> None:
    world.post(server, World.text_webhook(shop.phone_number_id, *messages), shop.webhook_secret)


def media_row(world: World, wamid: str) -> dict[str, Any]:
    with psycopg.connect(world.database_url) as conn:
        cur = conn.execute(
            "SELECT i.text, f.state, f.reason_code, f.reason,"
            " (SELECT array_agg(u.use || ':' || u.source ORDER BY u.id)"
            "  FROM whatsapp_media_uses u WHERE u.inbound_id = i.id) AS uses"
            " FROM whatsapp_inbound_messages i JOIN whatsapp_media f ON f.inbound_id = i.id"
            " WHERE i.wamid = %s",
            (wamid,),
        )
        row = cur.fetchone()
        names = [c.name for c in cur.description or ()]
    assert row is not None, f"no media row for {wamid}"
    return dict(zip(names, row, strict=True))


def audio_of(media_id: str) -> bytes:
    return OGG + media_id.encode()


def heard(world: World, note: dict[str, Any]) -> list[Any]:
    """The transcription requests of this voice note, whoever made them (the module's fakes
    are shared: each voice note's bytes tell the tests apart)."""
    audio = audio_of(note["audio"]["id"])
    return [t for t in world.llm.transcriptions() if t.data == audio]


def reply_text(world: World, wamid: str) -> str:
    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    return str(reply.body["text"]["body"])


def test_a_voice_note_is_answered_with_its_transcript_on_the_shops_own_key(
    world: World, server: str
) -> None:
    shop = world.shop("tortilleria", "131000000000011")
    world.llm.set_transcript("¿Tienen tortillas de harina?")
    note = voice_note(world, shop, "7100000001", "5215510000001")

    send(world, server, shop, note)

    assert reply_text(world, note["id"]) == "Respuesta a: ¿Tienen tortillas de harina?"
    (request,) = heard(world, note)
    assert request.headers["authorization"] == f"Bearer {shop.llm_key}"
    assert (request.filename, request.content_type) == ("voice-note.ogg", "audio/ogg")
    assert request.model == "gpt-4o-mini-transcribe"
    (chat,) = world.chats_about("¿Tienen tortillas de harina?")
    assert chat.headers["authorization"] == f"Bearer {shop.llm_key}"
    row = media_row(world, note["id"])
    assert (row["text"], row["state"], row["uses"]) == (
        "¿Tienen tortillas de harina?",
        "transcribed",
        ["transcription:tenant"],
    )


def test_a_shop_on_the_platforms_llm_gets_the_platforms_transcription(
    world: World, server: str
) -> None:
    shop = world.shop("abarrotes", "131000000000012", own_llm=False)
    world.llm.set_transcript("¿A qué hora cierran?")
    note = voice_note(world, shop, "7100000002", "5215510000002")

    send(world, server, shop, note)

    assert reply_text(world, note["id"]) == "Respuesta a: ¿A qué hora cierran?"
    (request,) = heard(world, note)
    assert request.headers["authorization"] == f"Bearer {PLATFORM_LLM_KEY}"
    assert media_row(world, note["id"])["uses"] == ["transcription:platform"]


def test_a_shop_whose_model_cannot_transcribe_gets_the_platforms_when_the_operator_allows(
    world: World, server: str
) -> None:
    shop = world.shop("papeleria", "131000000000013", own_llm=False)
    own_llm(world, shop, "anthropic", "sk-ant-papeleria-e2e-0000000", model="claude-sonnet-4-5")
    world.llm.set_transcript("¿Tienen cartulinas?")
    note = voice_note(world, shop, "7100000003", "5215510000003")

    send(world, server, shop, note)

    assert reply_text(world, note["id"]) == "Respuesta a: ¿Tienen cartulinas?"
    (request,) = heard(world, note)
    assert request.headers["authorization"] == f"Bearer {PLATFORM_LLM_KEY}"
    (chat,) = [c for c in world.llm.chats() if c.path.endswith("/messages")]
    assert chat.headers["x-api-key"] == "sk-ant-papeleria-e2e-0000000"  # the shop's own model
    assert media_row(world, note["id"])["uses"] == ["transcription:platform"]


def test_a_shop_whose_model_cannot_transcribe_is_told_what_can_be_read_when_the_operator_refuses(
    fresh_world: World, start_server: Any
) -> None:
    world = fresh_world
    server = start_server("all", world.env(ANTHROPIC_BASE_URL=world.llm.url + "/v1"))
    shop = world.shop("papeleria", "131000000000013", own_llm=False)
    own_llm(world, shop, "anthropic", "sk-ant-papeleria-e2e-0000000", model="claude-sonnet-4-5")
    note = voice_note(world, shop, "7100000004", "5215510000004")

    send(world, server.url, shop, note)

    text = reply_text(world, note["id"])
    assert text.startswith("Solo puedo leer mensajes de texto, fotos y documentos PDF;")
    assert world.llm.transcriptions() == [] and world.llm.chats() == []
    row = media_row(world, note["id"])
    assert (row["state"], row["reason_code"]) == ("unread", "not-readable")


def test_a_photo_reaches_a_model_with_vision_as_an_image_part(world: World, server: str) -> None:
    shop = world.shop("zapateria", "131000000000014", own_llm=False)
    own_llm(world, shop, "openai", "sk-zapateria-e2e-00000000000", model="gpt-4o")
    world.graph.add_media("7100000005", JPEG, "image/jpeg", token=shop.token)
    photo = message(
        "image",
        {"id": "7100000005", "mime_type": "image/jpeg", "caption": "¿Tienen este en 26?"},
        sender="5215510000005",
    )

    send(world, server, shop, photo)

    reply_text(world, photo["id"])
    (chat,) = [c for c in world.llm.chats() if "¿Tienen este en 26?" in str(c.body)]
    parts = FakeLLM.content_parts(chat)
    image = next(p for p in parts if p["type"] == "image_url")
    assert image["image_url"]["url"] == "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
    assert {"type": "text", "text": "[photo] ¿Tienen este en 26?"} in parts
    row = media_row(world, photo["id"])
    assert (row["state"], row["uses"]) == ("read", ["image:tenant"])


@pytest.mark.parametrize(
    ("fault", "code"),
    [("expired", "expired"), ("wrong-hash", "hash-mismatch"), ("oversize", "too-large")],
)
def test_a_voice_note_that_cannot_be_downloaded_gets_one_clear_reply_and_a_visible_reason(
    world: World, server: str, fault: str, code: str
) -> None:
    n = {"expired": 6, "wrong-hash": 7, "oversize": 8}[fault]
    shop = world.shop(f"fonda{n}", f"13100000000002{n}")
    note = voice_note(world, shop, f"710000000{n}", f"521551000000{n}")
    if fault == "expired":
        world.graph.expire_downloads(note["audio"]["id"], times=2)
    elif fault == "wrong-hash":
        world.graph.state_wrong_hash(note["audio"]["id"])
    else:
        world.graph.state_size(note["audio"]["id"], 17 * 1024 * 1024)

    send(world, server, shop, note)

    text = reply_text(world, note["id"])
    assert text.startswith("Perdón, no pude abrir tu nota de voz.")
    assert heard(world, note) == []
    row = media_row(world, note["id"])
    assert (row["state"], row["reason_code"]) == ("failed", code)
    assert row["reason"]


def test_a_worker_killed_between_the_transcription_and_the_reply_transcribes_once_and_replies_once(
    fresh_world: World, start_server: Any, tmp_path: Path
) -> None:
    world, llm = fresh_world, fresh_world.llm
    shop = world.shop("cocina", "131000000000031")
    env = world.env(CHANGARRITO_WORKER_LEASE="1.5")
    server = start_server("all", {**env, "CHANGARRITO_WORKERS_CONCURRENCY": "0"})  # intake only
    workers = [Worker(env, tmp_path / "worker-1")]
    try:
        llm.set_transcript("¿Tienen pozole hoy?")
        llm.script(slow_answer("Sí, rojo y verde.", delay=5))
        note = voice_note(world, shop, "7100000031", "5215510000031")
        send(world, server.url, shop, note)
        wait_for("the LLM to be writing the reply", lambda: llm.in_flight and llm.transcriptions())
        workers[0].signal(signal.SIGKILL)
        workers[0].process.wait(timeout=10)
        workers.append(Worker(env, tmp_path / "worker-2"))

        assert reply_text(world, note["id"]) == "Respuesta a: ¿Tienen pozole hoy?"
        time.sleep(2.5)  # the killed worker's lease ran out long ago
        assert len(world.graph.replies_to(note["id"])) == 1
        assert len(heard(world, note)) == 1
        assert {last_user_text(c.body["messages"]) for c in llm.chats()} == {"¿Tienen pozole hoy?"}
        assert media_row(world, note["id"])["uses"] == ["transcription:tenant"]
    finally:
        for worker in workers:
            worker.close()
