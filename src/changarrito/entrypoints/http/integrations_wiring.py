"""Wires the integrations use cases to this process's adapters (from ``state.container``).

``RegistryCatalog`` is the ``ProviderCatalog`` port over the plugin registry (LLM and payment
providers: their schemas through ``parse_credentials``/``parse_config``, their ``verify``) and
over the WhatsApp Graph check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from litestar.datastructures import State

from changarrito.adapters.http import HttpClients
from changarrito.adapters.postgres.audit import PostgresAuditLog
from changarrito.domain.errors import ValidationFailed
from changarrito.domain.integrations import Integrations
from changarrito.domain.model import WHATSAPP_PROVIDER, IntegrationType, Secrets
from changarrito.plugins.registry import ProviderRegistry

#: Graph ids (phone number, business account) are decimal strings.
GraphId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,32}$")]
Text = Annotated[str, msgspec.Meta(max_length=200)]


class WhatsAppSecrets(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    access_token: Annotated[str, msgspec.Meta(min_length=1)]
    app_secret: str | None = None
    verify_token: str | None = None


class WhatsAppConfig(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    phone_number_id: GraphId
    business_account_id: GraphId
    phone_number: Text | None = None
    display_name: Text | None = None


_AT = re.compile(r"\s*- at `([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")


def field_error(message: str, where: str) -> tuple[str, str]:
    """(field path, message) from a msgspec validation message (no value is ever in it)."""
    text = message.removeprefix(f"{where}: ")
    path = where
    at = _AT.search(text)
    if at:
        text = text[: at.start()]
        path = at.group(1).replace("$", where, 1)
    missing, unknown = _MISSING.search(text), _UNKNOWN.search(text)
    if missing:
        return f"{path}.{missing.group(1)}", "is required"
    if unknown:
        return f"{path}.{unknown.group(1)}", "is not a field of this provider"
    return path, text


def _parse(parse: Any, data: Mapping[str, Any], where: str) -> Any:
    try:
        return parse(data)
    except (ValidationFailed, msgspec.ValidationError) as exc:
        message = exc.message if isinstance(exc, ValidationFailed) else str(exc)
        raise ValidationFailed(
            f"The {where} are not valid for this provider.",
            errors=[field_error(message.replace("`$", f"`{where}"), where)],
        ) from None


def _builtins(value: Any) -> dict[str, Any]:
    data = msgspec.to_builtins(value)
    assert isinstance(data, dict)
    return {k: v for k, v in data.items() if v is not None}


def _finite(value: Any, path: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationFailed(
            "Numbers must be finite.", errors=[(path, "must be a finite number")]
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{path}[{i}]")


class RegistryCatalog:
    """The installed providers, as the integrations use cases see them."""

    def __init__(
        self, registry: ProviderRegistry, http: HttpClients, graph_url: str, graph_version: str
    ) -> None:
        self.registry = registry
        self.http = http
        self.graph_url = graph_url
        self.graph_version = graph_version

    def installed(self, itype: IntegrationType) -> list[str]:
        if itype is IntegrationType.WHATSAPP:
            return [WHATSAPP_PROVIDER]
        return self.registry.ids("llm" if itype is IntegrationType.LLM else "payment")

    def default_model(self, provider: str) -> str | None:
        try:
            return self.registry.llm(provider).default_model
        except (ValidationFailed, AttributeError):
            return None

    def _provider(self, itype: IntegrationType, provider: str) -> Any:
        if itype is IntegrationType.LLM:
            return self.registry.llm(provider)
        return self.registry.payment(provider)

    def normalize(
        self,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str],
        config: Mapping[str, Any],
    ) -> tuple[dict[str, str], dict[str, Any]]:
        _finite(dict(config), "config")
        if itype is IntegrationType.WHATSAPP:
            creds = _parse(lambda d: msgspec.convert(d, WhatsAppSecrets), secrets, "credentials")
            conf = _parse(lambda d: msgspec.convert(d, WhatsAppConfig), config, "credentials")
        else:
            plugin = self._provider(itype, provider)
            creds = _parse(plugin.parse_credentials, secrets, "credentials")
            conf = _parse(plugin.parse_config, config, "config")
        clean = {k: v for k, v in _builtins(creds).items() if isinstance(v, str)}
        return clean, _builtins(conf)

    async def verify(
        self, itype: IntegrationType, provider: str, secrets: Secrets, config: Mapping[str, Any]
    ) -> None:
        if itype is IntegrationType.WHATSAPP:
            from changarrito.adapters.whatsapp.verify import WhatsAppVerifier

            verifier = WhatsAppVerifier(self.http, self.graph_url, self.graph_version)
            await verifier.verify(secrets.reveal(), config)
            return
        plugin = self._provider(itype, provider)
        await plugin.verify(
            plugin.parse_credentials(secrets.reveal()), plugin.parse_config(dict(config))
        )


def integrations(state: State) -> Integrations:
    """The app's use cases, built once per container."""
    container = state.container
    current: Integrations | None = state.get("integrations_use_cases")
    if current is None or current.store is not container.store:
        settings = container.settings
        current = Integrations(
            container.store,
            container.resolver,
            PostgresAuditLog(container.pool),
            RegistryCatalog(
                container.registry,
                container.http,
                settings.whatsapp_api_base_url,
                settings.whatsapp_api_version,
            ),
            container.platform,
            default_llm_model=settings.llm_model,
        )
        state.integrations_use_cases = current
    return current
