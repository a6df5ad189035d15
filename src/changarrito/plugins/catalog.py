"""The ``ProviderCatalog`` port (``changarrito.domain.ports``) over the plugin registry.

Every kind alike: the installed ids, the provider's schemas (through ``parse_credentials`` /
``parse_config``, their msgspec messages turned into field-level ``errors``), the endpoints a
tenant names in its credentials (``changarrito.plugins.endpoints.url_refusal``: public
http(s) hosts only, unless the operator allows private ones) and its ``verify``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.kinds import kind_of
from changarrito.domain.model import IntegrationType, Secrets
from changarrito.plugins.endpoints import NON_PUBLIC, endpoint_urls, url_refusal
from changarrito.plugins.registry import ProviderRegistry
from changarrito.plugins.upstream import RefusedEndpoint

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


def _parse(
    parse: Callable[[Mapping[str, Any]], Any],
    data: Mapping[str, Any],
    where: str,
    said: str | None = None,
) -> Any:
    """``parse(data)``; a ``ValidationFailed`` whose field paths start at ``where`` (the
    request body's object) when the provider's parser names the object ``said``."""
    try:
        return parse(data)
    except (ValidationFailed, msgspec.ValidationError) as exc:
        message = exc.message if isinstance(exc, ValidationFailed) else str(exc)
        message = message.replace("`$", f"`{said or where}")
        if said and said != where:
            message = message.replace(f"`{said}", f"`{where}")
            message = f"{where}: " + message.removeprefix(f"{said}: ")
        raise ValidationFailed(
            f"The {where} {'are' if where == 'credentials' else 'is'} not valid for this provider.",
            errors=[field_error(message, where)],
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
    """The installed providers, as the integrations use cases see them. ``private_urls`` is
    ``CHANGARRITO_ALLOW_PRIVATE_URLS`` (``off``, ``on``, ``loopback``)."""

    def __init__(
        self,
        registry: ProviderRegistry,
        *,
        private_urls: str = "off",
        resolve: Callable[[str, int], Awaitable[str]] | None = None,
    ) -> None:
        self.registry = registry
        self.private_urls = private_urls
        #: The HTTP adapter's guard (``UrlGuard.address``), for ``check_endpoints``.
        self.resolve = resolve

    def installed(self, itype: IntegrationType) -> list[str]:
        return self.registry.ids(itype)

    def default_model(self, provider: str) -> str | None:
        try:
            return self.registry.llm(provider).default_model
        except (ValidationFailed, AttributeError):
            return None

    def normalize(
        self,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str],
        config: Mapping[str, Any],
    ) -> tuple[dict[str, str], dict[str, Any]]:
        _finite(dict(config), "config")
        plugin = self.registry.get(itype, provider)
        creds = _parse(plugin.parse_credentials, secrets, "credentials")
        self._check_endpoints(creds)
        conf = _parse(plugin.parse_config, config, kind_of(itype).config_field, said="config")
        clean = {k: v for k, v in _builtins(creds).items() if isinstance(v, str)}
        return clean, _builtins(conf)

    def _check_endpoints(self, credentials: Any) -> None:
        """A 422 naming the field when a tenant's endpoint is not a public http(s) URL."""
        for name, url in endpoint_urls(credentials):
            reason = url_refusal(url, private=self.private_urls)
            if reason:
                raise ValidationFailed(
                    "The credentials are not valid for this provider.",
                    errors=[(f"credentials.{name}", reason)],
                )

    async def check_endpoints(self, secrets: Mapping[str, str]) -> None:
        """Save time, after ``normalize``: each endpoint's host resolved now, through the same
        guard every connection goes through; a 422 naming the field when it is, or resolves
        to, a non-public address. (Connections are checked again: DNS may change.)"""
        for name, url in endpoint_urls(dict(secrets)):
            parts = urlsplit(url)
            default = 443 if parts.scheme == "https" else 80
            if self.resolve is None or not parts.hostname:
                continue
            try:
                await self.resolve(parts.hostname, parts.port or default)
            except RefusedEndpoint:
                raise ValidationFailed(
                    "The credentials are not valid for this provider.",
                    errors=[(f"credentials.{name}", NON_PUBLIC)],
                ) from None
            except httpx.TransportError:
                raise ValidationFailed(
                    "The credentials are not valid for this provider.",
                    errors=[(f"credentials.{name}", "does not resolve")],
                ) from None

    async def verify(
        self, itype: IntegrationType, provider: str, secrets: Secrets, config: Mapping[str, Any]
    ) -> None:
        plugin = self.registry.get(itype, provider)
        await plugin.verify(
            plugin.parse_credentials(secrets.reveal()), plugin.parse_config(dict(config))
        )
