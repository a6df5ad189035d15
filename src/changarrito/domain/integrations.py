"""Tenants configure their own integrations: status, configure, delete, verify.

Pure use cases over ports (store, cache invalidation, audit log, provider catalog), the same
for every kind: what differs by kind is its row in ``changarrito.domain.kinds``. Rules:

- Secrets are write-only (``integration_views.merge_secrets``): reading shows a hint and a
  fingerprint per field; a masked echo can never overwrite a real secret, and a secret
  that is not printable ASCII (non-ASCII, CR, LF, NUL) is refused at save time, every kind.
- A kind that claims numbers (WhatsApp) claims one only with proof (``claim_state``): the
  provider's ``verify`` (Graph: the tenant's token reads the number, and its business account
  lists it) is tried when the credential is saved and on ``verify``. Until it succeeds the
  claim is *pending*: the credential is saved, its ``verificationError`` says why, and the
  claim owns nothing (no ``WhatsAppNumber``: not routed, not used to pick an app secret or an
  account's owner). A confirmed claim takes the number; a ``phoneNumberId`` another tenant
  holds a *confirmed* claim on, or the platform's own number, is a ``Conflict`` that never
  names the owner, and a pending claim never is one.
- A kind with ``one_per_tenant`` (LLM): configuring a provider removes its other providers.
- An unknown provider is a 404 when the URL names it (``/payments/{provider}``), a 422 on the
  body's ``provider`` field otherwise.
- Every write invalidates this process's cache (others hear of it through the store's change
  notifications) and appends an ``AuditEntry`` (never a secret).

Past the house's 300-line bound on purpose: one use-case class whose five operations share
the rules above; its views and the pure claim rule (``integration_views``) and errors
(``integration_errors``) already live beside it, its ports (``ProviderCatalog``,
``Invalidator``...) in ``ports``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from uuid import UUID

from changarrito.domain import resolution
from changarrito.domain.errors import NotConfigured, ProviderError
from changarrito.domain.integration_errors import (
    IntegrationNotConfigured,
    NumberTaken,
    UnknownProvider,
    UnknownProviderInPath,
)
from changarrito.domain.integration_views import (
    Actor,
    ClaimState,
    IntegrationView,
    KindStatus,
    Status,
    Verification,
    claim_key,
    claim_state,
    merge_secrets,
    scrub_secrets,
    view,
)
from changarrito.domain.kinds import KINDS, DefaultRule, Kind, StatusShape, kind_of
from changarrito.domain.model import (
    AuditEntry,
    Credential,
    IntegrationType,
    PlatformDefaults,
    Secrets,
    WhatsAppNumber,
    utcnow,
)
from changarrito.domain.ports import AuditLog, CredentialStore, Invalidator, ProviderCatalog

__all__ = [
    "Actor",
    "ClaimState",
    "IntegrationNotConfigured",
    "IntegrationView",
    "Integrations",
    "NumberTaken",
    "Status",
    "UnknownProvider",
    "UnknownProviderInPath",
    "Verification",
    "claim_state",
]

#: What a pending claim's ``verificationError`` starts with.
PENDING = (
    "The WhatsApp number is not claimed until Graph confirms that this token can read it "
    "and that its business account lists it"
)


class Integrations:
    """The tenant API's use cases."""

    def __init__(
        self,
        store: CredentialStore,
        cache: Invalidator,
        audit: AuditLog,
        catalog: ProviderCatalog,
        platform: PlatformDefaults,
        *,
        default_llm_model: str | None,
        fingerprint_key: bytes,
    ) -> None:
        self.store = store
        self.cache = cache
        self.audit = audit
        self.catalog = catalog
        self.platform = platform
        #: The platform's model, by kind, when its credential serves (``LLM_MODEL``; unset:
        #: the default provider's own default model).
        self.default_models = {IntegrationType.LLM: default_llm_model}
        #: Keys the fingerprints of the secrets a tenant is shown (``Secrets.fingerprint``).
        self.fingerprint_key = fingerprint_key

    # -- reading -------------------------------------------------------------------------

    def check_provider(self, itype: IntegrationType, provider: str) -> None:
        installed = self.catalog.installed(itype)
        if provider in installed:
            return
        kind = kind_of(itype)
        if kind.provider_in_path:
            raise UnknownProviderInPath(kind, provider, installed)
        raise UnknownProvider(kind, provider, installed)

    async def status(self, tenant_id: UUID) -> Status:
        stored = await self.store.credentials_for(tenant_id)
        numbers = await self.store.numbers_for(tenant_id)
        sections = {t: self._section(tenant_id, kind, stored) for t, kind in KINDS.items()}
        return Status(sections, numbers)

    def _section(self, tenant_id: UUID, kind: Kind, stored: list[Credential]) -> KindStatus:
        if kind.shape is StatusShape.PER_PROVIDER:
            installed = kind.ordered(self.catalog.installed(kind.type))
            return KindStatus(
                kind,
                providers={
                    p: resolution.pick_tenant_credential(tenant_id, kind.type, stored, p)
                    for p in installed
                },
            )
        own = resolution.pick_tenant_credential(tenant_id, kind.type, stored)
        provider = own.provider if own else self.platform.default_provider(kind.type)
        model = self._model(kind, own) if kind.status_provider else None
        return KindStatus(kind, own=own, provider=provider or kind.default_provider, model=model)

    def _model(self, kind: Kind, own: Credential | None) -> str | None:
        """The model the kind's serving provider answers with (``Kind.status_provider``)."""
        if own is None:
            provider = self.platform.default_provider(kind.type) or kind.default_provider
            chosen = self.default_models.get(kind.type)
            return chosen or (self.catalog.default_model(provider) if provider else None)
        return own.config.get("model") or self.catalog.default_model(own.provider)

    async def get(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> IntegrationView:
        """The tenant's own credential (its LLM, whichever provider, when none is named)."""
        if provider is not None:
            self.check_provider(itype, provider)
        own = await self._own(tenant_id, itype, provider)
        if own is None:
            raise IntegrationNotConfigured(
                f"This tenant has no {itype.value} credentials of its own: "
                f"{resolution.configure_endpoint(itype, provider)}"
            )
        return view(own, self.fingerprint_key)

    async def _own(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Credential | None:
        stored = await self.store.credentials_for(tenant_id, itype)
        return resolution.pick_tenant_credential(tenant_id, itype, stored, provider)

    # -- writing -------------------------------------------------------------------------

    async def configure(
        self,
        actor: Actor,
        tenant_id: UUID,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str | None],
        config: Mapping[str, Any],
    ) -> IntegrationView:
        """Stores the tenant's credential for ``provider`` (see the module rules); for a kind
        that claims numbers, asks the provider for the proof and claims the number in
        ``config["phoneNumberId"]`` when it is given (else the claim stays pending)."""
        self.check_provider(itype, provider)
        kind = kind_of(itype)
        existing = await self._own(tenant_id, itype, provider)
        merged = merge_secrets(secrets, existing.secrets if existing else None)
        clean_secrets, clean_config = self.catalog.normalize(itype, provider, merged, config)
        await self.catalog.check_endpoints(clean_secrets)  # resolved now, and at every connect
        unchanged = (
            existing is not None
            and existing.secrets.reveal() == clean_secrets
            and dict(existing.config) == clean_config
        )
        credential = Credential(
            tenant_id=tenant_id,
            integration_type=itype,
            provider=provider,
            secrets=Secrets(clean_secrets),
            config=clean_config,
            is_verified=unchanged and existing is not None and existing.is_verified,
            verified_at=existing.verified_at if unchanged and existing else None,
        )
        number, held, claim = None, [], None
        if kind.claims_number:
            number = self._number(tenant_id, clean_config)
            await self._check_number(tenant_id, number.phone_number_id)
            held = await self.store.numbers_for(tenant_id)
            credential, confirmed = await self._prove(credential, held)
            number = number if confirmed else None
            # Unproven now but proven before (a new token Graph refused, Graph down): kept.
            claim = ClaimState.CONFIRMED if confirmed else claim_state(clean_config, held)
            kept = not confirmed and claim is ClaimState.CONFIRMED
            wanted = claim_key(clean_config)
            if not kept and any((n.phone_number_id, n.business_account_id) != wanted for n in held):
                # Another number or account: release the old claims (the store claims, never
                # releases).
                await self.store.delete_credentials(tenant_id, itype)
        saved = await self.store.save_credential(credential, number)
        if kind.one_per_tenant:
            for other in self.catalog.installed(itype):
                if other != provider:
                    await self.store.delete_credentials(tenant_id, itype, other)
        claimed = [number.phone_number_id] if number else []
        self._invalidate(tenant_id, [*(n.phone_number_id for n in held), *claimed])
        before = existing.secrets.reveal() if existing else {}
        changed = sorted(k for k, v in clean_secrets.items() if before.get(k) != v)
        details: dict[str, Any] = {"secretsChanged": changed, "created": existing is None}
        if claim is not None:
            details["numberClaim"] = claim.value
        await self._audit(actor, tenant_id, itype, provider, "configure", details=details)
        return view(saved, self.fingerprint_key)

    async def _prove(
        self, credential: Credential, held: list[WhatsAppNumber]
    ) -> tuple[Credential, bool]:
        """``credential`` with the provider's verdict, and whether it proves the claim on its
        number and account: tried now, unless that same credential was proven before."""
        if credential.is_verified and claim_state(credential.config, held) is ClaimState.CONFIRMED:
            return credential, True
        try:
            await self.catalog.verify(
                credential.integration_type,
                credential.provider,
                credential.secrets,
                credential.config,
            )
        except ProviderError as exc:
            message = scrub_secrets(exc.message, credential.secrets)
            if claim_state(credential.config, held) is ClaimState.PENDING:
                message = f"{PENDING}: {message}"
            return replace(credential, is_verified=False, verification_error=message), False
        return replace(credential, is_verified=True, verified_at=utcnow()), True

    def _number(self, tenant_id: UUID, config: Mapping[str, Any]) -> WhatsAppNumber:
        """The claim ``config`` asks for, as it is stored once confirmed."""
        account = claim_key(config)[1]
        return WhatsAppNumber(
            tenant_id=tenant_id,
            phone_number_id=str(config["phoneNumberId"]),
            phone_number=config.get("phoneNumber"),
            display_name=config.get("displayName"),
            business_account_id=account,
        )

    async def _check_number(self, tenant_id: UUID, phone_number_id: str) -> None:
        """``NumberTaken`` for the platform's own number and for a number another tenant holds
        a confirmed claim on (a pending claim owns nothing, so it takes nothing)."""
        taken = NumberTaken(
            f"WhatsApp phone number id {phone_number_id} is already registered to another account"
        )
        if phone_number_id == self.platform.whatsapp_phone_number_id:
            raise taken
        owner = await self.store.number_owner(phone_number_id)
        if owner is not None and owner.tenant_id != tenant_id:
            raise taken

    async def _numbers(self, tenant_id: UUID) -> list[str]:
        return [n.phone_number_id for n in await self.store.numbers_for(tenant_id)]

    async def delete(
        self, actor: Actor, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> int:
        """Back to the platform default; returns how many credentials went."""
        if provider is not None:
            self.check_provider(itype, provider)
        numbers = await self._numbers(tenant_id) if kind_of(itype).claims_number else []
        deleted = await self.store.delete_credentials(tenant_id, itype, provider)
        self._invalidate(tenant_id, numbers)
        await self._audit(actor, tenant_id, itype, provider, "delete", details={"deleted": deleted})
        return deleted

    async def verify(
        self, actor: Actor, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Verification:
        """Asks the provider whether the tenant's stored credential works; records the answer.
        Without ``provider``, the tenant's winning credential of the type is checked. For a
        kind that claims numbers, a positive answer confirms the claim (``NumberTaken`` when
        another tenant's confirmed claim holds the number)."""
        if provider is not None:
            self.check_provider(itype, provider)
        own = await self._own(tenant_id, itype, provider)
        if own is None:
            raise NotConfigured(
                f"Nothing to verify: this tenant has no {itype.value} credentials of its own; "
                f"{resolution.configure_endpoint(itype, provider)} first"
            )
        provider = own.provider
        claims = kind_of(itype).claims_number
        held = await self.store.numbers_for(tenant_id) if claims else []
        try:
            await self.catalog.verify(itype, provider, own.secrets, own.config)
        except ProviderError as exc:
            message = scrub_secrets(exc.message, own.secrets)
            if claims and claim_state(own.config, held) is ClaimState.PENDING:
                message = f"{PENDING}: {message}"
            await self.store.set_verified(tenant_id, itype, provider, False, message)
            result = Verification(
                itype, provider, False, utcnow(), message, exc.code, exc.retryable
            )
        else:
            if claims:
                number = self._number(tenant_id, own.config)
                await self._check_number(tenant_id, number.phone_number_id)
                proven = replace(
                    own, is_verified=True, verified_at=utcnow(), verification_error=None
                )
                await self.store.save_credential(proven, number)
                self._invalidate(tenant_id, [number.phone_number_id])
            else:
                await self.store.set_verified(tenant_id, itype, provider, True)
            result = Verification(itype, provider, True, utcnow())
        self.cache.invalidate_tenant(tenant_id)
        await self._audit(
            actor,
            tenant_id,
            itype,
            provider,
            "verify",
            outcome="ok" if result.is_verified else "failed",
            details={"error": result.error_code} if result.error_code else {},
        )
        return result

    # -- helpers -------------------------------------------------------------------------

    def _invalidate(self, tenant_id: UUID, numbers: list[str]) -> None:
        self.cache.invalidate_tenant(tenant_id)
        for number in dict.fromkeys(numbers):
            self.cache.invalidate_number(number)

    async def _audit(
        self,
        actor: Actor,
        tenant_id: UUID,
        itype: IntegrationType,
        provider: str | None,
        action: str,
        *,
        outcome: str = "ok",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        kind = kind_of(itype)
        if kind.default is DefaultRule.PINNED:
            provider = provider or kind.default_provider
        await self.audit.record(
            AuditEntry(
                tenant_id=tenant_id,
                actor=actor.subject,
                integration=itype.value,
                action=action,
                provider=provider,
                outcome=outcome,
                client_ip=actor.client_ip,
                user_agent=actor.user_agent,
                details=dict(details or {}),
            )
        )
