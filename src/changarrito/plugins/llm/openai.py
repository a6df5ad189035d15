"""OpenAI Chat Completions (and any OpenAI-compatible endpoint a tenant names in ``baseUrl``),
with voice notes transcribed by ``POST /audio/transcriptions`` (``gpt-4o-mini-transcribe``
unless the tenant's ``transcriptionModel`` names another, such as ``whisper-1``).

Pictures and PDFs: read by default by the multimodal families (gpt-4o, chatgpt-4o, gpt-4.1,
gpt-4.5, gpt-5, gpt-4-turbo, o1, o3, o4-mini; not o1-mini, o3-mini or gpt-3.5), see
``changarrito.plugins.llm.families.OPENAI``.
"""

from __future__ import annotations

from changarrito import hookimpl
from changarrito.plugins.hookspecs import RegisterLLM
from changarrito.plugins.llm.families import openai_reads
from changarrito.plugins.llm.openai_compat import OpenAICompatibleProvider


class OpenAIProvider(OpenAICompatibleProvider):
    id = "openai"
    name = "OpenAI"
    default_model = "gpt-4o-mini"
    default_base_url = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"
    platform_env = {"apiKey": "OPENAI_API_KEY"}
    max_tokens_field = "max_completion_tokens"
    supports_transcription = True
    default_transcription_model = "gpt-4o-mini-transcribe"

    def vision_default(self, model: str) -> bool:
        return openai_reads(model)

    def documents_default(self, model: str) -> bool:
        return openai_reads(model)  # Chat Completions takes PDFs where it takes pictures


@hookimpl
def register_llm_providers(register: RegisterLLM) -> None:
    register(OpenAIProvider)
