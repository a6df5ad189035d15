"""The Graph API sending client against a mock transport: the wire format Meta documents, and
every class of Graph error mapped to the domain's provider errors."""

from __future__ import annotations

import json

import httpx
import pytest

from changarrito.adapters.whatsapp.graph import GraphClient, classify_graph_error
from changarrito.domain.errors import (
    FinalProviderError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderTimeout,
    RecipientRateLimited,
    RetryableProviderError,
)
from changarrito.testing.upstream import FakeUpstream, json_response, text_response

TOKEN = "EAAGm0PX4ZCpsBAKZBtesttoken1234567890"
PNID = "106540352242922"
INBOUND = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


def sent(wamid: str = "wamid.OUT1") -> httpx.Response:
    return json_response(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "+16505551234", "wa_id": "16505551234"}],
            "messages": [{"id": wamid}],
        },
    )


def graph_error(
    code: int, status: int = 400, message: str = "boom", **extra: object
) -> httpx.Response:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Ax1"}
    error.update(extra)
    return json_response(status, {"error": error})


def client(upstream: FakeUpstream, **kwargs: float) -> GraphClient:
    return GraphClient(upstream.clients(), "https://graph.example.test/", "v23.0", **kwargs)


def bodies(upstream: FakeUpstream) -> list[dict[str, object]]:
    return [json.loads(r.content) for r in upstream.requests]


async def test_a_reply_is_posted_to_the_receiving_numbers_messages_endpoint_with_its_token() -> (
    None
):
    upstream = FakeUpstream(sent("wamid.REPLY"))

    wamids = await client(upstream).send_text(PNID, TOKEN, "16505551234", "Hola 👋", INBOUND)

    assert wamids == ["wamid.REPLY"]
    request = upstream.last
    assert request.method == "POST"
    assert str(request.url) == f"https://graph.example.test/v23.0/{PNID}/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert upstream.last_json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": "Hola 👋"},
        "context": {"message_id": INBOUND},
    }


async def test_a_message_without_a_quote_has_no_context() -> None:
    upstream = FakeUpstream(sent())

    await client(upstream).send_text(PNID, TOKEN, "+5215512345678", "hi", None)

    assert "context" not in upstream.last_json()
    assert upstream.last_json()["to"] == "+5215512345678"


async def test_a_customer_known_only_by_business_scoped_id_is_addressed_as_recipient() -> None:
    upstream = FakeUpstream(sent())

    await client(upstream).send_text(PNID, TOKEN, "US.13491208655302741918", "hi", None)

    body = upstream.last_json()
    assert body["recipient"] == "US.13491208655302741918"
    assert "to" not in body


async def test_a_reply_over_4096_characters_goes_as_several_messages_in_order() -> None:
    paragraphs = [f"Paragraph {n}. " + "palabra " * 300 for n in range(5)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    assert len(text) > 4096
    upstream = FakeUpstream(lambda request: sent(f"wamid.{len(upstream.requests)}"))

    wamids = await client(upstream).send_text(PNID, TOKEN, "16505551234", text, INBOUND)

    sent_bodies = [b["text"]["body"] for b in bodies(upstream)]  # type: ignore[index]
    assert len(sent_bodies) == 5  # one paragraph each: two would not fit
    assert wamids == [f"wamid.{n}" for n in range(1, 6)]
    assert all(len(b) <= 4096 for b in sent_bodies)
    assert " ".join(" ".join(sent_bodies).split()) == " ".join(text.split())
    assert all(b.startswith("Paragraph") for b in sent_bodies)  # cut between paragraphs
    contexts = [b.get("context") for b in bodies(upstream)]
    assert contexts[0] == {"message_id": INBOUND}
    assert contexts[1:] == [None] * (len(contexts) - 1)


async def test_marking_read_sends_the_read_status_with_an_optional_typing_indicator() -> None:
    upstream = FakeUpstream(json_response(200, {"success": True}))
    graph = client(upstream)

    await graph.mark_read(PNID, TOKEN, INBOUND, typing=True)
    await graph.mark_read(PNID, TOKEN, INBOUND)

    with_typing, without = bodies(upstream)
    assert with_typing == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": INBOUND,
        "typing_indicator": {"type": "text"},
    }
    assert "typing_indicator" not in without
    assert str(upstream.last.url).endswith(f"/{PNID}/messages")


RETRYABLE = [130429, 131000, 131016, 131057, 4, 80007, 1, 2]
AUTH = [190, 0, 10, 200, 299]
BAD_REQUEST = [100, 131008, 131009, 131021, 131051, 131052, 131053, 132000]
REFUSED = [131047, 131026, 131048, 131049, 368, 131031]


@pytest.mark.parametrize("code", RETRYABLE)
async def test_throttling_and_outages_are_retryable_even_when_graph_answers_400(code: int) -> None:
    upstream = FakeUpstream(graph_error(code, status=400))

    with pytest.raises(RetryableProviderError) as caught:
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)

    assert caught.value.retryable
    assert not isinstance(caught.value, RecipientRateLimited)
    assert caught.value.provider_code == str(code)


async def test_the_pair_rate_limit_delays_that_recipient_only() -> None:
    upstream = FakeUpstream(graph_error(131056, message="(#131056) pair rate limit hit"))

    with pytest.raises(RecipientRateLimited) as caught:
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)

    assert caught.value.retryable
    assert caught.value.retry_after is not None and caught.value.retry_after >= 6


@pytest.mark.parametrize("code", AUTH)
async def test_a_rejected_or_unpermitted_token_is_a_final_auth_error(code: int) -> None:
    upstream = FakeUpstream(graph_error(code, status=401 if code == 190 else 403))

    with pytest.raises(ProviderAuthError) as caught:
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)

    assert not caught.value.retryable
    assert caught.value.provider_code == str(code)


@pytest.mark.parametrize("code", BAD_REQUEST)
async def test_bad_parameters_are_a_final_bad_request(code: int) -> None:
    upstream = FakeUpstream(graph_error(code))

    with pytest.raises(ProviderBadRequest) as caught:
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)

    assert not caught.value.retryable


@pytest.mark.parametrize("code", REFUSED)
async def test_messages_meta_will_not_deliver_fail_at_once(code: int) -> None:
    upstream = FakeUpstream(graph_error(code))

    with pytest.raises(FinalProviderError) as caught:
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)

    assert not caught.value.retryable
    assert not isinstance(caught.value, ProviderAuthError | ProviderBadRequest)


async def test_outside_the_24_hour_window_the_error_says_so() -> None:
    upstream = FakeUpstream(
        graph_error(131047, message="Re-engagement message", error_data={"details": "24h"})
    )

    with pytest.raises(FinalProviderError) as caught:
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)

    assert "24 hours" in caught.value.message
    assert "Re-engagement message" in caught.value.message


@pytest.mark.parametrize(
    "response",
    [
        text_response(502, "<html>Bad gateway</html>"),
        text_response(503, ""),
        json_response(500, {"error": {"message": "unknown", "code": 987654}}),
        text_response(429, "slow down"),
    ],
)
async def test_server_errors_without_a_known_code_are_retryable(response: httpx.Response) -> None:
    upstream = FakeUpstream(response)

    with pytest.raises(RetryableProviderError):
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [(httpx.ReadTimeout, ProviderTimeout), (httpx.ConnectError, RetryableProviderError)],
)
async def test_timeouts_and_unreachable_graph_are_retryable(
    failure: type[Exception], expected: type[ProviderError]
) -> None:
    upstream = FakeUpstream(failure)

    with pytest.raises(expected) as caught:
        await client(upstream).mark_read(PNID, TOKEN, INBOUND)

    assert caught.value.retryable


async def test_a_success_without_a_message_id_is_a_bad_response_not_a_silent_success() -> None:
    upstream = FakeUpstream(text_response(200, "<html>captive portal</html>"))

    with pytest.raises(ProviderBadResponse):
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)


async def test_the_token_never_appears_in_an_error_even_when_meta_echoes_it() -> None:
    upstream = FakeUpstream(graph_error(190, status=401, message=f"Invalid token {TOKEN}"))

    with pytest.raises(ProviderAuthError) as caught:
        await client(upstream).send_text(PNID, TOKEN, "16505551234", "hi", None)

    assert TOKEN not in str(caught.value)
    assert TOKEN[:12] not in str(caught.value)


def test_the_classifier_is_usable_on_any_graph_response() -> None:
    request = httpx.Request("GET", f"https://graph.example.test/v23.0/{PNID}")
    response = httpx.Response(
        400, json={"error": {"code": 80007, "message": "WABA limit"}}, request=request
    )

    error = classify_graph_error(response)

    assert isinstance(error, RetryableProviderError)
    assert error.provider == "whatsapp"
    assert error.status == 400


async def test_a_phone_number_id_that_is_not_digits_is_refused_before_any_request() -> None:
    upstream = FakeUpstream(sent())

    with pytest.raises(ProviderBadRequest):
        await client(upstream).send_text("../../me", TOKEN, "16505551234", "hi", None)

    assert upstream.requests == []
