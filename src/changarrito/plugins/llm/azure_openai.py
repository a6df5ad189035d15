"""Azure OpenAI (classic data plane): a deployment URL with ``api-version`` and an ``api-key``.

The resource endpoint lives in the credentials next to the key (a tenant's key only ever goes
to the tenant's own resource); the deployment is configuration (``deployment``, else ``model``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from urllib.parse import quote

import msgspec

from changarrito import hookimpl
from changarrito.domain.chat import LLMConfig
from changarrito.plugins.base import Credentials
from changarrito.plugins.hookspecs import RegisterLLM
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


class AzureOpenAIProvider(OpenAICompatibleProvider):
    id = "azure-openai"
    name = "Azure OpenAI"
    default_model = "gpt-4o-mini"
    default_base_url = ""
    credentials_schema: ClassVar[type[msgspec.Struct]] = AzureOpenAICredentials
    config_schema: ClassVar[type[msgspec.Struct]] = AzureOpenAIConfig
    platform_env = {"apiKey": "AZURE_OPENAI_API_KEY", "endpoint": "AZURE_OPENAI_ENDPOINT"}

    def endpoint(self, credentials: Any, config: Any, path: str) -> tuple[str, dict[str, str]]:
        base = str(credentials.endpoint).rstrip("/") + "/openai"
        params = {"api-version": getattr(config, "api_version", None) or API_VERSION}
        if path == "/chat/completions":
            deployment = quote(self.deployment(config), safe="")
            return f"{base}/deployments/{deployment}{path}", params
        return base + path, params

    def deployment(self, config: Any) -> str:
        return getattr(config, "deployment", None) or self.model_for(config)

    def auth_headers(self, credentials: Any) -> dict[str, str]:
        return {"api-key": credentials.api_key}

    def body(self, messages: Any, config: Any) -> dict[str, Any]:
        body = super().body(messages, config)
        del body["model"]  # the deployment in the URL names the model
        return body


@hookimpl
def register_llm_providers(register: RegisterLLM) -> None:
    register(AzureOpenAIProvider)
