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

The ``tools`` offered (``chat.HANDOFF_TOOL``...) go to the provider only when it says it
``supports_tools`` (a plugin written before tools keeps its three-argument ``chat``), on the
fallback call too; the model's calls come back in ``Reply.tool_calls``.

Every call made with the platform's key (the platform's own number, a tenant with no LLM of
its own, the fallback above) is held to the operator's ``PlatformLimits``, applied in
``Responder._call`` where the request is built, whatever the tenant's own options say:
``maxTokens`` is at most ``max_tokens`` (and that when unset), and the system prompt and
conversation together at most ``max_prompt_chars`` characters (``PlatformLimits.fit``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from changarrito.domain import resolution
from changarrito.domain.budgets import Budgets
from changarrito.domain.chat import AttachmentKind, ChatMessage, Reply, Tool
from changarrito.domain.errors import NotConfigured, ProviderAuthError, ProviderQuotaExceeded
from changarrito.domain.media import MARKERS
from changarrito.domain.model import IntegrationType, Resolved, Source
from changarrito.domain.ports import CredentialSource, MetricsRecorder, ProviderLookup

#: Tenant settings that survive a fallback to the platform: how to answer, not whom to call.
PORTABLE_CONFIG = (
    "systemPrompt",
    "maxTokens",
    "temperature",
    "fallbackText",
    "handoffMessage",
    "textOnlyReply",
    "quietPeriodSeconds",
    "handoffIdleHours",
)


@dataclass(frozen=True, slots=True)
class PlatformLimits:
    """The operator's caps on a call with the platform's key (``CHANGARRITO_PLATFORM_LLM_*``)."""

    max_tokens: int = 1024
    max_prompt_chars: int = 24000

    def fit(
        self, config: Mapping[str, Any], messages: Sequence[ChatMessage]
    ) -> tuple[dict[str, Any], list[ChatMessage]]:
        """``config`` and ``messages`` within the caps: ``maxTokens`` lowered to
        ``max_tokens`` (set to it when absent); the system prompt cut to half of
        ``max_prompt_chars`` at most; then the newest messages that fit in the rest, the
        oldest left out first (the newest is always sent, cut to fit if it must be)."""
        capped = dict(config)
        asked = capped.get("maxTokens")
        wanted = asked if isinstance(asked, int) and not isinstance(asked, bool) else None
        capped["maxTokens"] = min(wanted, self.max_tokens) if wanted else self.max_tokens
        prompt = capped.get("systemPrompt")
        if isinstance(prompt, str):
            capped["systemPrompt"] = prompt = prompt[: self.max_prompt_chars // 2]
        budget = self.max_prompt_chars - (len(prompt) if isinstance(prompt, str) else 0)
        kept: list[ChatMessage] = []
        for message in reversed(messages):
            if len(message.content) > budget:
                if not kept:
                    kept.append(msgspec.structs.replace(message, content=message.content[:budget]))
                break
            kept.append(message)
            budget -= len(message.content)
        return capped, kept[::-1]


def readable_by(
    messages: Sequence[ChatMessage], reads: frozenset[AttachmentKind]
) -> tuple[list[ChatMessage], tuple[AttachmentKind, ...]]:
    """``messages`` as a model that ``reads`` these kinds takes them: an attachment of another
    kind is left out and the model told what came instead (a fallback model may read less
    than the tenant's); and the kinds sent, in order."""
    kept: list[ChatMessage] = []
    sent: list[AttachmentKind] = []
    for message in messages:
        if not message.attachments:
            kept.append(message)
            continue
        ok = tuple(a for a in message.attachments if a.kind in reads)
        left = [UNSEEN[a.kind] for a in message.attachments if a.kind not in reads]
        content = "\n".join(t for t in (message.content, *left) if t)
        kept.append(msgspec.structs.replace(message, content=content, attachments=ok))
        sent.extend(a.kind for a in ok)
    return kept, tuple(sent)


#: What a model is told of an attachment it cannot read (the markers of ``media.py``).
UNSEEN: dict[str, str] = {"image": MARKERS["image"], "pdf": MARKERS["document"]}


class Responder:
    """Answers a tenant's conversation with the LLM its credentials resolve to."""

    def __init__(
        self,
        credentials: CredentialSource,
        providers: ProviderLookup,
        *,
        platform_fallback: bool = False,
        platform_limits: PlatformLimits | None = None,
        metrics: MetricsRecorder | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        self.credentials = credentials
        self.providers = providers
        self.platform_fallback = platform_fallback
        self.platform_limits = platform_limits or PlatformLimits()
        self.metrics = metrics
        self.budgets = budgets

    async def reply(
        self, tenant_id: UUID, messages: Sequence[ChatMessage], *, tools: Sequence[Tool] = ()
    ) -> Reply:
        resolved = await self.credentials.resolve(tenant_id, IntegrationType.LLM)
        try:
            return await self._call(resolved, resolved.config, messages, tools)
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
        return await self._call(platform, {**platform.config, **portable}, messages, tools)

    async def _call(
        self,
        resolved: Resolved,
        config: Mapping[str, Any],
        messages: Sequence[ChatMessage],
        tools: Sequence[Tool] = (),
    ) -> Reply:
        if resolved.source is Source.PLATFORM:  # the operator's caps, not the tenant's options
            if self.budgets is not None and resolved.tenant_id is not None:
                await self.budgets.check(resolved.tenant_id, "llmTokens")
            config, messages = self.platform_limits.fit(config, messages)
        provider = self.providers.llm(resolved.provider)
        # Key and endpoint travel together in one credential object from one source: a
        # tenant's endpoint is never paired with the platform's key.
        credentials = provider.parse_credentials(resolved.secrets.reveal())
        started = time.perf_counter()
        try:
            parsed = provider.parse_config(config)
            reads = provider.reads(parsed) if hasattr(provider, "reads") else frozenset()
            messages, read = readable_by(messages, reads)
            if getattr(provider, "supports_tools", False):
                reply = await provider.chat(messages, parsed, credentials, tools=tuple(tools))
            else:  # a provider without tools keeps its three-argument ``chat``
                reply = await provider.chat(messages, parsed, credentials)
        except Exception as exc:
            self._record(resolved, started, exc)
            raise
        self._record(resolved, started, None, (reply.usage.input_tokens, reply.usage.output_tokens))
        if reply.latency_ms <= 0:
            reply = msgspec.structs.replace(
                reply, latency_ms=(time.perf_counter() - started) * 1000
            )
        return msgspec.structs.replace(reply, source=resolved.source.value, read=read)

    def _record(
        self,
        resolved: Resolved,
        started: float,
        error: Exception | None,
        tokens: tuple[int, int] = (0, 0),
    ) -> None:
        if self.metrics is not None:
            seconds = time.perf_counter() - started
            source = resolved.source.value
            self.metrics.llm_call(
                resolved.provider, source, resolved.tenant_id, seconds, error, tokens=tokens
            )
