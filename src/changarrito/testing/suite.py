"""A reusable pytest suite for LLM provider plugins.

Subclass it in your plugin's tests (the class name must start with ``Test``), set
``provider_class``, ``plugin`` and ``credentials`` and, when your wire format is not OpenAI's,
override ``ok_response(text)``, ``error_response(status, message, headers=None)`` (pass
``headers`` through: it carries ``retry-after``), ``quota_response()`` (``None``: no quota
error, the test is skipped) and ``verify_response()``::

    class TestMistralConformance(LLMProviderConformance):
        provider_class = MistralProvider
        plugin = changarrito_mistral
        credentials = {"apiKey": "mistral-test-key-0123456789"}

A provider that declares ``supports_attachments`` or ``supports_transcription`` is also held to
``changarrito.testing.media_suite`` (override ``transcription_response(text)`` when its
transcription answer is not OpenAI's).

Tests are synchronous (each runs its coroutine with ``asyncio.run``): no pytest-asyncio needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, ClassVar, TypeVar

import httpx
import pytest
import structlog.testing

from changarrito.domain.chat import ChatMessage
from changarrito.domain.errors import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderQuotaExceeded,
    ProviderTimeout,
    RetryableProviderError,
    ValidationFailed,
)
from changarrito.domain.kinds import IntegrationType
from changarrito.plugins.base import LLMProvider, ProviderContext
from changarrito.testing.checks import check_declarations, registered
from changarrito.testing.media_suite import MediaChecks
from changarrito.testing.upstream import FakeUpstream, json_response, text_response

T = TypeVar("T")
SECRET_WORDS = ("key", "secret", "token", "password")
MESSAGES = [ChatMessage(role="user", content="¿Tienen tortillas?")]


class LLMProviderConformance(MediaChecks):
    """What every LLM provider must do; see the module docstring."""

    provider_class: ClassVar[type[LLMProvider]]
    #: The plugin module (or object) whose ``register_llm_providers`` registers the class.
    plugin: ClassVar[ModuleType | object | None] = None
    #: Valid credentials; the longest key/secret/token value is the secret tracked.
    credentials: ClassVar[dict[str, Any]]
    config: ClassVar[dict[str, Any]] = {"model": "test-model", "systemPrompt": "Eres amable."}
    env: ClassVar[dict[str, str]] = {}

    # Wire format: override for non-OpenAI providers ------------------------------------------

    def ok_response(self, text: str) -> httpx.Response:
        """A successful chat answer whose reply is ``text`` (usage above zero)."""
        return json_response(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "test-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            },
        )

    def error_response(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """An error answer carrying ``message``; an override must send ``headers`` (the
        rate-limit test passes ``retry-after`` in them)."""
        body = {"error": {"message": message, "type": "error", "code": None}}
        return json_response(status, body, headers)

    def quota_response(self) -> httpx.Response | None:
        """The provider's out-of-quota answer, or ``None`` if it has none."""
        body = {"error": {"message": "quota", "type": "insufficient_quota", "code": None}}
        return json_response(
            429, {**body, "error": {**body["error"], "code": "insufficient_quota"}}
        )

    def verify_response(self) -> httpx.Response:
        """The answer to ``verify``'s call when the credentials are good."""
        return json_response(200, {"data": []})

    # Helpers --------------------------------------------------------------------------------

    @property
    def secret(self) -> str:
        values = [
            v
            for k, v in self.credentials.items()
            if isinstance(v, str) and len(v) >= 12 and any(w in k.lower() for w in SECRET_WORDS)
        ]
        if not values:
            pytest.skip("no secret-looking credential value to track")
        return max(values, key=len)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(coro)

    def call(
        self,
        upstream: FakeUpstream,
        method: str,
        *args: Any,
        config: dict[str, Any] | None = None,
    ) -> Any:
        """``provider.<method>(*args, config, credentials)`` on ``upstream``, the config
        being ``config`` (default: the class's) and the credentials the class's."""

        async def call() -> Any:
            http = upstream.clients()
            provider = self.provider_class(ProviderContext(http=http, env=dict(self.env)))
            try:
                return await getattr(provider, method)(
                    *args,
                    provider.parse_config(self.config if config is None else config),
                    provider.parse_credentials(self.credentials),
                )
            finally:
                await http.aclose()

        return self.run(call())

    def chat(
        self,
        *answers: Any,
        messages: list[ChatMessage] | None = None,
        config: dict[str, Any] | None = None,
    ) -> tuple[Any, FakeUpstream]:
        upstream = FakeUpstream(*answers)
        reply = self.call(
            upstream, "chat", MESSAGES if messages is None else messages, config=config
        )
        return reply, upstream

    def chat_error(self, *answers: Any) -> ProviderError:
        with pytest.raises(ProviderError) as info:
            self.chat(*answers)
        return info.value

    # The suite ------------------------------------------------------------------------------

    def test_class_declares_id_name_schemas_and_default_model(self) -> None:
        cls = self.provider_class
        check_declarations(cls)
        assert cls.default_model, f"{cls.__name__}.default_model is empty"

    def test_plugin_registers_the_provider_class_through_its_hook(self) -> None:
        if self.plugin is None:
            pytest.skip("no plugin module given")
        context = FakeUpstream().context(self.env)
        provider = registered(self.plugin, context, IntegrationType.LLM, self.provider_class.id)
        assert isinstance(provider, self.provider_class)

    def test_credentials_repr_never_shows_a_value(self) -> None:
        parsed = self.provider_class.parse_credentials(self.credentials)
        assert self.secret not in repr(parsed) and self.secret not in str(parsed)

    def test_missing_required_credentials_are_named(self) -> None:
        with pytest.raises(ValidationFailed) as info:
            self.provider_class.parse_credentials({})
        assert "credentials" in str(info.value)

    def test_chat_returns_text_model_usage_and_latency(self) -> None:
        reply, upstream = self.chat(self.ok_response("Sí, de maíz."))
        assert reply.text == "Sí, de maíz."
        assert reply.model and reply.provider == self.provider_class.id
        assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
        assert reply.latency_ms >= 0
        assert "¿Tienen tortillas?" in upstream.last.content.decode()

    def test_chat_sends_the_credentials(self) -> None:
        _, upstream = self.chat(self.ok_response("ok"))
        sent = " ".join(f"{k}={v}" for k, v in upstream.last.headers.items())
        assert self.secret in sent or self.secret in str(upstream.last.url), (
            "chat must authenticate with the credentials"
        )

    def test_system_prompt_from_config_is_sent(self) -> None:
        _, upstream = self.chat(self.ok_response("ok"))
        assert "Eres amable." in upstream.last.content.decode()

    def test_rejected_key_is_a_final_auth_error(self) -> None:
        error = self.chat_error(self.error_response(401, "invalid key"))
        assert isinstance(error, ProviderAuthError) and not error.retryable

    def test_rate_limit_is_retryable_and_keeps_retry_after(self) -> None:
        error = self.chat_error(self.error_response(429, "slow down", {"retry-after": "7"}))
        assert isinstance(error, RetryableProviderError) and error.retry_after == 7.0

    def test_overload_is_retryable(self) -> None:
        error = self.chat_error(self.error_response(503, "overloaded"))
        assert error.retryable

    def test_quota_exhaustion_is_final(self) -> None:
        answer = self.quota_response()
        if answer is None:
            pytest.skip("the provider has no quota error")
        error = self.chat_error(answer)
        assert isinstance(error, ProviderQuotaExceeded) and not error.retryable

    def test_malformed_json_is_a_bad_response(self) -> None:
        error = self.chat_error(text_response(200, "<html>oops</html>"))
        assert isinstance(error, ProviderBadResponse)

    def test_timeout_is_a_provider_timeout(self) -> None:
        error = self.chat_error(httpx.ReadTimeout)
        assert isinstance(error, ProviderTimeout)

    def test_secret_never_appears_in_errors_or_logs(self) -> None:
        secret = self.secret
        echo = f"Incorrect API key provided: {secret} ({secret[:8]}****{secret[-4:]})"
        with structlog.testing.capture_logs() as logs:
            error = self.chat_error(self.error_response(401, echo))
        for text in (str(error), repr(error), error.message, repr(logs)):
            assert secret not in text and secret[-4:] not in text

    def test_verify_makes_an_authenticated_call(self) -> None:
        upstream = FakeUpstream(self.verify_response())

        async def call() -> None:
            provider = self.provider_class(upstream.context(self.env))
            await provider.verify(
                provider.parse_credentials(self.credentials), provider.parse_config(self.config)
            )

        self.run(call())
        assert upstream.requests, "verify must call the provider"
        sent = " ".join(f"{k}={v}" for k, v in upstream.last.headers.items())
        assert self.secret in sent or self.secret in str(upstream.last.url)
