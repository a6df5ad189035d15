"""The wire-format side of the payment conformance kit: what a plugin's test class describes
(``Notification`` and the ``PaymentKit`` hooks) and the helpers that drive its provider on a
``FakeUpstream``. The tests themselves are in ``payment_suite``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import ModuleType
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import httpx
import pytest

from changarrito.domain.errors import ProviderError
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.base import Credentials, PaymentEvent, PaymentLink, PaymentProvider
from changarrito.testing.upstream import Answer, FakeUpstream, json_response

T = TypeVar("T")
#: The tenant every notification of the suite is for.
TENANT_ID = UUID("5d1c0b7e-8f0a-4f5e-9a40-3c2d1e0f9a8b")
#: The host's id of the link the suite creates (``create_payment_link``'s ``link_id``): the
#: provider's object must carry it, and a genuine notification about a payment echo it back
#: as ``PaymentEvent.link_id`` (or name the link's ``provider_id``).
LINK_ID = "0b6c1f0e-6a1d-4c39-8d0e-5f7b2a9c4e11"


@dataclass(frozen=True)
class Notification:
    """A notification as the provider would post it, and what the fake upstream answers
    while it is parsed (a re-fetch, for providers that do not sign)."""

    headers: Mapping[str, str]
    body: bytes
    answers: tuple[Answer, ...] = ()
    #: Extra config for ``parse_webhook`` (e.g. the notification URL's ``query``).
    config: Mapping[str, Any] = field(default_factory=dict)
    #: The status the genuine notification must parse to.
    status: PaymentStatus = PaymentStatus.PAID


class PaymentKit:
    """What a payment plugin's test class sets and overrides (see ``payment_suite``)."""

    provider_class: ClassVar[type[PaymentProvider]]
    #: The plugin module (or object) whose ``register_payment_providers`` registers the class.
    plugin: ClassVar[ModuleType | object | None] = None
    #: Valid credentials, as a tenant would store them (camelCase).
    credentials: ClassVar[dict[str, Any]]
    config: ClassVar[dict[str, Any]] = {}
    env: ClassVar[dict[str, str]] = {}
    #: ``(amount in major units, currency, what the request carries)``: at least one.
    amounts: ClassVar[list[tuple[Decimal, str, Any]]]

    # Wire format: override ---------------------------------------------------------------------

    def link_response(self) -> httpx.Response:
        """The provider's answer to a successful link creation."""
        raise NotImplementedError("return the provider's answer to a link creation")

    def sent_amount(self, request: httpx.Request) -> Any:
        """The amount as it appears in the link-creation ``request`` (compared with the third
        member of each ``amounts`` row)."""
        raise NotImplementedError("read the amount out of the link request")

    def genuine_notification(self) -> Notification:
        """A notification the provider accepts (signed with ``credentials``' secret, or one
        whose re-fetch ``answers`` confirm it): a payment of ``amounts[0]`` for the link the
        suite created, naming it by ``LINK_ID`` (or the link's provider id)."""
        raise NotImplementedError("build a genuine notification")

    def forged_notification(self) -> Notification:
        """One it must refuse with ``InvalidSignature`` (a wrong signature, or a re-fetch
        the provider answers with 404)."""
        raise NotImplementedError("build a forged notification")

    def error_response(self, status: int, message: str) -> httpx.Response:
        """An error answer carrying ``message`` where the provider puts its message (unlike
        the LLM kit's, it takes no ``headers``)."""
        body = {"error": {"message": message, "type": "error"}, "message": message}
        return json_response(status, body)

    def verify_response(self) -> httpx.Response:
        """The answer to ``verify``'s call when the credentials are good."""
        return json_response(200, {})

    # Helpers ----------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coro)

    @property
    def secrets(self) -> list[str]:
        """The credential values (and derived tokens) that must never leak."""
        parsed = self.provider_class.parse_credentials(self.credentials)
        found = parsed.secrets() if isinstance(parsed, Credentials) else []
        return [s for s in found if len(s) >= 8]

    def call(
        self,
        use: Callable[[PaymentProvider], Coroutine[Any, Any, T]],
        upstream: FakeUpstream,
        env: Mapping[str, str] | None = None,
    ) -> T:
        async def go() -> T:
            context = upstream.context(dict(self.env if env is None else env))
            try:
                return await use(self.provider_class(context))
            finally:
                await context.http.aclose()

        return self.run(go())

    def create(
        self,
        *answers: Answer,
        amount: Decimal | None = None,
        currency: str | None = None,
        upstream: FakeUpstream | None = None,
        env: Mapping[str, str] | None = None,
    ) -> tuple[PaymentLink, FakeUpstream]:
        first_amount, first_currency, _ = self.amounts[0]
        upstream = upstream or FakeUpstream(*(answers or (self.link_response(),)))

        async def use(provider: PaymentProvider) -> PaymentLink:
            return await provider.create_payment_link(
                link_id=LINK_ID,
                amount=first_amount if amount is None else amount,
                currency=currency or first_currency,
                description="Tacos al pastor x3",
                reference="order-42",
                credentials=provider.parse_credentials(self.credentials),
                config=provider.parse_config(self.config),
            )

        return self.call(use, upstream, env), upstream

    def create_error(self, *answers: Answer) -> ProviderError:
        with pytest.raises(ProviderError) as info:
            self.create(*answers)
        return info.value

    def parse(self, notification: Notification) -> tuple[PaymentEvent, FakeUpstream]:
        upstream = FakeUpstream(*notification.answers)

        async def use(provider: PaymentProvider) -> PaymentEvent:
            return await provider.parse_webhook(
                dict(notification.headers),
                notification.body,
                provider.parse_credentials(self.credentials),
                provider.parse_config({**self.config, **notification.config}),
                tenant_id=TENANT_ID,
            )

        return self.call(use, upstream), upstream

    def verify(self, *answers: Answer) -> FakeUpstream:
        upstream = FakeUpstream(*answers)

        async def use(provider: PaymentProvider) -> None:
            await provider.verify(
                provider.parse_credentials(self.credentials), provider.parse_config(self.config)
            )

        self.call(use, upstream)
        return upstream

    def assert_authenticated(self, request: httpx.Request) -> None:
        sent = " ".join(f"{k}={v}" for k, v in request.headers.items()) + " " + str(request.url)
        assert any(s in sent for s in self.secrets), (
            f"{request.method} {request.url.path} carries none of the credentials"
        )
