"""What the integrations use cases return, and the write-only rule for secrets.

- ``view`` shows a stored credential as a tenant may see it: each secret as a hint (``…a1b2``)
  and a fingerprint, never its value.
- ``merge_secrets``: on a write, a secret field that is omitted, ``null`` or sent back masked
  keeps the stored value. Masked is any shape a UI shows a secret as: our hint ``…wxyz``,
  ``****wxyz``, ``sk-…wxyz``, ``sk-...wxyz``, ``•••``, ``***``; a mask that shows characters
  the stored secret does not have, or a mask with nothing stored, is refused, so a masked echo
  can never overwrite a real secret. A new value must be printable ASCII (it ends up in HTTP
  headers): non-ASCII, CR, LF, NUL and other control characters are refused at save time.
- ``Status`` is the tenant's integrations at a glance, one ``KindStatus`` per kind, shaped by
  the kind's row (``changarrito.domain.kinds``); a kind that claims numbers also shows
  ``claim_state``: whether Graph confirmed the claim its credential asks for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.kinds import Kind, kind_of
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber

MASK = "…"
#: A run of masking characters: an ellipsis, bullets, or three or more ``*`` or ``.``.
_MASK_RUN = re.compile(r"(?:[…•●]|\*{3,}|\.{3,})+")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


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


class ClaimState(StrEnum):
    """Whether Graph confirmed a tenant's claim on the number and business account its
    credential names (the status's ``numberClaim``)."""

    #: The tenant holds the claim: the number routes to it, its account's events too.
    CONFIRMED = "confirmed"
    #: Not (yet) confirmed: the claim owns nothing and takes nothing from anyone.
    PENDING = "pending"


def claim_key(config: Mapping[str, Any]) -> tuple[str, str | None]:
    """The (phone number id, business account id) a credential's ``config`` claims."""
    account = config.get("businessAccountId")
    return str(config.get("phoneNumberId")), str(account) if account else None


def claim_state(config: Mapping[str, Any], numbers: Iterable[WhatsAppNumber]) -> ClaimState:
    """Confirmed when the tenant holds a confirmed claim (a ``WhatsAppNumber``) on exactly the
    number and business account its credential's ``config`` names; pending otherwise (a
    number claimed before the account was confirmed, too)."""
    held = {(n.phone_number_id, n.business_account_id) for n in numbers}
    return ClaimState.CONFIRMED if claim_key(config) in held else ClaimState.PENDING


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


def view(credential: Credential, fingerprint_key: bytes) -> IntegrationView:
    """``credential`` as its tenant may see it; ``fingerprint_key`` keys the fingerprints
    (``Secrets.fingerprint``, scoped by the credential's tenant)."""
    secrets = credential.secrets
    tenant = credential.tenant_id
    return IntegrationView(
        integration=kind_of(credential.integration_type).type,
        provider=credential.provider,
        is_active=credential.is_active,
        is_verified=credential.is_verified,
        verified_at=credential.verified_at,
        verification_error=credential.verification_error,
        updated_at=credential.updated_at,
        secrets={
            k: SecretView(
                secrets.hint(k) or MASK,
                secrets.fingerprint(k, server_key=fingerprint_key, scope=tenant) or "",
            )
            for k in secrets
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
        field_name = f"{where}.{name}"
        if value is None:
            continue
        if stored is not None and name in stored and value == stored.hint(name):
            continue
        mask = _masked(value)
        if mask is not None:
            if name in merged and _fits(mask, merged[name]):
                continue  # a masked echo of the stored secret: keep it
            unlike = " unlike the stored secret" if name in merged else ""
            problems.append(
                (field_name, f"is a masked value{unlike}; send the real secret or omit the field")
            )
            continue
        if not value:
            problems.append((field_name, "must not be empty; omit it to keep the stored value"))
            continue
        problem = _unprintable(value)
        if problem:
            problems.append((field_name, problem))
            continue
        merged[name] = value
    if problems:
        raise ValidationFailed("these credentials cannot be stored", errors=problems)
    return merged


def _masked(value: str) -> tuple[str, str] | None:
    """``(shown head, shown tail)`` when ``value`` is a masked secret, else ``None``."""
    runs = list(_MASK_RUN.finditer(value))
    if not runs:
        return None
    return value[: runs[0].start()].strip(), value[runs[-1].end() :].strip()


def _fits(mask: tuple[str, str], secret: str) -> bool:
    head, tail = mask
    return len(head) + len(tail) < len(secret) and secret.startswith(head) and secret.endswith(tail)


def _unprintable(value: str) -> str | None:
    if _PRINTABLE_ASCII.fullmatch(value):
        return None
    if any(c in value for c in "\r\n\x00"):
        return "must not contain CR, LF or NUL"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "must not contain control characters"
    return "must be ASCII: a credential is sent in HTTP headers"


def scrub_secrets(text: str, secrets: Secrets) -> str:
    """``text`` with every secret value of 4 characters or more replaced by ``[redacted]``."""
    for value in sorted(secrets.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "[redacted]")
    return text
