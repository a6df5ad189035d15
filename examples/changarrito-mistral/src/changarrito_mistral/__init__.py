"""Mistral AI chat completions for Changarrito (https://docs.mistral.ai/api/).

Mistral speaks the OpenAI Chat Completions format at ``https://api.mistral.ai/v1`` with a
bearer key, so the provider is a subclass of the shared OpenAI-compatible client. Environment:
``MISTRAL_API_KEY`` (the platform's key), ``MISTRAL_BASE_URL`` (override, for tests).
"""

from __future__ import annotations

from changarrito.plugin import OpenAICompatibleProvider, hookimpl


class MistralProvider(OpenAICompatibleProvider):
    id = "mistral"
    name = "Mistral AI"
    default_model = "mistral-small-latest"
    default_base_url = "https://api.mistral.ai/v1"
    base_url_env = "MISTRAL_BASE_URL"
    platform_env = {"apiKey": "MISTRAL_API_KEY"}


@hookimpl
def register_llm_providers(register):  # type: ignore[no-untyped-def]
    register(MistralProvider)
