"""Azure OpenAI (classic data plane): a deployment URL with ``api-version`` and an ``api-key``.

The resource endpoint lives in the credentials next to the key (a tenant's key only ever goes
to the tenant's own resource); the deployment is configuration (``deployment``, else ``model``).

Voice notes go to ``/openai/deployments/<transcription deployment>/audio/transcriptions``: on
Azure ``transcriptionModel`` is the *deployment name* of the transcription model (default
``whisper``), and the form carries no ``model`` field (the URL names it).

Pictures follow OpenAI's families by ``model_for(config)`` (``model``: set it to the model the
deployment runs when the deployment's name says otherwise, or set ``vision``). PDFs only when
the tenant sets ``documents``: the pinned ``api-version`` predates Chat Completions' ``file``
parts and Azure does not document them, so a tenant turns them on with a newer ``apiVersion``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from urllib.parse import quote

import msgspec

from changarrito import hookimpl
from changarrito.domain.chat import LLMConfig
from changarrito.plugins.base import Credentials
from changarrito.plugins.hookspecs import RegisterLLM
from changarrito.plugins.llm import transcription
from changarrito.plugins.llm.families import openai_reads
from changarrito.plugins.llm.openai_compat import ApiKey, HttpUrl, OpenAICompatibleProvider

API_VERSION = "2024-10-21"
Deployment = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class AzureOpenAICredentials(Credentials, frozen=True):
    api_key: ApiKey
    #: ``https://<resource>.openai.azure.com``
    endpoint: HttpUrl


class AzureOpenAIConfig(LLMConfig, frozen=True):
    deployment: Deployment | None = None
    api_version: str | None = None
    #: The transcription model's deployment name (it goes into the URL, like ``deployment``).
    transcription_model: Deployment | None = None


class AzureOpenAIProvider(OpenAICompatibleProvider):
    id = "azure-openai"
    name = "Azure OpenAI"
    default_model = "gpt-4o-mini"
    default_base_url = ""
    credentials_schema: ClassVar[type[msgspec.Struct]] = AzureOpenAICredentials
    config_schema: ClassVar[type[msgspec.Struct]] = AzureOpenAIConfig
    platform_env = {"apiKey": "AZURE_OPENAI_API_KEY", "endpoint": "AZURE_OPENAI_ENDPOINT"}
    supports_transcription = True
    #: A deployment name on Azure: the one the Azure portal suggests for Whisper.
    default_transcription_model = "whisper"

    def endpoint(self, credentials: Any, config: Any, path: str) -> tuple[str, dict[str, str]]:
        base = str(credentials.endpoint).rstrip("/") + "/openai"
        params = {"api-version": getattr(config, "api_version", None) or API_VERSION}
        deployments = {
            "/chat/completions": self.deployment,
            transcription.PATH: self.transcription_model_for,
        }
        if path in deployments:
            deployment = quote(deployments[path](config), safe="")
            return f"{base}/deployments/{deployment}{path}", params
        return base + path, params

    def deployment(self, config: Any) -> str:
        return getattr(config, "deployment", None) or self.model_for(config)

    def transcription_fields(self, config: Any) -> tuple[str | None, str | None]:
        _, language = super().transcription_fields(config)
        return None, language  # the deployment in the URL names the model

    def vision_default(self, model: str) -> bool:
        return openai_reads(model)

    def auth_headers(self, credentials: Any) -> dict[str, str]:
        return {"api-key": credentials.api_key}

    def body(self, messages: Any, config: Any) -> dict[str, Any]:
        body = super().body(messages, config)
        del body["model"]  # the deployment in the URL names the model
        return body


@hookimpl
def register_llm_providers(register: RegisterLLM) -> None:
    register(AzureOpenAIProvider)
