"""LLM replies with per-tenant credentials and an optional platform fallback.

Pure: the use case ``Responder``. The shapes of a chat (``ChatMessage``, ``Reply``...) are in
``chat.py``; the ports it calls (``CredentialSource``, ``ProviderLookup``, ``ChatBackend``, no
plugin machinery here) in ``ports.py``.

Order, for one tenant (see ``Responder.reply``):

1. resolve the tenant's LLM credential (``CredentialResolver``): the tenant's own provider,
   key, model and system prompt when stored, else the platform default, whose config carries
   ``{"model": LLM_MODEL}``;
2. call that provider; the ``Reply`` records ``source`` (tenant or platform);
3. when the *tenant's* key fails for a final account reason (rejected key, out of quota) and
   ``platform_fallback`` is on (``CHANGARRITO_LLM_PLATFORM_FALLBACK``, off by default), answer
   once more with the platform default, keeping the tenant's prompt settings but never its
   provider, model, endpoint or key. Anything else propagates unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import msgspec

from changarrito.domain import resolution
from changarrito.domain.chat import ChatMessage, Reply
from changarrito.domain.errors import NotConfigured, ProviderAuthError, ProviderQuotaExceeded
from changarrito.domain.model import IntegrationType, Resolved, Source
from changarrito.domain.ports import CredentialSource, MetricsRecorder, ProviderLookup

#: Tenant settings that survive a fallback to the platform: how to answer, not whom to call.
PORTABLE_CONFIG = ("systemPrompt", "maxTokens", "temperature", "fallbackText")


class Responder:
    """Answers a tenant's conversation with the LLM its credentials resolve to."""

    def __init__(
        self,
        credentials: CredentialSource,
        providers: ProviderLookup,
        *,
        platform_fallback: bool = False,
        metrics: MetricsRecorder | None = None,
    ) -> None:
        self.credentials = credentials
        self.providers = providers
        self.platform_fallback = platform_fallback
        self.metrics = metrics

    async def reply(self, tenant_id: UUID, messages: Sequence[ChatMessage]) -> Reply:
        resolved = await self.credentials.resolve(tenant_id, IntegrationType.LLM)
        try:
            return await self._call(resolved, resolved.config, messages)
        except (ProviderAuthError, ProviderQuotaExceeded) as exc:
            if resolved.source is not Source.TENANT or not self.platform_fallback:
                raise
            try:
                platform = resolution.resolve(
                    tenant_id, IntegrationType.LLM, [], self.credentials.platform
                )
            except NotConfigured:
                raise exc from None  # the tenant's failure is the useful one to report
        portable = {k: resolved.config[k] for k in PORTABLE_CONFIG if k in resolved.config}
        return await self._call(platform, {**platform.config, **portable}, messages)

    async def _call(
        self, resolved: Resolved, config: Mapping[str, Any], messages: Sequence[ChatMessage]
    ) -> Reply:
        provider = self.providers.llm(resolved.provider)
        # Key and endpoint travel together in one credential object from one source: a
        # tenant's endpoint is never paired with the platform's key.
        credentials = provider.parse_credentials(resolved.secrets.reveal())
        started = time.perf_counter()
        try:
            reply = await provider.chat(messages, provider.parse_config(config), credentials)
        except Exception as exc:
            self._record(resolved, started, exc)
            raise
        self._record(resolved, started, None)
        if reply.latency_ms <= 0:
            reply = msgspec.structs.replace(
                reply, latency_ms=(time.perf_counter() - started) * 1000
            )
        return msgspec.structs.replace(reply, source=resolved.source.value)

    def _record(self, resolved: Resolved, started: float, error: Exception | None) -> None:
        if self.metrics is not None:
            seconds = time.perf_counter() - started
            source = resolved.source.value
            self.metrics.llm_call(resolved.provider, source, resolved.tenant_id, seconds, error)
