"""One implementation of the OpenAI Chat Completions wire format, shared by every vendor that
speaks it (OpenAI, OpenRouter, Azure OpenAI, Mistral...). A vendor subclass sets its id,
``default_base_url``, ``base_url_env`` and ``platform_env`` and, where needed, overrides
``endpoint``/``auth_headers``.

Tools: offered as ``tools: [{"type": "function", "function": {name, description,
parameters}}]`` with ``tool_choice: "auto"`` (only when there are some); the model's
``message.tool_calls[]`` come back as ``ToolCall``s, their ``function.arguments`` (a JSON
*string*) decoded, and anything that is not a JSON object read as ``{}``. A non-empty
``message.refusal`` or ``finish_reason: content_filter`` is a refusal.

Attachments: a customer's turn with pictures or PDFs is sent as a list of content parts, each
picture an ``image_url`` part (a ``data:`` URL, ``detail: auto``), each PDF a ``file`` part
(``filename`` and ``file_data``, a data URL), then the caption as a ``text`` part when there
is one; every other turn stays a plain string. Which models read them is the vendor's
``vision_default``/``documents_default`` (none here: a subclass or the tenant says).

Transcription (``transcribe``, only for a vendor that sets ``supports_transcription``): the
``/audio/transcriptions`` form of ``changarrito.plugins.llm.transcription``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar

import msgspec

from changarrito.domain.chat import (
    Audio,
    ChatMessage,
    Reply,
    Tool,
    ToolCall,
    Transcript,
    Usage,
)
from changarrito.domain.errors import ProviderBadResponse
from changarrito.plugins.base import Credentials, LLMProvider
from changarrito.plugins.llm import transcription
from changarrito.plugins.llm.attachments import openai_content
from changarrito.plugins.upstream import decode_json

#: ``http://`` or ``https://`` URL, no credentials or whitespace in it.
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s@/]+(/[^\s]*)?$")]
ApiKey = Annotated[str, msgspec.Meta(min_length=1)]

#: OpenAI ``error.code``/``type`` values that mean the account is out of money, not busy.
QUOTA_CODES = frozenset(
    {"insufficient_quota", "credit_balance_exhausted", "billing_hard_limit_reached"}
)
_SPEND_LIMIT = re.compile(r"spend_limit")


class OpenAICredentials(Credentials, frozen=True):
    """An API key and, for any OpenAI-compatible endpoint, the tenant's own base URL."""

    api_key: ApiKey
    base_url: HttpUrl | None = None


class _Part(msgspec.Struct):
    """One content part (some OpenAI-compatible servers answer with a list of parts)."""

    type: str = "text"
    text: str | None = None


class _Function(msgspec.Struct):
    name: str = ""
    #: A JSON string per the API; some compatible servers send the object itself.
    arguments: str | dict[str, Any] | None = None


class _ToolCall(msgspec.Struct):
    id: str | None = None
    type: str = "function"
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: str | list[_Part] | None = None
    tool_calls: list[_ToolCall] | None = None
    refusal: str | None = None

    @property
    def text(self) -> str:
        """The answer's text: the content itself, or its text parts joined in order."""
        content = self.content
        if content is None or isinstance(content, str):
            return content or ""
        return "".join(p.text or "" for p in content if p.type in ("text", "output_text"))

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The function calls asked for, in order (a call without a name is skipped)."""
        return tuple(
            ToolCall(name=c.function.name, arguments=arguments(c.function.arguments), id=c.id)
            for c in self.tool_calls or ()
            if c.function is not None and c.function.name
        )


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatCompletion(msgspec.Struct):
    """The part of an OpenAI chat completion we read."""

    choices: list[_Choice]
    model: str | None = None
    usage: _Usage | None = None
    error: Any = None


def arguments(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    """A call's ``function.arguments`` as an object: the model may write invalid JSON, or
    JSON that is not an object; both are read as ``{}`` (the caller checks what it needs)."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def tool_definitions(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """``tools`` as Chat Completions ``function`` tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
            },
        }
        for t in tools
    ]


def is_quota_code(code: str | None) -> bool:
    return bool(code) and (code in QUOTA_CODES or bool(_SPEND_LIMIT.search(code or "")))


class OpenAICompatibleProvider(LLMProvider):
    """A vendor that speaks OpenAI's Chat Completions format: set ``id``, ``name``,
    ``default_model``, ``default_base_url``, ``base_url_env`` and ``platform_env``, and
    override ``endpoint``, ``auth_headers``, ``body`` or ``verify_path`` only where the vendor
    differs. ``chat`` and ``verify`` are implemented, ``chat`` with tools and attachments;
    ``transcribe`` too, for a vendor that sets ``supports_transcription`` (and
    ``default_transcription_model``). The credentials are ``apiKey`` and an optional
    ``baseUrl`` (the tenant's own endpoint); ``error_details`` also recognises OpenAI's
    out-of-quota codes."""

    credentials_schema: ClassVar[type[msgspec.Struct]] = OpenAICredentials
    supports_tools: ClassVar[bool] = True
    supports_attachments: ClassVar[bool] = True
    #: Body field carrying the output cap (OpenAI prefers ``max_completion_tokens``).
    max_tokens_field: ClassVar[str] = "max_tokens"
    #: Path, under the base URL, of a cheap authenticated GET used by ``verify``.
    verify_path: ClassVar[str] = "/models"

    # Wire details a vendor may override ------------------------------------------------------

    def base_url(self, credentials: Any) -> str:
        """The tenant's own ``baseUrl`` when its credentials carry one, else the platform's
        configured endpoint. The key always travels with the URL of its own credentials."""
        own = getattr(credentials, "base_url", None)
        return str(own).rstrip("/") if own else self.platform_base_url()

    def endpoint(self, credentials: Any, config: Any, path: str) -> tuple[str, dict[str, str]]:
        """(URL, query parameters) of ``path`` (``/chat/completions``, ``/models``)."""
        return self.base_url(credentials) + path, {}

    def auth_headers(self, credentials: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.api_key}"}

    def body(self, messages: Sequence[ChatMessage], config: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_for(config),
            "messages": [
                {"role": m.role, "content": openai_content(m)}
                for m in self.with_system_prompt(messages, config)
            ],
        }
        if getattr(config, "max_tokens", None) is not None:
            body[self.max_tokens_field] = config.max_tokens
        if getattr(config, "temperature", None) is not None:
            body["temperature"] = config.temperature
        return body

    def error_details(self, payload: Any) -> tuple[str | None, str | None, bool]:
        message, code, _ = super().error_details(payload)
        error = payload.get("error") if isinstance(payload, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        quota = is_quota_code(code) or is_quota_code(kind if isinstance(kind, str) else None)
        return message, code, quota

    # The calls ---------------------------------------------------------------------------------

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        config: Any,
        credentials: Any,
        *,
        tools: Sequence[Tool] = (),
    ) -> Reply:
        url, params = self.endpoint(credentials, config, "/chat/completions")
        body = self.body(messages, config)
        if tools:
            body["tools"] = tool_definitions(tools)
            body["tool_choice"] = "auto"
        started = time.perf_counter()
        response = await self.call_json(
            "POST",
            url,
            credentials=credentials,
            headers=self.auth_headers(credentials),
            json=body,
            params=params,
        )
        completion: ChatCompletion = decode_json(response, ChatCompletion, self.id)
        if completion.error is not None or not completion.choices:
            # OpenRouter reports failures after generation started with HTTP 200.
            message, code, _ = self.error_details({"error": completion.error})
            if self.tenant_endpoint(credentials):  # a tenant's endpoint's words stay out
                message, code = None, None
            raise ProviderBadResponse(
                f"{self.id} returned no answer: {message or 'no details'}",
                provider=self.id,
                status=response.status_code,
                provider_code=code,
            )
        usage = completion.usage or _Usage()
        choice = completion.choices[0]
        return Reply(
            text=choice.message.text,
            truncated=choice.finish_reason == "length",
            # content is often null next to tool calls: an answer, not an empty one
            tool_calls=choice.message.calls,
            refused=bool((choice.message.refusal or "").strip())
            or choice.finish_reason == "content_filter",
            model=completion.model or self.model_for(config),
            usage=Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            provider=self.id,
        )

    def transcription_fields(self, config: Any) -> tuple[str | None, str | None]:
        """(``model`` field, ``language`` field) of a transcription; ``None``: not sent."""
        return self.transcription_model_for(config), getattr(config, "transcription_language", None)

    async def transcribe(self, audio: Audio, config: Any, credentials: Any) -> Transcript:
        if not self.supports_transcription:
            return await super().transcribe(audio, config, credentials)
        url, params = self.endpoint(credentials, config, transcription.PATH)
        model, language = self.transcription_fields(config)
        files, fields = transcription.form(audio, model=model, language=language)
        response = await self.call_json(
            "POST",
            url,
            credentials=credentials,
            headers=self.auth_headers(credentials),
            files=files,
            data=fields,
            params=params,
        )
        return transcription.transcript(
            response, model=self.transcription_model_for(config), provider=self.id
        )

    async def verify(self, credentials: Any, config: Any) -> None:
        url, params = self.endpoint(credentials, config, self.verify_path)
        await self.call_json(
            "GET",
            url,
            credentials=credentials,
            headers=self.auth_headers(credentials),
            params=params,
        )
