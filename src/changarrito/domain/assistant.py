"""The LLM side of the message pipeline: who answers a message, and the fallback text.

A tenant's number is answered with the tenant's own LLM settings (with the platform fallback
policy of ``Responder``); the platform's own number with the platform's. Every call on the
platform's key is held to the operator's ``PlatformLimits``. When the LLM cannot
answer, the tenant's ``fallbackText`` (or the platform's) is sent instead of silence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from changarrito.domain import resolution
from changarrito.domain.chat import ChatMessage, Reply, Tool
from changarrito.domain.conversations import ConversationSettings
from changarrito.domain.errors import ChangarritoError
from changarrito.domain.llm import PlatformLimits, Responder
from changarrito.domain.model import IntegrationType, PlatformDefaults, Resolved
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
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.credentials = credentials
        self.conversations = conversations or ConversationSettings()
        self.tenants = Responder(
            credentials,
            providers,
            platform_fallback=platform_fallback,
            platform_limits=platform_limits,
            metrics=metrics,
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
