"""Wire shapes of the tenant API (``/api/v1/integrations``): msgspec Structs, camelCase.

Reading never shows a secret: each secret field appears as ``{"hint": "…a1b2",
"fingerprint": "<12 hex>"}``. On a ``PUT``, a secret field that is omitted, ``null`` or equal
to its hint keeps the stored value.

The ``PUT`` body of every kind but WhatsApp is built from its row (``update_body``); so is the
status (``entrypoints.http.status``).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Annotated, Any, cast

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from changarrito.domain.integrations import IntegrationView, Verification
from changarrito.domain.kinds import Kind
from changarrito.entrypoints.http.problems import PROBLEM_JSON

#: A secret as sent by a tenant (``null``/omitted: keep the stored one).
SecretValue = Annotated[str, msgspec.Meta(max_length=4096)]
ProviderId = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class Wire(msgspec.Struct, frozen=True, rename="camel", kw_only=True):
    pass


# --- requests -------------------------------------------------------------------------------


class WhatsAppCredentialsUpdate(Wire, frozen=True, forbid_unknown_fields=True):
    """``accessToken`` is required unless one is stored already (then omit it or send its
    hint to keep it). The ids are Graph's decimal ids."""

    phone_number_id: str
    business_account_id: str
    access_token: SecretValue | None = None
    app_secret: SecretValue | None = None
    verify_token: SecretValue | None = None


class WhatsAppIntegrationUpdate(Wire, frozen=True, forbid_unknown_fields=True):
    """``templates``: which approved template goes out for each purpose when the 24-hour
    window is closed, ``{"paymentReceived" | "paymentFailed" | "paymentExpired" |
    "handoffReply": {"name", "language", "parameters": [...]}}``; ``parameters`` fill the
    template's text parameters in order, each one of ``customerName``, ``amount``,
    ``reference``, ``description``, ``text`` (the shop's message, for ``handoffReply``)."""

    credentials: WhatsAppCredentialsUpdate
    phone_number: str | None = None
    display_name: str | None = None
    templates: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(
            description="Purpose → the approved template sent for it outside the 24-hour "
            "window: paymentReceived, paymentFailed, paymentExpired (fields customerName, "
            "amount, reference, description) and handoffReply (customerName, text).",
            examples=[
                {
                    "paymentReceived": {
                        "name": "pago_recibido",
                        "language": "es_MX",
                        "parameters": ["customerName", "amount", "reference"],
                    }
                }
            ],
        ),
    ] = None


class ChosenProviderUpdate(Wire, frozen=True, forbid_unknown_fields=True):
    """The body of a kind served by one provider at a time (``PUT .../llm``): ``credentials``
    and ``config`` follow the provider's schemas (``changarrito plugins`` lists their fields),
    e.g. ``{"apiKey"}`` and ``{"model", "maxTokens", "temperature", "systemPrompt"}``."""

    provider: str
    credentials: dict[str, SecretValue | None] = msgspec.field(default_factory=dict)
    config: dict[str, Any] = msgspec.field(default_factory=dict)


class ProviderUpdate(Wire, frozen=True, forbid_unknown_fields=True):
    """The body of a kind whose URL names the provider (``PUT .../payments/{provider}``):
    ``credentials`` and ``config`` follow the provider's schemas, e.g. Stripe ``{"apiKey",
    "webhookSecret"?}``, Mercado Pago ``{"accessToken", "webhookSecret"?}``, Clip
    ``{"apiKey", "secretKey"}``."""

    credentials: dict[str, SecretValue | None] = msgspec.field(default_factory=dict)
    config: dict[str, Any] = msgspec.field(default_factory=dict)


@cache
def update_body(kind: Kind) -> type[ChosenProviderUpdate] | type[ProviderUpdate]:
    """The ``PUT`` body of ``kind``, by its shape, named after it (``LLMIntegrationUpdate``,
    ``PaymentIntegrationUpdate``) so each kind has its own entry in the OpenAPI schema."""
    base = ProviderUpdate if kind.provider_in_path else ChosenProviderUpdate
    namespace = {"__doc__": base.__doc__}
    name = f"{kind.title}IntegrationUpdate"
    body = msgspec.defstruct(name, [], bases=(base,), module=__name__, namespace=namespace)
    return cast("type[ChosenProviderUpdate] | type[ProviderUpdate]", body)


# --- responses ------------------------------------------------------------------------------


class SecretHint(Wire, frozen=True):
    hint: str
    fingerprint: str


class Integration(Wire, frozen=True):
    """One of the tenant's own integrations."""

    integration: str
    provider: str
    is_active: bool
    is_verified: bool
    verified_at: datetime | None
    verification_error: str | None
    updated_at: datetime
    credentials: dict[str, SecretHint]
    config: dict[str, Any]

    @classmethod
    def of(cls, v: IntegrationView) -> Integration:
        return cls(
            integration=v.integration.value,
            provider=v.provider,
            is_active=v.is_active,
            is_verified=v.is_verified,
            verified_at=v.verified_at,
            verification_error=v.verification_error,
            updated_at=v.updated_at,
            credentials={
                k: SecretHint(hint=s.hint, fingerprint=s.fingerprint) for k, s in v.secrets.items()
            },
            config=v.config,
        )


class VerificationResult(Wire, frozen=True):
    """The provider's answer. ``isVerified`` false with ``error`` when it refused (or could
    not be reached: ``retryable`` true)."""

    integration: str
    provider: str
    is_verified: bool
    checked_at: datetime
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False

    @classmethod
    def of(cls, v: Verification) -> VerificationResult:
        return cls(
            integration=v.integration.value,
            provider=v.provider,
            is_verified=v.is_verified,
            checked_at=v.checked_at,
            error=v.error,
            error_code=v.error_code,
            retryable=v.retryable,
        )


# --- errors ---------------------------------------------------------------------------------


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """RFC 9457 problem details (``application/problem+json``). ``type`` is stable per kind
    of error (e.g. ``https://changarrito.dev/problems/invalid-token``); ``errors`` lists
    field-level problems of a request (``{"field": "credentials.apiKey", "message": ...}``)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


_PROBLEM_DESCRIPTIONS = {
    400: "The request body or parameters do not match the documented shape.",
    401: "Missing, invalid or expired credentials (tenant JWT or X-Internal-Key).",
    404: "No such resource (tenant, provider, phone number, integration).",
    409: "Conflicts with stored state (a phone number owned by another account; nothing "
    "configured to verify or resolve).",
    413: "The request body is too large.",
    422: "The values are not valid for the provider; `errors` lists the fields.",
    502: "The upstream provider failed.",
    503: "The database is unavailable.",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem responses an endpoint may give."""
    return {
        status: ResponseSpec(
            Problem,
            description=_PROBLEM_DESCRIPTIONS[status],
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in statuses
    }
