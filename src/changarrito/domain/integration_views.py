"""What the integrations use cases return, and the write-only rule for secrets.

- ``view`` shows a stored credential as a tenant may see it: each secret as a hint (``…a1b2``)
  and a fingerprint, never its value.
- ``merge_secrets``: on a write, a secret field that is omitted, ``null`` or equal to the stored
  value's hint keeps the stored value; any other masked-looking value (starting with ``…``) is
  refused, so a masked echo can never overwrite a real secret.
- ``Status`` is the tenant's integrations at a glance, one ``KindStatus`` per kind, shaped by
  the kind's row (``changarrito.domain.kinds``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.kinds import Kind, kind_of
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber

MASK = "…"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asks (the JWT's ``sub``) and from where."""

    subject: str
    client_ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class SecretView:
    hint: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class IntegrationView:
    """One stored integration as a tenant may see it: no secret beyond hints."""

    integration: IntegrationType
    provider: str
    is_active: bool
    is_verified: bool
    verified_at: datetime | None
    verification_error: str | None
    updated_at: datetime
    secrets: dict[str, SecretView]
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Verification:
    integration: IntegrationType
    provider: str
    is_verified: bool
    checked_at: datetime
    error: str | None = None
    error_code: str | None = None
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class KindStatus:
    """One kind's section of the status."""

    kind: Kind
    #: ``SINGLE`` kinds: the tenant's winning credential (``None``: the platform's serves).
    own: Credential | None = None
    #: ``SINGLE`` kinds: the provider serving the tenant (its own, else the platform's).
    provider: str | None = None
    #: Kinds with ``status_provider``: the model that provider answers with.
    model: str | None = None
    #: ``PER_PROVIDER`` kinds: every installed provider, in status order, with the tenant's
    #: credential for it.
    providers: Mapping[str, Credential | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Status:
    """The tenant's integrations at a glance (the contract's ``status`` shape): one section
    per kind, in ``KINDS`` order, and the numbers the tenant claimed."""

    kinds: Mapping[IntegrationType, KindStatus]
    whatsapp_numbers: list[WhatsAppNumber] = field(default_factory=list)

    # Shorthands for callers that name a kind (tests, the CLI); the API reads ``kinds``.

    @property
    def whatsapp(self) -> Credential | None:
        return self.kinds[IntegrationType.WHATSAPP].own

    @property
    def llm(self) -> Credential | None:
        return self.kinds[IntegrationType.LLM].own

    @property
    def llm_provider(self) -> str:
        return self.kinds[IntegrationType.LLM].provider or ""

    @property
    def llm_model(self) -> str | None:
        return self.kinds[IntegrationType.LLM].model

    @property
    def payments(self) -> dict[str, Credential | None]:
        return dict(self.kinds[IntegrationType.PAYMENTS].providers)


def view(credential: Credential) -> IntegrationView:
    secrets = credential.secrets
    return IntegrationView(
        integration=kind_of(credential.integration_type).type,
        provider=credential.provider,
        is_active=credential.is_active,
        is_verified=credential.is_verified,
        verified_at=credential.verified_at,
        verification_error=credential.verification_error,
        updated_at=credential.updated_at,
        secrets={
            k: SecretView(secrets.hint(k) or MASK, secrets.fingerprint(k) or "") for k in secrets
        },
        config=dict(credential.config),
    )


def merge_secrets(
    given: Mapping[str, str | None], stored: Secrets | None, where: str = "credentials"
) -> dict[str, str]:
    """The secrets to store: ``given`` over ``stored`` (see the module docstring)."""
    merged = dict(stored.reveal()) if stored is not None else {}
    problems: list[tuple[str, str]] = []
    for name, value in given.items():
        if value is None:
            continue
        if stored is not None and name in stored and value == stored.hint(name):
            continue
        if not value:
            problems.append(
                (f"{where}.{name}", "must not be empty; omit it to keep the stored value")
            )
            continue
        if value.startswith(MASK):
            problems.append(
                (f"{where}.{name}", "is a masked value; send the real secret or omit the field")
            )
            continue
        merged[name] = value
    if problems:
        raise ValidationFailed("masked values cannot be stored", errors=problems)
    return merged


def scrub_secrets(text: str, secrets: Secrets) -> str:
    """``text`` with every secret value of 4 characters or more replaced by ``[redacted]``."""
    for value in sorted(secrets.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text
