"""A reusable pytest suite for payment provider plugins.

Subclass it in your plugin's tests (the class name must start with ``Test``), set
``provider_class``, ``plugin``, ``credentials`` and ``amounts``, and describe your wire format
by overriding ``link_response``, ``sent_amount``, ``genuine_notification`` and
``forged_notification`` (and ``error_response``/``verify_response`` when the defaults do not
fit). The link is created with ``link_id=LINK_ID``: the request must carry it, and the genuine
notification (a payment of ``amounts[0]``) must name the link with it (``PaymentEvent.link_id``)
or with the link's provider id, and say its amount and currency::

    class TestConektaConformance(PaymentProviderConformance):
        provider_class = ConektaProvider
        plugin = changarrito_conekta
        credentials = {"apiKey": "key_test_0123456789abcdef"}
        amounts = [(Decimal("149.50"), "MXN", 14950)]
        ...

The kit talks to a ``FakeUpstream``: nothing leaves the machine. Tests are synchronous (each
runs its coroutine with ``asyncio.run``): no pytest-asyncio needed.
"""

from __future__ import annotations

import inspect
from decimal import Decimal

import httpx
import pytest
import structlog.testing

from changarrito.domain.errors import (
    InvalidSignature,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderTimeout,
    ValidationFailed,
)
from changarrito.domain.kinds import IntegrationType
from changarrito.domain.money import minor_unit_decimals
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.base import Credentials, PaymentEvent, PaymentLink
from changarrito.testing.checks import check_declarations, registered
from changarrito.testing.payment_kit import LINK_ID, Notification, PaymentKit
from changarrito.testing.upstream import FakeUpstream, text_response

__all__ = ["LINK_ID", "Notification", "PaymentProviderConformance"]


class PaymentProviderConformance(PaymentKit):
    """What every payment provider must do; see the module docstring."""

    # The suite --------------------------------------------------------------------------------

    def test_class_declares_id_name_schemas_and_environment(self) -> None:
        cls = self.provider_class
        check_declarations(cls)
        assert issubclass(cls.credentials_schema, Credentials)

    def test_parse_webhook_takes_the_tenant_as_a_keyword(self) -> None:
        parameter = inspect.signature(self.provider_class.parse_webhook).parameters["tenant_id"]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY

    def test_plugin_registers_the_provider_class_through_its_hook(self) -> None:
        if self.plugin is None:
            pytest.skip("no plugin module given")
        context = FakeUpstream().context(self.env)
        provider = registered(
            self.plugin, context, IntegrationType.PAYMENTS, self.provider_class.id
        )
        assert isinstance(provider, self.provider_class)
        self.run(context.http.aclose())

    def test_credentials_repr_never_shows_a_value(self) -> None:
        parsed = self.provider_class.parse_credentials(self.credentials)
        for secret in self.secrets:
            assert secret not in repr(parsed) and secret not in str(parsed)

    def test_missing_required_credentials_are_named(self) -> None:
        with pytest.raises(ValidationFailed) as info:
            self.provider_class.parse_credentials({})
        assert "credentials" in str(info.value)

    def test_a_link_is_created_with_the_credentials_and_starts_with_a_status(self) -> None:
        link, upstream = self.create()
        assert isinstance(link, PaymentLink)
        assert link.provider == self.provider_class.id
        assert link.provider_id and link.url.startswith(("https://", "http://"))
        assert isinstance(link.status, PaymentStatus)
        assert link.status is not PaymentStatus.UNKNOWN
        self.assert_authenticated(upstream.last)

    def test_the_link_request_carries_the_hosts_link_id(self) -> None:
        _, upstream = self.create()
        sent = upstream.last
        assert LINK_ID in sent.content.decode(errors="replace") + str(sent.url), (
            "create_payment_link must put link_id in the provider's object (metadata, external "
            "reference) so that the provider's events can name the link"
        )

    def test_a_genuine_payment_names_its_link_and_says_what_it_paid(self) -> None:
        notification = self.genuine_notification()
        event, _ = self.parse(notification)
        link, _ = self.create()
        assert event.link_id == LINK_ID or event.provider_link_id == link.provider_id, (
            "the event must echo link_id (PaymentEvent.link_id) or name the provider's link id"
        )
        if event.status in (PaymentStatus.PAID, PaymentStatus.REFUNDED):
            amount, currency, _ = self.amounts[0]
            assert (event.amount, event.currency) == (amount, currency.upper()), (
                "a payment must say its amount (major units) and currency, or it pays nothing"
            )

    def test_amounts_are_sent_in_the_currencys_minor_units(self) -> None:
        for amount, currency, expected in self.amounts:
            _, upstream = self.create(amount=amount, currency=currency)
            assert self.sent_amount(upstream.last) == expected, (amount, currency)

    def test_more_decimals_than_the_currency_has_are_refused_before_any_call(self) -> None:
        amount, currency, _ = self.amounts[0]
        too_precise = amount + Decimal(1).scaleb(-(minor_unit_decimals(currency) + 1))
        upstream = FakeUpstream(self.link_response())
        with pytest.raises(ValidationFailed):
            self.create(amount=too_precise, currency=currency, upstream=upstream)
        assert upstream.requests == []

    def test_base_url_override_from_the_environment_is_used(self) -> None:
        variable = self.provider_class.base_url_env
        if variable is None:
            pytest.skip("the provider declares no base_url_env")
        _, upstream = self.create(env={**self.env, variable: "https://fake.test/base"})
        assert str(upstream.last.url).startswith("https://fake.test/base/")

    def test_a_genuine_notification_is_an_event_with_a_stable_id_and_a_status(self) -> None:
        notification = self.genuine_notification()
        event, _ = self.parse(notification)
        again, _ = self.parse(notification)
        assert isinstance(event, PaymentEvent)
        assert event.provider == self.provider_class.id
        assert event.event_id and event.event_id == again.event_id
        assert isinstance(event.status, PaymentStatus)
        assert event.status == notification.status

    def test_a_forged_notification_is_an_invalid_signature(self) -> None:
        with pytest.raises(InvalidSignature):
            self.parse(self.forged_notification())

    def test_rejected_credentials_are_a_final_auth_error(self) -> None:
        error = self.create_error(self.error_response(401, "invalid credentials"))
        assert isinstance(error, ProviderAuthError) and not error.retryable

    def test_server_errors_are_retryable(self) -> None:
        for status in (500, 503):
            assert self.create_error(self.error_response(status, "down")).retryable, status

    def test_a_timeout_is_a_retryable_provider_timeout(self) -> None:
        error = self.create_error(httpx.ReadTimeout)
        assert isinstance(error, ProviderTimeout) and error.retryable

    def test_a_success_that_is_not_json_is_a_bad_response(self) -> None:
        error = self.create_error(text_response(200, "<html>maintenance</html>"))
        assert isinstance(error, ProviderBadResponse)

    def test_secrets_never_appear_in_errors_or_logs(self) -> None:
        echo = " ".join(f"rejected {s} ({s[:8]}****{s[-4:]})" for s in self.secrets)
        with structlog.testing.capture_logs() as logs:
            error = self.create_error(self.error_response(401, echo))
        for shown in (str(error), repr(error), error.message, repr(logs)):
            for secret in self.secrets:
                assert secret not in shown and secret[-4:] not in shown

    def test_verify_makes_an_authenticated_call(self) -> None:
        upstream = self.verify(self.verify_response())
        assert upstream.requests, "verify must call the provider"
        self.assert_authenticated(upstream.last)

    def test_verify_refuses_rejected_credentials(self) -> None:
        with pytest.raises(ProviderAuthError):
            self.verify(self.error_response(401, "invalid credentials"))
