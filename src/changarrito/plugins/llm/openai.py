"""OpenAI Chat Completions (and any OpenAI-compatible endpoint a tenant names in ``baseUrl``)."""

from __future__ import annotations

from changarrito import hookimpl
from changarrito.plugins.hookspecs import RegisterLLM
from changarrito.plugins.llm.openai_compat import OpenAICompatibleProvider


class OpenAIProvider(OpenAICompatibleProvider):
    id = "openai"
    name = "OpenAI"
    default_model = "gpt-4o-mini"
    default_base_url = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"
    platform_env = {"apiKey": "OPENAI_API_KEY"}
    max_tokens_field = "max_completion_tokens"


@hookimpl
def register_llm_providers(register: RegisterLLM) -> None:
    register(OpenAIProvider)
