"""Budgets end to end, against a real ``changarrito serve``: a shop on the platform's LLM
reaches its hard limit in the middle of a conversation, and its next reply is the fallback
text (the operator's default choice) without an LLM call, while a shop on its own key, with
the same limit, is answered by its model as before.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fakes.world import Shop, World, module_world, running_server, wait_for

INTERNAL = {"X-Internal-Key": "internal-key-e2e-0000000000000000"}
FALLBACK = "Volvemos en un momento. / Back in a moment."


@pytest.fixture(scope="module")
def world(pg_admin_url: str) -> Iterator[World]:
    yield from module_world(pg_admin_url)


@pytest.fixture(scope="module")
def server(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = world.env(CHANGARRITO_FALLBACK_TEXT=FALLBACK)
    with running_server(env, tmp_path_factory.mktemp("serve")) as url:
        yield url


def limit(server: str, shop: Shop, hard: int) -> None:
    response = httpx.put(
        f"{server}/api/v1/internal/tenants/{shop.tenant_id}/budgets",
        json={"llmTokens": {"hard": hard}},
        headers=INTERNAL,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def answer(world: World, server: str, shop: Shop, text: str, customer: str) -> str:
    wamid = world.say(server, shop, text, sender=customer)
    (reply,) = wait_for("the reply", lambda: world.graph.replies_to(wamid))
    return str(reply.body["text"]["body"])


def test_a_shop_on_the_platforms_llm_gets_the_fallback_once_its_budget_is_used_up(
    world: World, server: str
) -> None:
    on_platform = world.shop("dulceria", "134000000000001", own_llm=False)
    own_key = world.shop("ferreteria", "134000000000002")
    for shop in (on_platform, own_key):
        limit(server, shop, 1)  # the first answer uses it up

    first = answer(world, server, on_platform, "¿Tienen cajeta?", "5215550000001")
    asked = len(world.llm.chats())
    second = answer(world, server, on_platform, "¿Y obleas?", "5215550000001")
    own = [answer(world, server, own_key, f"¿Tornillos {n}?", "5215550000002") for n in (1, 2)]

    assert first.startswith("Respuesta a:")
    assert second == FALLBACK
    assert not world.chats_about("¿Y obleas?")  # no call on the platform's key
    assert all(text.startswith("Respuesta a:") for text in own)  # its own key: untouched
    assert len(world.llm.chats()) == asked + 2
    status = httpx.get(
        f"{server}/api/v1/internal/tenants/{on_platform.tenant_id}/budgets",
        headers=INTERNAL,
        timeout=10,
    ).json()["budgets"]["llmTokens"]
    assert status["stopped"] is True and status["figure"] >= 1
