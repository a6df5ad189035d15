"""Entities of the integrations domain."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid4

from changarrito.domain.kinds import DefaultRule, IntegrationType, kind_of

__all__ = [
    "AuditEntry",
    "Credential",
    "IntegrationType",
    "PlatformCredential",
    "PlatformDefaults",
    "Resolved",
    "Route",
    "Secrets",
    "Source",
    "Tenant",
    "WhatsAppNumber",
    "utcnow",
]


class Source(StrEnum):
    """Where a resolved credential came from."""

    TENANT = "tenant"
    PLATFORM = "platform"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Secrets(Mapping[str, str]):
    """Secret credential fields. Never shows its values in ``repr``/``str``.

    Use ``reveal()`` at the one place a value must leave the process (an upstream request, the
    internal API) and ``hint()`` where a person needs to recognise a value.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return "Secrets(" + ", ".join(f"{k}='***'" for k in sorted(self._data)) + ")"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secrets):
            return self._data == other._data
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def reveal(self) -> dict[str, str]:
        """The plain values, for sending upstream. Never log or return this to a browser."""
        return dict(self._data)

    def hint(self, key: str) -> str | None:
        """A short recognisable hint such as ``…a1b2`` (nothing for short values)."""
        value = self._data.get(key)
        if value is None:
            return None
        return "…" + value[-4:] if len(value) >= 12 else "…"

    def fingerprint(self, key: str, *, server_key: bytes, scope: UUID) -> str | None:
        """A stable fingerprint of one value: the first 12 hex of HMAC-SHA256 under the
        server's ``server_key`` over ``scope`` (the tenant) and the value. Keyed, so it is no
        offline oracle for guessing a weak secret; scoped, so the same secret stored by two
        tenants shows two fingerprints."""
        value = self._data.get(key)
        if value is None:
            return None
        message = scope.bytes + value.encode()
        return hmac.new(server_key, message, hashlib.sha256).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Tenant:
    id: UUID
    name: str
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Credential:
    """A tenant's credential for one provider of one integration type.

    ``secrets`` is encrypted at rest; ``config`` (model, system prompt, ids) is not secret.
    Among several active credentials of one type, the lowest ``priority`` wins, then the newest.
    """

    tenant_id: UUID
    integration_type: IntegrationType
    provider: str
    secrets: Secrets
    config: Mapping[str, Any] = field(default_factory=dict)
    is_active: bool = True
    is_verified: bool = False
    priority: int = 0
    id: UUID = field(default_factory=uuid4)
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    verified_at: datetime | None = None
    verification_error: str | None = None


@dataclass(frozen=True, slots=True)
class WhatsAppNumber:
    """A tenant's confirmed claim on a WhatsApp Business phone number: Graph confirmed that
    the tenant's token reads it, in ``business_account_id``. Webhooks are routed by its id. A
    claim Graph has not confirmed is no ``WhatsAppNumber``, only the credential's config."""

    tenant_id: UUID
    phone_number_id: str
    phone_number: str | None = None
    display_name: str | None = None
    is_active: bool = True
    id: UUID = field(default_factory=uuid4)
    #: The WhatsApp Business Account Graph confirmed the number belongs to (``None``: not
    #: confirmed, e.g. claimed before confirmations existed); its account-level webhooks
    #: belong to the tenant.
    business_account_id: str | None = None


@dataclass(frozen=True, slots=True)
class PlatformCredential:
    """The platform's own credential for a provider (from the environment)."""

    integration_type: IntegrationType
    provider: str
    secrets: Secrets
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlatformDefaults:
    """Everything the platform falls back to when a tenant has nothing of its own.

    ``env_hints`` names, per (type, provider), the environment variable that configures it, so
    that a ``NotConfigured`` error can say how to fix itself.
    """

    credentials: Mapping[tuple[IntegrationType, str], PlatformCredential] = field(
        default_factory=dict
    )
    default_providers: Mapping[IntegrationType, str] = field(default_factory=dict)
    whatsapp_phone_number_id: str | None = None
    env_hints: Mapping[tuple[IntegrationType, str], str] = field(default_factory=dict)

    def credential(self, itype: IntegrationType, provider: str) -> PlatformCredential | None:
        return self.credentials.get((itype, provider))

    def default_provider(self, itype: IntegrationType) -> str | None:
        """The provider serving a tenant that names none (the kind's ``DefaultRule``)."""
        kind = kind_of(itype)
        if kind.default is DefaultRule.PINNED:
            return kind.default_provider
        return self.default_providers.get(itype)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The credential to use for one tenant and integration, and where it came from.

    ``tenant_id`` is the tenant it was resolved *for* (``None`` for the platform's own number).
    """

    tenant_id: UUID | None
    integration_type: IntegrationType
    provider: str
    secrets: Secrets
    config: Mapping[str, Any]
    source: Source
    credential_id: UUID | None = None
    is_verified: bool = False
    #: Served past its cache lifetime because its source (the backend) could not be reached.
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """Which tenant a WhatsApp phone number id belongs to (``None``: the platform's number)."""

    phone_number_id: str
    tenant_id: UUID | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change to a tenant's integrations: who, what, when and from where. Never a secret:
    ``details`` names fields and outcomes, not values."""

    tenant_id: UUID
    actor: str
    integration: str
    action: str
    provider: str | None = None
    outcome: str = "ok"
    client_ip: str | None = None
    user_agent: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utcnow)
