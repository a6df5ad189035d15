"""The conformance kits catch the mistakes they exist for: a deliberately broken provider
fails the kit test aimed at its flaw (and only that one), a correct provider passes it."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import msgspec
import pytest

from changarrito.plugin import PaymentEvent, PaymentLink
from changarrito.plugins.llm.openai import OpenAIProvider
from changarrito.plugins.payments import stripe
from changarrito.plugins.payments.stripe import StripeProvider
from changarrito.testing import LLMProviderConformance, Notification, PaymentProviderConformance

KEY = "sk-test-abcdefghijklmnop0123456789"
API_KEY = "sk_test_51AbCdEfGhIjKlMnOpQrStUv"
WEBHOOK_SECRET = "whsec_TopSecretSigningValue123"


# --- LLM ----------------------------------------------------------------------------------------


class ForgetsTheKeyOnChat(OpenAIProvider):
    """Authenticates ``verify`` but sends ``chat`` without its key."""

    def auth_headers(self, credentials: Any) -> dict[str, str]:
        return {}

    async def verify(self, credentials: Any, config: Any) -> None:
        url, params = self.endpoint(credentials, config, self.verify_path)
        headers = {"Authorization": f"Bearer {credentials.api_key}"}
        await self.call_json("GET", url, credentials=credentials, headers=headers, params=params)


class LLMKit(LLMProviderConformance):
    credentials = {"apiKey": KEY}


def llm_kit(provider: type[OpenAIProvider]) -> LLMKit:
    return type("Kit", (LLMKit,), {"provider_class": provider})()


def test_the_llm_kit_fails_a_provider_that_forgets_its_key_on_chat() -> None:
    kit = llm_kit(ForgetsTheKeyOnChat)

    with pytest.raises(AssertionError, match="chat must authenticate"):
        kit.test_chat_sends_the_credentials()
    kit.test_verify_makes_an_authenticated_call()  # the flaw is chat's alone


def test_the_llm_kit_passes_the_same_provider_sending_its_key() -> None:
    llm_kit(OpenAIProvider).test_chat_sends_the_credentials()


# --- payments -----------------------------------------------------------------------------------


def stripe_event() -> bytes:
    session = {
        "id": "cs_test_a1",
        "object": "checkout.session",
        "client_reference_id": "order-42",
        "payment_status": "paid",
    }
    event = {"id": "evt_1", "type": "checkout.session.completed", "data": {"object": session}}
    return json.dumps(event).encode()


class StripeKit(PaymentProviderConformance):
    credentials = {"apiKey": API_KEY, "webhookSecret": WEBHOOK_SECRET}
    amounts = [(Decimal("149.50"), "MXN", "14950")]

    def link_response(self) -> httpx.Response:
        body = {"id": "cs_test_a1", "url": "https://checkout.stripe.com/c/pay/cs_test_a1"}
        return httpx.Response(200, json=body)

    def sent_amount(self, request: httpx.Request) -> Any:
        return dict(httpx.QueryParams(request.content.decode()))[
            "line_items[0][price_data][unit_amount]"
        ]

    def genuine_notification(self) -> Notification:
        body = stripe_event()
        signature = stripe.sign(body, WEBHOOK_SECRET, int(time.time()))
        return Notification({"Stripe-Signature": signature}, body)

    def forged_notification(self) -> Notification:
        body = stripe_event()
        return Notification({"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}, body)


def stripe_kit(provider: type[StripeProvider]) -> StripeKit:
    return type("Kit", (StripeKit,), {"provider_class": provider})()


class StatusAsPlainText(StripeProvider):
    """Answers with a status outside the vocabulary's type."""

    async def create_payment_link(self, **kwargs: Any) -> PaymentLink:
        link = await super().create_payment_link(**kwargs)
        return msgspec.structs.replace(link, status="done")  # type: ignore[arg-type]


class TrustsAnyNotification(StripeProvider):
    """Never checks the signature."""

    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> PaymentEvent:
        return stripe.event_from(json.loads(raw_body))


class NewEventIdOnEveryRetry(StripeProvider):
    """Invents an event id per call, so a retried notification would be applied twice."""

    async def parse_webhook(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        credentials: Any,
        config: Any,
        *,
        tenant_id: UUID,
    ) -> PaymentEvent:
        event = await super().parse_webhook(
            headers, raw_body, credentials, config, tenant_id=tenant_id
        )
        return msgspec.structs.replace(event, event_id=str(uuid4()))


def test_the_payment_kit_fails_a_link_status_outside_the_vocabulary() -> None:
    with pytest.raises(AssertionError):
        stripe_kit(
            StatusAsPlainText
        ).test_a_link_is_created_with_the_credentials_and_starts_with_a_status()


def test_the_payment_kit_fails_a_provider_that_trusts_unsigned_notifications() -> None:
    kit = stripe_kit(TrustsAnyNotification)

    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        kit.test_a_forged_notification_is_an_invalid_signature()
    kit.test_a_genuine_notification_is_an_event_with_a_stable_id_and_a_status()


def test_the_payment_kit_fails_an_event_id_that_changes_between_retries() -> None:
    with pytest.raises(AssertionError):
        stripe_kit(
            NewEventIdOnEveryRetry
        ).test_a_genuine_notification_is_an_event_with_a_stable_id_and_a_status()


def test_the_payment_kit_passes_the_provider_these_break() -> None:
    kit = stripe_kit(StripeProvider)

    kit.test_a_link_is_created_with_the_credentials_and_starts_with_a_status()
    kit.test_a_forged_notification_is_an_invalid_signature()
    kit.test_a_genuine_notification_is_an_event_with_a_stable_id_and_a_status()
