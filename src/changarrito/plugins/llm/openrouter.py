"""OpenRouter: OpenAI-style chat over many vendors' models, billed in credits (402 when out).

Pictures are read by default by the known vision families of its ``vendor/model`` ids
(``openai/gpt-4o...`` and ``anthropic/claude-3...`` as their vendor says, ``google/gemini...``,
``meta-llama/llama-4...``, ``qwen/...-vl...``: ``changarrito.plugins.llm.families``); PDFs
only when the tenant sets ``documents`` (OpenRouter then sends them on as ``file`` parts). It
has no transcription endpoint.
"""

from __future__ import annotations

from changarrito import hookimpl
from changarrito.plugins.hookspecs import RegisterLLM
from changarrito.plugins.llm.families import openrouter_reads_images
from changarrito.plugins.llm.openai_compat import OpenAICompatibleProvider


class OpenRouterProvider(OpenAICompatibleProvider):
    id = "openrouter"
    name = "OpenRouter"
    default_model = "openai/gpt-4o-mini"
    default_base_url = "https://openrouter.ai/api/v1"
    base_url_env = "OPENROUTER_BASE_URL"
    platform_env = {"apiKey": "OPENROUTER_API_KEY"}
    #: ``GET /key`` describes the key itself: authenticated and free.
    verify_path = "/key"

    def auth_headers(self, credentials: object) -> dict[str, str]:
        return {**super().auth_headers(credentials), "X-Title": "Changarrito"}

    def vision_default(self, model: str) -> bool:
        return openrouter_reads_images(model)


@hookimpl
def register_llm_providers(register: RegisterLLM) -> None:
    register(OpenRouterProvider)
