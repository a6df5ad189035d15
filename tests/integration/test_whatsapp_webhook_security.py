"""The webhook's door: signatures per app, the handshake, size limits and bad bodies."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from whatsapp_webhook_fixtures import *  # noqa: F403
from whatsapp_webhook_fixtures import PLATFORM_SECRET, PLATFORM_VERIFY, platform_env, signed_headers

from changarrito.entrypoints.http.app import MAX_BODY_BYTES
from whatsapp_payloads import change, encode, other_field, sign, text_message, webhook

TENANT_SECRET = "tenant-own-app-secret-abcdef0123"
PROBLEM = "application/problem+json"


def body_for(pnid: str, text: str = "hola") -> dict[str, Any]:
    return webhook(change(pnid, messages=[text_message(text)]))


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"].endswith("/" + slug)


async def test_a_missing_or_forged_signature_is_refused(
    post_webhook: Any, wa_env: dict[str, str]
) -> None:
    payload = body_for(wa_env["WHATSAPP_PHONE_NUMBER_ID"])
    missing = await post_webhook(payload, secret=None)
    forged = await post_webhook(payload, secret="not-the-app-secret")
    garbage = await post_webhook(payload, secret=None, headers={"X-Hub-Signature-256": "md5=00"})

    for response in (missing, forged, garbage):
        assert_problem(response, 401, "invalid-signature")
    assert PLATFORM_SECRET not in forged.text


async def test_a_body_changed_after_signing_is_refused(
    wa_client: httpx.AsyncClient, wa_env: dict[str, str]
) -> None:
    body = encode(body_for(wa_env["WHATSAPP_PHONE_NUMBER_ID"], "pay 10"))
    signature = sign(body, PLATFORM_SECRET)
    tampered = body.replace(b"pay 10", b"pay 99")
    response = await wa_client.post(
        "/webhooks/whatsapp", content=tampered, headers={"X-Hub-Signature-256": signature}
    )

    assert_problem(response, 401, "invalid-signature")


async def test_a_tenant_with_its_own_app_signs_with_its_secret_not_the_platforms(
    post_webhook: Any, tenant_number: Any
) -> None:
    _, pnid = await tenant_number(app_secret=TENANT_SECRET)

    assert_problem(
        await post_webhook(body_for(pnid), secret=PLATFORM_SECRET), 401, "invalid-signature"
    )
    assert (await post_webhook(body_for(pnid), secret=TENANT_SECRET)).status_code == 200


async def test_a_tenant_without_its_own_app_is_signed_by_the_platforms(
    post_webhook: Any, tenant_number: Any
) -> None:
    _, pnid = await tenant_number()

    assert (await post_webhook(body_for(pnid), secret=PLATFORM_SECRET)).status_code == 200
    assert_problem(
        await post_webhook(body_for(pnid), secret=TENANT_SECRET), 401, "invalid-signature"
    )


async def test_a_body_mixing_two_apps_numbers_must_verify_under_both_secrets(
    post_webhook: Any, tenant_number: Any, wa_env: dict[str, str]
) -> None:
    _, own_app = await tenant_number(app_secret=TENANT_SECRET)
    _, shared_app = await tenant_number()
    mixed = webhook(
        change(own_app, messages=[text_message("a")]),
        change(shared_app, messages=[text_message("b")]),
    )
    same_app = webhook(
        change(shared_app, messages=[text_message("c")]),
        change(wa_env["WHATSAPP_PHONE_NUMBER_ID"], messages=[text_message("d")]),
    )

    for secret in (TENANT_SECRET, PLATFORM_SECRET):
        assert_problem(await post_webhook(mixed, secret=secret), 401, "invalid-signature")
    assert (await post_webhook(same_app, secret=PLATFORM_SECRET)).status_code == 200


async def test_an_account_level_change_is_signed_by_the_app_of_its_business_account(
    post_webhook: Any, tenant_number: Any
) -> None:
    await tenant_number(app_secret=TENANT_SECRET, waba="777000111")
    update = webhook(other_field("account_update", {"event": "X"}), waba_id="777000111")

    assert_problem(await post_webhook(update, secret=PLATFORM_SECRET), 401, "invalid-signature")
    assert (await post_webhook(update, secret=TENANT_SECRET)).status_code == 200


class TestWithoutAnAppSecret:
    @pytest.fixture
    def wa_env(self) -> dict[str, str]:
        return platform_env(WHATSAPP_APP_SECRET=None)

    async def test_nothing_is_accepted_when_no_app_secret_is_configured(
        self, post_webhook: Any, wa_env: dict[str, str], rows: Any
    ) -> None:
        message = text_message("hola")
        payload = webhook(change(wa_env["WHATSAPP_PHONE_NUMBER_ID"], messages=[message]))
        for secret in (None, "", PLATFORM_SECRET):
            assert_problem(await post_webhook(payload, secret=secret), 401, "invalid-signature")
        assert (
            await rows("SELECT 1 FROM whatsapp_inbound_messages WHERE wamid = %s", (message["id"],))
            == []
        )


async def test_a_body_of_three_mib_is_accepted_and_one_byte_more_is_too_large(
    post_webhook: Any, wa_env: dict[str, str]
) -> None:
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    empty = len(encode(body_for(pnid, "")))
    fits = encode(body_for(pnid, "x" * (MAX_BODY_BYTES - empty)))
    assert len(fits) == MAX_BODY_BYTES == 3 * 1024 * 1024

    assert (await post_webhook(fits)).status_code == 200
    too_big = encode(body_for(pnid, "x" * (MAX_BODY_BYTES - empty + 1)))
    assert_problem(await post_webhook(too_big), 413, "body-too-large")


async def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(
    wa_client: httpx.AsyncClient, wa_env: dict[str, str], rows: Any
) -> None:
    pnid = wa_env["WHATSAPP_PHONE_NUMBER_ID"]
    message = text_message("x" * 1024)
    body = encode(webhook(change(pnid, messages=[message]))) + b" " * MAX_BODY_BYTES

    async def chunks() -> Any:  # no Content-Length: chunked, 64 KiB at a time
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = await wa_client.post(
        "/webhooks/whatsapp", content=chunks(), headers=signed_headers(body, PLATFORM_SECRET)
    )

    assert_problem(response, 413, "body-too-large")
    assert (
        await rows("SELECT 1 FROM whatsapp_inbound_messages WHERE wamid = %s", (message["id"],))
        == []
    )


async def test_an_announced_length_past_the_limit_is_refused_before_the_body_is_read(
    wa_client: httpx.AsyncClient,
) -> None:
    async def never_sent() -> Any:
        raise AssertionError("the body was read")
        yield b""  # pragma: no cover

    response = await wa_client.post(
        "/webhooks/whatsapp",
        content=never_sent(),
        headers={"Content-Length": str(MAX_BODY_BYTES + 1), "X-Hub-Signature-256": "sha256=00"},
    )

    assert_problem(response, 413, "body-too-large")


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
async def test_other_methods_are_not_allowed_and_say_which_are(
    wa_client: httpx.AsyncClient, method: str
) -> None:
    response = await wa_client.request(method, "/webhooks/whatsapp")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    if method != "HEAD":
        assert_problem(response, 405, "method-not-allowed")


async def test_an_accepted_delivery_is_an_empty_text_answer_with_the_security_headers(
    post_webhook: Any, wa_env: dict[str, str]
) -> None:
    response = await post_webhook(body_for(wa_env["WHATSAPP_PHONE_NUMBER_ID"]))

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "0"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe{}",
        b'{"object": "page", "entry": []}',
        b'{"entry": []}',
        b"[]",
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
        b' "value": {"metadata": {"phone_number_id": "1"}, "messages": [{"type": "text"}]}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
        b' "value": {"messages": "many"}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",'
        b' "value": {"messages": [{"id": "w", "type": "text"}]}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    ],
    ids=[
        "malformed",
        "empty",
        "not-utf8",
        "other-object",
        "no-object",
        "array",
        "entry-not-list",
        "message-without-id",
        "messages-not-list",
        "no-metadata",
        "deeply-nested",
    ],
)
async def test_a_body_that_is_not_a_whatsapp_webhook_is_a_bad_request(
    post_webhook: Any, body: bytes
) -> None:
    assert_problem(await post_webhook(body), 400, "invalid-webhook")


async def test_a_nul_character_in_a_message_is_stored_without_it(
    post_webhook: Any, wa_env: dict[str, str], rows: Any
) -> None:
    message = text_message("ho\x00la")
    response = await post_webhook(
        webhook(change(wa_env["WHATSAPP_PHONE_NUMBER_ID"], messages=[message]))
    )

    assert response.status_code == 200
    [row] = await rows(
        "SELECT text FROM whatsapp_inbound_messages WHERE wamid = %s", (message["id"],)
    )
    assert row["text"] == "hola"


# --- the handshake --------------------------------------------------------------------------


async def handshake(
    client: httpx.AsyncClient, token: str, mode: str = "subscribe"
) -> httpx.Response:
    params = {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": "1158201444"}
    return await client.get("/webhooks/whatsapp", params=params)


async def test_the_handshake_echoes_the_challenge_for_the_platforms_verify_token(
    wa_client: httpx.AsyncClient,
) -> None:
    response = await handshake(wa_client, PLATFORM_VERIFY)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "1158201444"


async def test_the_handshake_accepts_any_active_tenants_verify_token(
    wa_client: httpx.AsyncClient, tenant_number: Any
) -> None:
    await tenant_number(verify_token="first-tenant-verify-token")
    await tenant_number(verify_token="second-tenant-verify-token")

    for token in ("first-tenant-verify-token", "second-tenant-verify-token"):
        response = await handshake(wa_client, token)
        assert (response.status_code, response.text) == (200, "1158201444")


async def test_a_tenant_token_set_after_the_first_handshake_is_accepted(
    wa_client: httpx.AsyncClient, tenant_number: Any
) -> None:
    assert (await handshake(wa_client, "later-tenant-verify-token")).status_code == 403
    await tenant_number(verify_token="later-tenant-verify-token")

    assert (await handshake(wa_client, "later-tenant-verify-token")).status_code == 200


@pytest.mark.parametrize(
    ("token", "mode"),
    [("wrong-token", "subscribe"), ("", "subscribe"), (PLATFORM_VERIFY, "unsubscribe")],
)
async def test_the_handshake_refuses_a_wrong_token_or_mode(
    wa_client: httpx.AsyncClient, token: str, mode: str
) -> None:
    response = await handshake(wa_client, token, mode)

    assert_problem(response, 403, "verification-failed")
    assert "1158201444" not in response.text


# --- arbitrary bodies -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
WAMID = st.text(min_size=1, max_size=40)


@st.composite
def webhook_like(draw: st.DrawFn) -> bytes:
    """Bodies from valid webhooks with any members replaced, to any JSON at all."""
    message: dict[str, Any] = {
        "id": draw(WAMID),
        "type": draw(st.sampled_from(["text", "image", "x"])),
    }
    message.update(
        draw(
            st.dictionaries(
                st.sampled_from(
                    ["text", "image", "from", "timestamp", "context", "errors", "from_user_id"]
                ),
                json_values,
                max_size=3,
            )
        )
    )
    value: dict[str, Any] = {
        "metadata": {"phone_number_id": draw(st.text(min_size=1, max_size=20))},
        "messages": [message],
    }
    value.update(
        draw(
            st.dictionaries(
                st.sampled_from(["contacts", "statuses", "errors", "metadata"]),
                json_values,
                max_size=2,
            )
        )
    )
    hook: Any = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": draw(st.sampled_from(["messages", "other"])), "value": value}
                ],
            }
        ],
    }
    hook = draw(st.sampled_from([hook, hook, draw(json_values)]))
    return json.dumps(hook).encode()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=webhook_like())
async def test_no_signed_body_whatever_its_shape_makes_the_service_fail(
    wa_client: httpx.AsyncClient, body: bytes
) -> None:
    response = await wa_client.post(
        "/webhooks/whatsapp",
        content=body,
        headers={"X-Hub-Signature-256": sign(body, PLATFORM_SECRET)},
    )

    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.headers["content-type"].startswith(PROBLEM)
