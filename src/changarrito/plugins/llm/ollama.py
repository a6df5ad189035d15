"""Ollama's native ``/api/chat`` with ``"stream": false`` (one JSON object, not NDJSON).

The server URL is part of the credentials: a tenant names its own (``baseUrl``, with an
optional ``apiKey`` for a proxy or Ollama cloud); the platform's comes from ``OLLAMA_BASE_URL``
(default ``http://localhost:11434``) and has no key.

No tools (``supports_tools`` stays ``False``): ``/api/chat`` takes ``tools``, but a model
without tool support (many local models) answers it with a 400, and which model a tenant runs
is its own choice; the host therefore never offers Ollama the handoff tool.

Pictures go in the message's ``images`` (base64), read by default by the library's vision
models (llava, bakllava, llama3.2-vision, llama4, gemma3, qwen2.5vl, qwen2-vl, qwen3-vl,
minicpm-v, moondream, granite3.2-vision; ``changarrito.plugins.llm.families``). Ollama reads
no PDFs, whatever ``documents`` says, and transcribes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import msgspec

from changarrito import hookimpl
from changarrito.domain.chat import AttachmentKind, ChatMessage, Reply, Tool, Usage
from changarrito.plugins.base import Credentials, LLMProvider
from changarrito.plugins.hookspecs import RegisterLLM
from changarrito.plugins.llm.attachments import ollama_message
from changarrito.plugins.llm.families import OLLAMA_IMAGES, ollama_name, reads
from changarrito.plugins.llm.openai_compat import HttpUrl
from changarrito.plugins.upstream import decode_json

DEFAULT_BASE_URL = "http://localhost:11434"


class OllamaCredentials(Credentials, frozen=True):
    base_url: HttpUrl
    api_key: str | None = None


class _Message(msgspec.Struct):
    content: str = ""


class _ChatResponse(msgspec.Struct):
    message: _Message
    model: str | None = None
    done_reason: str | None = None
    prompt_eval_count: int = 0
    eval_count: int = 0


class OllamaProvider(LLMProvider):
    id = "ollama"
    name = "Ollama"
    default_model = "llama3.2"
    supports_tools = False  # see the module's docstring
    supports_attachments = True
    credentials_schema: ClassVar[type[msgspec.Struct]] = OllamaCredentials
    platform_env = {"baseUrl": "OLLAMA_BASE_URL"}

    @classmethod
    def platform_credentials(cls, env: Mapping[str, str]) -> dict[str, str] | None:
        """A local Ollama needs no key: the platform always has one, at its default URL."""
        return {"baseUrl": env.get("OLLAMA_BASE_URL") or DEFAULT_BASE_URL}

    def headers(self, credentials: Any) -> dict[str, str]:
        key = credentials.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def url(self, credentials: Any, path: str) -> str:
        return str(credentials.base_url).rstrip("/") + path

    def body(self, messages: Sequence[ChatMessage], config: Any) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if getattr(config, "temperature", None) is not None:
            options["temperature"] = config.temperature
        if getattr(config, "max_tokens", None) is not None:
            options["num_predict"] = config.max_tokens
        body: dict[str, Any] = {
            "model": self.model_for(config),
            "messages": [ollama_message(m) for m in self.with_system_prompt(messages, config)],
            "stream": False,
        }
        if options:
            body["options"] = options
        return body

    def reads(self, config: Any) -> frozenset[AttachmentKind]:
        return super().reads(config) - {"pdf"}  # /api/chat takes pictures only

    def vision_default(self, model: str) -> bool:
        return reads(OLLAMA_IMAGES, ollama_name(model))

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        config: Any,
        credentials: Any,
        *,
        tools: Sequence[Tool] = (),  # never passed: ``supports_tools`` is False
    ) -> Reply:
        started = time.perf_counter()
        response = await self.call_json(
            "POST",
            self.url(credentials, "/api/chat"),
            credentials=credentials,
            headers=self.headers(credentials),
            json=self.body(messages, config),
        )
        data: _ChatResponse = decode_json(response, _ChatResponse, self.id)
        return Reply(
            text=data.message.content,
            truncated=data.done_reason == "length",
            model=data.model or self.model_for(config),
            usage=Usage(input_tokens=data.prompt_eval_count, output_tokens=data.eval_count),
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            provider=self.id,
        )

    async def verify(self, credentials: Any, config: Any) -> None:
        """``GET /api/tags``: cheap, and authenticated when a key is set."""
        await self.call_json(
            "GET",
            self.url(credentials, "/api/tags"),
            credentials=credentials,
            headers=self.headers(credentials),
        )


@hookimpl
def register_llm_providers(register: RegisterLLM) -> None:
    register(OllamaProvider)
