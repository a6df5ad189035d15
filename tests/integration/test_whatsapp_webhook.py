"""POST /webhooks/whatsapp: every update stored durably, once, routed to its tenant."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog.testing
from whatsapp_webhook_fixtures import *  # noqa: F403

from changarrito.adapters.postgres.messages import apply_statuses
from changarrito.bootstrap import Service
from changarrito.domain.conversations import UNREADABLE_TYPES
from changarrito.domain.model import Credential, IntegrationType, Secrets
from whatsapp_payloads import (
    CUSTOMER,
    CUSTOMER_BSUID,
    META_TEXT_WAMID,
    RATE_LIMIT_ERROR,
    batch,
    change,
    contact,
    encode,
    entries,
    every_type,
    meta_text_example,
    new_wamid,
    other_field,
    status,
    text_message,
    webhook,
)

INBOUND = "SELECT * FROM whatsapp_inbound_messages WHERE wamid = ANY(%s) ORDER BY wamid"


async def test_every_documented_message_type_is_stored_with_the_text_to_answer(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    examples = every_type()
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    response = await post_webhook(webhook(change(pnid, messages=[m for m, _ in examples.values()])))

    assert response.status_code == 200, response.text
    stored = {
        r["wamid"]: r for r in await rows(INBOUND, ([m["id"] for m, _ in examples.values()],))
    }
    assert len(stored) == len(examples)
    for name, (sent, text) in examples.items():
        row = stored[sent["id"]]
        assert row["text"] == text, name
        assert row["type"] == sent["type"], name
        # Meta's unsupported sample is an edit it could not show: nothing new was said.
        unreadable = not text and sent["type"] in UNREADABLE_TYPES - {"unsupported"}
        assert row["state"] == ("pending" if text or unreadable else "ignored"), name
        assert row["route"] == "platform" and row["tenant_id"] is None, name
        assert row["customer_id"] == CUSTOMER, name
        assert row["raw"] == sent, name
        assert row["phone_number_id"] == pnid, name


async def test_metas_own_text_example_is_stored_with_its_customer_and_timestamp(
    post_webhook: Any, rows: Any, wa_env: dict[str, str]
) -> None:
    await rows("DELETE FROM whatsapp_inbound_messages WHERE wamid = %s", (META_TEXT_WAMID,))
    response = await post_webhook(meta_text_example(wa_env["WHATSAPP_PHONE_NUMBER_ID"]))

    assert response.status_code == 200
    [row] = await rows(INBOUND, ([META_TEXT_WAMID],))
    assert row["customer_name"] == "Sheena Nelson"
    assert row["customer_phone"] == "16505551234"
    assert row["sent_at"].timestamp() == 1749416383
    assert row["waba_id"] == "102290129340398"
    assert row["display_phone_number"] == "15550783881"
    assert (row["state"], row["attempts"]) == ("pending", 0)


async def test_a_customer_without_a_phone_number_is_known_by_business_scoped_id(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    sent = text_message("hola", sender=None, from_user_id=CUSTOMER_BSUID)
    value = change(
        wa_env["WHATSAPP_PHONE_NUMBER_ID"],
        messages=[sent],
        contacts=[contact(None, name="Ana", user_id=CUSTOMER_BSUID)],
    )
    assert (await post_webhook(webhook(value))).status_code == 200

    [row] = await rows(INBOUND, ([sent["id"]],))
    assert (row["customer_id"], row["customer_phone"]) == (CUSTOMER_BSUID, None)
    assert (row["customer_user_id"], row["customer_name"]) == (CUSTOMER_BSUID, "Ana")
    assert row["state"] == "pending"


async def test_messages_reach_their_tenant_and_a_number_nobody_owns_is_never_queued(
    post_webhook: Any, tenant_number: Any, rows: Any
) -> None:
    tenant, pnid = await tenant_number()
    mine, orphan = text_message("para la tienda"), text_message("para nadie")
    nobody = "999" + pnid[3:]
    body = webhook(change(pnid, messages=[mine]), change(nobody, messages=[orphan]))

    assert (await post_webhook(body)).status_code == 200
    stored = {r["wamid"]: r for r in await rows(INBOUND, ([mine["id"], orphan["id"]],))}
    assert (stored[mine["id"]]["tenant_id"], stored[mine["id"]]["state"]) == (tenant, "pending")
    assert stored[orphan["id"]]["route"] == "unrouted"
    assert (stored[orphan["id"]]["tenant_id"], stored[orphan["id"]]["state"]) == (None, "ignored")


async def test_the_same_batch_posted_five_times_at_once_is_stored_once(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    body = encode(batch(wa_env["WHATSAPP_PHONE_NUMBER_ID"], 20))
    responses = await asyncio.gather(*(post_webhook(body) for _ in range(5)))

    assert [r.status_code for r in responses] == [200] * 5
    wamids = [m["id"] for m in batch_messages(body)]
    found = await rows(
        "SELECT wamid, count(*) AS n FROM whatsapp_inbound_messages "
        "WHERE wamid = ANY(%s) GROUP BY wamid",
        (wamids,),
    )
    assert sorted(r["wamid"] for r in found) == sorted(wamids)
    assert {r["n"] for r in found} == {1}


def batch_messages(body: bytes) -> list[dict[str, Any]]:
    import json

    payload = json.loads(body)
    return [m for e in payload["entry"] for c in e["changes"] for m in c["value"]["messages"]]


async def test_a_thousand_updates_across_entries_and_numbers_are_stored_in_one_request(
    post_webhook: Any, wa_env: dict[str, str], tenant_number: Any, rows: Any
) -> None:
    _, pnid = await tenant_number()
    platform = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    first = [text_message(f"a{i}", sender=f"52155{i:06d}") for i in range(400)]
    second = [text_message(f"b{i}", sender=f"52166{i:06d}") for i in range(400)]
    statuses = [status(new_wamid(), "delivered") for _ in range(200)]
    body = entries(
        {
            "111": [change(platform, messages=first)],
            "222": [change(pnid, messages=second), change(pnid, statuses=statuses)],
        }
    )
    response = await post_webhook(body)

    assert response.status_code == 200, response.text
    wamids = [m["id"] for m in first + second]
    [count] = await rows(
        "SELECT count(*) AS n FROM whatsapp_inbound_messages WHERE wamid = ANY(%s)", (wamids,)
    )
    assert count["n"] == 800
    [count] = await rows(
        "SELECT count(*) AS n FROM whatsapp_message_statuses WHERE wamid = ANY(%s)",
        ([s["id"] for s in statuses],),
    )
    assert count["n"] == 200


async def test_concurrent_webhooks_share_transactions(
    post_webhook: Any, wa_env: dict[str, str], wa_service: Service
) -> None:
    assert wa_service.storage.intake is not None
    before = wa_service.storage.intake.transactions
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    bodies = [webhook(change(pnid, messages=[text_message(str(i))])) for i in range(40)]
    responses = await asyncio.gather(*(post_webhook(b) for b in bodies))

    assert {r.status_code for r in responses} == {200}
    assert wa_service.storage.intake.transactions - before < 40


async def test_value_level_errors_and_other_fields_are_stored_and_acknowledged(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    marker = new_wamid()
    body = webhook(
        change(wa_env["WHATSAPP_PHONE_NUMBER_ID"], errors=[RATE_LIMIT_ERROR]),
        other_field("account_update", {"event": "VERIFIED_ACCOUNT", "marker": marker}),
        other_field("message_template_status_update", {"event": "APPROVED", "marker": marker}),
    )
    assert (await post_webhook(body)).status_code == 200

    found = await rows(
        "SELECT kind, field, error_code, payload FROM whatsapp_webhook_events "
        "WHERE payload->>'marker' = %s OR (kind = 'error' AND phone_number_id = %s) "
        "ORDER BY kind, field",
        (marker, wa_env["WHATSAPP_PHONE_NUMBER_ID"]),
    )
    assert [(r["kind"], r["field"], r["error_code"]) for r in found] == [
        ("error", "messages", 130429),
        ("field", "account_update", None),
        ("field", "message_template_status_update", None),
    ]
    assert found[0]["payload"] == RATE_LIMIT_ERROR


async def outbound(rows: Any, pnid: str) -> str:
    """An outbound reply as the worker records it, with its wamid; returns the wamid."""
    wamid = new_wamid()
    await rows(
        "INSERT INTO whatsapp_outbound_messages (phone_number_id, recipient, text, wamid, status) "
        "VALUES (%s, %s, 'hola', %s, 'queued') RETURNING id",
        (pnid, CUSTOMER, wamid),
    )
    return wamid


async def test_statuses_move_replies_forward_only(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    wamid = await outbound(rows, pnid)
    for step, expected in (("sent", "sent"), ("read", "read"), ("delivered", "read")):
        body = webhook(change(pnid, statuses=[status(wamid, step, timestamp="1750030073")]))
        assert (await post_webhook(body)).status_code == 200
        [row] = await rows("SELECT * FROM whatsapp_outbound_messages WHERE wamid = %s", (wamid,))
        assert row["status"] == expected, step
    assert row["delivered_at"] is not None and row["read_at"] is not None


async def test_a_failed_status_records_its_error_and_duplicates_are_stored_once(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    wamid = await outbound(rows, pnid)
    body = webhook(change(pnid, statuses=[status(wamid, "sent"), status(wamid, "failed")]))
    for _ in range(3):
        assert (await post_webhook(body)).status_code == 200

    [row] = await rows("SELECT * FROM whatsapp_outbound_messages WHERE wamid = %s", (wamid,))
    assert (row["status"], row["error_code"]) == ("failed", 131049)
    assert "healthy ecosystem" in row["error_details"]
    stored = await rows("SELECT status FROM whatsapp_message_statuses WHERE wamid = %s", (wamid,))
    assert sorted(r["status"] for r in stored) == ["failed", "sent"]


async def test_a_status_that_arrives_before_its_reply_is_recorded_is_applied_later(
    post_webhook: Any, wa_env: dict[str, str], rows: Any, wa_service: Service
) -> None:
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    wamid = new_wamid()
    body = webhook(change(pnid, statuses=[status(wamid, "delivered")]))
    assert (await post_webhook(body)).status_code == 200
    await rows(
        "INSERT INTO whatsapp_outbound_messages (phone_number_id, recipient, text, wamid) "
        "VALUES (%s, %s, 'hola', %s)",
        (pnid, CUSTOMER, wamid),
    )
    async with wa_service.storage.pool.connection() as conn:
        changed = await apply_statuses(conn, [wamid])

    assert [r[2] for r in changed] == ["delivered"]


async def test_a_webhook_that_cannot_be_stored_is_not_acknowledged(
    post_webhook: Any, wa_env: dict[str, str], wa_service: Service
) -> None:
    await wa_service.storage.pool.close()
    response = await post_webhook(
        webhook(change(wa_env["WHATSAPP_PHONE_NUMBER_ID"], messages=[text_message()]))
    )

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("/storage-unavailable")


async def test_a_delivery_of_many_updates_is_one_log_line_at_info(
    post_webhook: Any, wa_env: dict[str, str]
) -> None:
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    body = webhook(
        change(
            pnid,
            messages=[text_message() for _ in range(5)],
            statuses=[status(new_wamid(), "read")],
        )
    )
    with structlog.testing.capture_logs() as logs:
        response = await post_webhook(body)
    assert response.status_code == 200, response.text
    info = [e for e in logs if e["log_level"] != "debug" and e["event"].startswith("whatsapp.")]
    assert [(e["event"], e["messages"], e["new"], e["statuses"]) for e in info] == [
        ("whatsapp.webhook.received", 5, 5, 1)
    ]


async def test_a_message_to_answer_is_first_due_one_quiet_period_after_it_arrived(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    """The platform's quiet period (2 s by default) is applied at intake: a lone message is
    claimed once, when its customer has been quiet that long, not at once and put back."""
    said = text_message("¿A qué hora abren?")
    response = await post_webhook(
        webhook(change(wa_env["WHATSAPP_PHONE_NUMBER_ID"], messages=[said]))
    )

    assert response.status_code == 200
    [row] = await rows(
        "SELECT extract(epoch FROM available_at - received_at) AS wait, state"
        " FROM whatsapp_inbound_messages WHERE wamid = %s",
        (said["id"],),
    )
    assert (float(row["wait"]), row["state"]) == (2.0, "pending")


@pytest.mark.parametrize(("own", "wait"), [(0, 0.0), (5.5, 5.5)])
async def test_a_tenants_own_quiet_period_decides_when_its_messages_are_first_due(
    post_webhook: Any, tenant_number: Any, wa_service: Any, rows: Any, own: float, wait: float
) -> None:
    tenant, pnid = await tenant_number(app_secret="quiet-tenant-app-secret-0000")
    llm = Credential(
        tenant,
        IntegrationType.LLM,
        "openai",
        Secrets({"apiKey": "sk-quiet-tenant-000000000000"}),
        {"quietPeriodSeconds": own},
    )
    await wa_service.storage.store.save_credential(llm)
    wa_service.resolver.invalidate_tenant(tenant)
    said = text_message("hola")

    response = await post_webhook(
        webhook(change(pnid, messages=[said])), secret="quiet-tenant-app-secret-0000"
    )

    assert response.status_code == 200
    [row] = await rows(
        "SELECT extract(epoch FROM available_at - received_at) AS wait"
        " FROM whatsapp_inbound_messages WHERE wamid = %s",
        (said["id"],),
    )
    assert float(row["wait"]) == wait
