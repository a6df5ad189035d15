"""The LLM side of the message pipeline: who answers a message, and the fallback text.

A tenant's number is answered with the tenant's own LLM settings (with the platform fallback
policy of ``Responder``); the platform's own number with the platform's. Every call on the
platform's key is held to the operator's ``PlatformLimits``. When the LLM cannot
answer, the tenant's ``fallbackText`` (or the platform's) is sent instead of silence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from changarrito.domain import resolution
from changarrito.domain.budgets import Budgets
from changarrito.domain.chat import Audio, ChatMessage, Reply, Tool, Transcript
from changarrito.domain.conversations import ConversationSettings
from changarrito.domain.errors import ChangarritoError, ProviderAuthError, ProviderQuotaExceeded
from changarrito.domain.llm import PlatformLimits, Responder
from changarrito.domain.media import Capabilities
from changarrito.domain.model import IntegrationType, PlatformDefaults, Resolved, Source
from changarrito.domain.ports import CredentialSource, MetricsRecorder, ProviderLookup

DEFAULT_FALLBACK_TEXT = (
    "¡Gracias por tu mensaje! En este momento no puedo responder; te contestaremos pronto. "
    "/ Thanks for your message! I can't answer right now; we'll get back to you soon."
)

#: Stands for "the platform" where the LLM use case wants a tenant id (the platform's number).
PLATFORM = UUID(int=0)


class PlatformCredentials:
    """A ``CredentialSource`` that only knows the platform's defaults (for its own number)."""

    def __init__(self, platform: PlatformDefaults) -> None:
        self.platform = platform

    async def resolve(
        self, tenant_id: UUID, itype: IntegrationType, provider: str | None = None
    ) -> Resolved:
        return resolution.resolve(tenant_id, itype, [], self.platform, provider)


@dataclass(frozen=True, slots=True)
class TranscriptionPolicy:
    """Who transcribes for tenants without a transcriber of their own
    (``resolution.resolve_transcriber``)."""

    #: ``CHANGARRITO_TRANSCRIPTION_PROVIDER``: the platform's transcribing provider (unset:
    #: ``LLM_PROVIDER``); ``CHANGARRITO_TRANSCRIPTION_MODEL``: its model.
    provider: str | None = None
    model: str | None = None
    #: ``CHANGARRITO_TRANSCRIPTION_PLATFORM_FALLBACK``: the platform also transcribes for
    #: tenants whose own LLM provider cannot (or whose key fails for good).
    platform_fallback: bool = False


class Assistant:
    """The LLM side of the pipeline: a tenant's own settings (with the platform fallback
    policy of ``Responder``), the platform's for its own number, and the fallback text."""

    def __init__(
        self,
        credentials: CredentialSource,
        providers: ProviderLookup,
        *,
        platform_fallback: bool = False,
        platform_limits: PlatformLimits | None = None,
        fallback_text: str = DEFAULT_FALLBACK_TEXT,
        conversations: ConversationSettings | None = None,
        transcription: TranscriptionPolicy | None = None,
        metrics: MetricsRecorder | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.credentials = credentials
        self.providers = providers
        self.metrics = metrics
        self.budgets = budgets
        self.conversations = conversations or ConversationSettings()
        self.transcription = transcription or TranscriptionPolicy()
        self.tenants = Responder(
            credentials,
            providers,
            platform_fallback=platform_fallback,
            platform_limits=platform_limits,
            metrics=metrics,
            budgets=budgets,
        )
        self.platform = Responder(
            PlatformCredentials(credentials.platform),
            providers,
            platform_limits=platform_limits,
            metrics=metrics,
        )
        self.default_fallback = fallback_text.strip() or DEFAULT_FALLBACK_TEXT

    async def reply(
        self,
        tenant_id: UUID | None,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply:
        """The LLM's answer to ``messages``, offering it ``tools`` when its provider takes
        them (see ``Responder``)."""
        if tenant_id is None:
            return await self.platform.reply(PLATFORM, messages, tools=tools)
        return await self.tenants.reply(tenant_id, messages, tools=tools)

    async def fallback_text(self, tenant_id: UUID | None) -> str:
        """The tenant's LLM ``fallbackText`` when it set one, else the platform's."""
        if tenant_id is not None:
            try:
                resolved = await self.credentials.resolve(tenant_id, IntegrationType.LLM)
            except ChangarritoError:
                resolved = None
            own = resolved.config.get("fallbackText") if resolved is not None else None
            if isinstance(own, str) and own.strip():
                return own.strip()
        return self.default_fallback

    async def conversation_settings(self, tenant_id: UUID | None) -> ConversationSettings:
        """How the tenant's conversations are answered: its LLM config's ``quietPeriodSeconds``,
        ``handoffIdleHours``, ``handoffMessage`` and ``textOnlyReply`` where it set them,
        else the platform's (``CHANGARRITO_QUIET_PERIOD``...)."""
        config: Mapping[str, Any] = {}
        if tenant_id is not None:
            try:
                config = (await self.credentials.resolve(tenant_id, IntegrationType.LLM)).config
            except ChangarritoError:
                config = {}
        return self.conversations.overridden_by(config)

    async def quiet_period(self, tenant_id: UUID | None) -> float:
        """The tenant's quiet period, in seconds (the intake stores its messages due then)."""
        return (await self.conversation_settings(tenant_id)).quiet_period

    async def capabilities(self, tenant_id: UUID | None) -> Capabilities:
        """What the tenant's model reads besides text, and whether its voice notes can be
        transcribed (nothing when it has no LLM at all)."""
        try:
            llm = await self._llm(tenant_id)
            provider = self.providers.llm(llm.provider)
            reads = provider.reads(provider.parse_config(llm.config))
        except ChangarritoError:
            return Capabilities()
        try:
            self._transcriber(llm)
        except ChangarritoError:
            return Capabilities(frozenset(reads), transcribes=False)
        return Capabilities(frozenset(reads), transcribes=True)

    async def transcribe(self, tenant_id: UUID | None, audio: Audio) -> Transcript:
        """``audio``'s text, by the credential ``resolution.resolve_transcriber`` picks; a
        tenant's own key that fails for good (rejected, out of quota) is replaced by the
        platform's when the operator allows it, as replies are."""
        llm = await self._llm(tenant_id)
        chosen = self._transcriber(llm)
        try:
            return await self._transcribe(chosen, audio)
        except (ProviderAuthError, ProviderQuotaExceeded) as exc:
            policy = self.transcription
            if chosen.source is not Source.TENANT or not policy.platform_fallback:
                raise
            try:
                platform = resolution.platform_transcriber(
                    llm,
                    self.credentials.platform,
                    self._can_transcribe,
                    policy.provider,
                    policy.model,
                )
            except ChangarritoError:
                raise exc from None
        return await self._transcribe(platform, audio)

    async def _llm(self, tenant_id: UUID | None) -> Resolved:
        if tenant_id is None:
            return resolution.resolve(PLATFORM, IntegrationType.LLM, [], self.credentials.platform)
        return await self.credentials.resolve(tenant_id, IntegrationType.LLM)

    def _transcriber(self, llm: Resolved) -> Resolved:
        policy = self.transcription
        return resolution.resolve_transcriber(
            llm,
            self.credentials.platform,
            self._can_transcribe,
            platform_provider=policy.provider,
            platform_model=policy.model,
            platform_allowed=policy.platform_fallback,
        )

    def _can_transcribe(self, provider_id: str) -> bool:
        try:
            return bool(self.providers.llm(provider_id).supports_transcription)
        except ChangarritoError:
            return False

    async def _transcribe(self, resolved: Resolved, audio: Audio) -> Transcript:
        tenant = resolved.tenant_id
        if (
            resolved.source is Source.PLATFORM
            and self.budgets is not None
            and tenant
            not in (
                None,
                PLATFORM,
            )
        ):
            await self.budgets.check(tenant, "transcriptionSeconds")
        provider = self.providers.llm(resolved.provider)
        credentials = provider.parse_credentials(resolved.secrets.reveal())
        try:
            config = provider.parse_config(resolved.config)
            transcript = await provider.transcribe(audio, config, credentials)
        except Exception as exc:
            self._transcription(resolved, None, exc)
            raise
        self._transcription(resolved, transcript.seconds, None)
        return msgspec.structs.replace(transcript, source=resolved.source.value)

    def _transcription(
        self, resolved: Resolved, seconds: float | None, error: Exception | None
    ) -> None:
        if self.metrics is not None:
            self.metrics.transcription(
                resolved.provider, resolved.source.value, resolved.tenant_id, seconds, error
            )
