"""What every provider shares, whatever its kind: the context the host gives it, the
credential and config bases, its declared environment, and the one upstream-call helper
(``Provider.call_json``) that sends on the shared client pool, classifies failures into the
``ProviderError`` tree and scrubs secrets.

Plugin authors import these from ``changarrito.plugin``; the kinds' contracts
(``LLMProvider``, ``PaymentProvider``) are in ``changarrito.plugins.base``.
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

import httpx
import msgspec
import structlog

from changarrito.domain.errors import ValidationFailed
from changarrito.plugins.endpoints import endpoint_urls, same_credentials
from changarrito.plugins.upstream import (
    classify_status,
    error_payload,
    scrub,
    translate_transport_errors,
)

log = structlog.get_logger(__name__)

__all__ = ["Config", "Credentials", "Provider", "ProviderContext", "secret_values"]

#: Longest upstream message kept in an exception (scrubbed first, so no secret survives as a
#: truncated prefix).
MAX_ERROR_MESSAGE = 300


class ProviderContext(msgspec.Struct, frozen=True):
    """What the host gives a provider when it is created.

    ``http`` is a shared factory of pooled ``httpx.AsyncClient``s, one per upstream host
    (``http.get(url)``); ``env`` is the process environment, the only place a provider reads
    the variables it declares in ``platform_env`` and ``base_url_env``.
    """

    http: Any
    env: Mapping[str, str] = msgspec.field(default_factory=dict)


class Credentials(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """Base for credential schemas: every field is secret, and no ``repr`` shows a value.

    Fields are snake_case in Python and camelCase on the wire; unknown fields are refused.
    Subclasses inherit ``frozen`` (writing ``frozen=True`` again is optional).

    Put the endpoint a key is meant for (``baseUrl``, ``endpoint``) in the *same* schema as the
    key, never in the config: a key and its endpoint then always come from one source, so a
    tenant's endpoint can never be paired with the platform's key.
    """

    def __repr__(self) -> str:
        names = ", ".join(f"{f}=***" for f in self.__struct_encode_fields__)
        return f"{type(self).__name__}({names})"

    __str__ = __repr__

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # rich's pretty-printer (tracebacks with locals) would otherwise read the fields.
        return [(name, "***") for name in self.__struct_fields__]

    def secrets(self) -> list[str]:
        """The values scrubbed from anything built from an upstream answer; override to add
        derived ones (a Basic token is the key pair in base64)."""
        values = [getattr(self, f) for f in self.__struct_fields__]
        return [v for v in values if isinstance(v, str) and v]


class Config(msgspec.Struct, frozen=True, rename="camel"):
    """Base for non-secret configuration schemas (camelCase on the wire; subclasses inherit
    ``frozen``). A field that fails validation is reported by name (``config.successUrl``) in
    a 422."""


def secret_values(credentials: Any) -> list[str]:
    """Every secret of a credentials object or mapping, for ``scrub``."""
    if isinstance(credentials, Credentials):
        return credentials.secrets()
    if isinstance(credentials, Mapping):
        values = list(credentials.values())
    elif isinstance(credentials, msgspec.Struct):
        values = [getattr(credentials, f) for f in credentials.__struct_fields__]
    else:
        values = []
    return [v for v in values if isinstance(v, str) and v]


class Provider(ABC):
    """Shared behaviour of every provider: schemas, declared environment, the upstream call."""

    #: Stable id used in the API and the database (``openai``, ``stripe``...): lower-case
    #: letters, digits and dashes (the loader checks ``^[a-z0-9][a-z0-9-]{0,62}$``).
    id: ClassVar[str]
    #: Human name.
    name: ClassVar[str]
    #: msgspec Struct (a ``Credentials`` subclass) describing the secret fields of a tenant.
    credentials_schema: ClassVar[type[msgspec.Struct]]
    #: msgspec Struct describing the non-secret configuration.
    config_schema: ClassVar[type[msgspec.Struct]]
    #: Environment variables holding the platform's credentials, by credential field
    #: (camelCase); each value an environment variable name (``^[A-Z][A-Z0-9_]*$``).
    platform_env: ClassVar[Mapping[str, str]] = {}
    #: Environment variable overriding ``default_base_url`` (fakes, proxies, self-hosters);
    #: ``None``: no override.
    base_url_env: ClassVar[str | None] = None
    #: Where the provider's API lives unless ``base_url_env`` says otherwise.
    default_base_url: ClassVar[str] = ""
    #: Per-request timeouts; ``None`` keeps the shared client's (60 s read, for LLMs).
    timeout: ClassVar[httpx.Timeout | None] = None

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @classmethod
    def parse_credentials(cls, data: Mapping[str, Any]) -> Any:
        """``data`` (camelCase) as a ``credentials_schema`` instance, or ``ValidationFailed``
        naming the field (``credentials: Object missing required field `apiKey```); the host
        turns that message into the 422's ``errors[].field``."""
        return _convert(cls.credentials_schema, data, "credentials")

    @classmethod
    def parse_config(cls, data: Mapping[str, Any]) -> Any:
        """``data`` (camelCase) as a ``config_schema`` instance, or ``ValidationFailed``
        naming the field (``... - at `config.maxTokens```)."""
        return _convert(cls.config_schema, data, "config")

    @classmethod
    def platform_credentials(cls, env: Mapping[str, str]) -> dict[str, str] | None:
        """The platform's credentials from ``env``: the ``platform_env`` fields whose variable
        is set to something other than blanks (surrounding blanks trimmed, as the service's
        own settings are), or ``None`` when ``platform_env`` is empty or a required field of
        ``credentials_schema`` (one without a default) has no value."""
        values = {field: env.get(var, "").strip() for field, var in cls.platform_env.items()}
        required = _required_fields(cls.credentials_schema)
        if not cls.platform_env or any(not values.get(f) for f in required):
            return None
        return {k: v for k, v in values.items() if v}

    @classmethod
    def env_vars(cls) -> list[str]:
        """Every environment variable the provider reads: its platform credentials and its
        base-URL override. A provider reads no other."""
        names = set(cls.platform_env.values())
        if cls.base_url_env:
            names.add(cls.base_url_env)
        return sorted(names)

    @classmethod
    def credentials_of(cls, value: Any) -> Any:
        """``value`` as a ``credentials_schema`` instance: the host passes parsed structs, but
        a raw mapping is parsed here rather than failing on attribute access."""
        return _as_struct(cls.credentials_schema, value, cls.parse_credentials)

    @classmethod
    def config_of(cls, value: Any) -> Any:
        """``value`` (a parsed config, a mapping or ``None``) as a ``config_schema`` instance."""
        return _as_struct(cls.config_schema, value, cls.parse_config)

    def platform_base_url(self) -> str:
        """``base_url_env`` from the context's environment, else ``default_base_url``."""
        override = self.context.env.get(self.base_url_env) if self.base_url_env else None
        return str(override or self.default_base_url).rstrip("/")

    @abstractmethod
    async def verify(self, credentials: Any, config: Any) -> None:
        """Makes a cheap authenticated call; raises a ``ProviderError`` when it fails."""

    def tenant_endpoint(self, credentials: Any) -> bool:
        """Whether a call made with ``credentials`` goes to an endpoint a tenant chose: they
        carry an endpoint field (``baseUrl``, ``endpoint``) and are not the platform's own
        credentials. Such calls are guarded (public addresses only) and echo nothing of the
        endpoint's answers; the platform's URLs are trusted."""
        if not any(endpoint_urls(credentials)):
            return False
        platform = self.platform_credentials(self.context.env)
        try:
            return platform is None or not same_credentials(
                self.credentials_of(platform), self.credentials_of(credentials)
            )
        except (ValidationFailed, TypeError):
            return True

    # The upstream call ------------------------------------------------------------------------

    def error_details(self, payload: Any) -> tuple[str | None, str | None, bool]:
        """(message, provider code, is-quota) from an error body (``None`` when it had no
        JSON); override per wire format. The default reads ``{"error": {"message", "code" or
        "type"}}`` (OpenAI, Stripe) and ``{"error": "text"}``, and never says quota (so only
        HTTP 402 is a quota error unless an override returns ``True``)."""
        error = payload.get("error") if isinstance(payload, dict) else None
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            message = error.get("message")
            return (str(message) if message else None), _str(code), False
        if isinstance(error, str):
            return error, None, False
        return None, None, False

    async def call_json(
        self,
        method: str,
        url: str,
        *,
        credentials: Any,
        headers: Mapping[str, str],
        json: Any = None,
        content: bytes | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        accept_status: Collection[int] = (),
    ) -> httpx.Response:
        """Sends one request on the shared pool and returns a 2xx response (or one whose
        status is in ``accept_status``, e.g. a 404 the caller interprets); any other answer
        raises the classified ``ProviderError``, its message scrubbed of ``credentials``.

        The body is ``json``, raw ``content``, or a ``multipart/form-data`` form: ``files``
        (field → ``(filename, bytes, content type)``) with the plain fields ``data``.

        When ``credentials`` name the tenant's own endpoint (``tenant_endpoint``), the request
        goes through the HTTP adapter's guard (non-public addresses refused at connect time)
        and an error says only which status the endpoint answered, never what it said."""
        tenant = self.tenant_endpoint(credentials)
        http = self.context.http
        client: httpx.AsyncClient = http.get(url, tenant=True) if tenant else http.get(url)
        extra: dict[str, Any] = {} if self.timeout is None else {"timeout": self.timeout}
        started = time.perf_counter()
        async with translate_transport_errors(self.id, echo=not tenant):
            response = await client.request(
                method,
                url,
                headers=dict(headers),
                json=json,
                content=content,
                files=files,
                data=data,
                params=params,
                **extra,
            )
        latency = round((time.perf_counter() - started) * 1000, 1)
        if response.is_success or response.status_code in accept_status:
            log.debug("upstream_ok", provider=self.id, status=response.status_code, ms=latency)
            return response
        secrets = secret_values(credentials)
        message, code, quota = self.error_details(error_payload(response))
        error = classify_status(
            self.id,
            response,
            message=scrub(message or response.reason_phrase or "no details", secrets)[
                :MAX_ERROR_MESSAGE
            ],
            provider_code=scrub(code, secrets) if code else None,
            quota=quota,
            secrets=secrets,
            echo=not tenant,
        )
        log.warning(
            "upstream_failed",
            provider=self.id,
            status=response.status_code,
            provider_code=error.provider_code,
            retryable=error.retryable,
            error=error.message,
            ms=latency,
        )
        raise error


@functools.cache
def _required_fields(schema: type[msgspec.Struct]) -> tuple[str, ...]:
    """The fields of ``schema`` without a default (inspected once per schema: the LLM's
    every call asks, through ``tenant_endpoint``)."""
    info = msgspec.inspect.type_info(schema)
    assert isinstance(info, msgspec.inspect.StructType)
    return tuple(f.encode_name for f in info.fields if f.required)


def _convert(schema: type[msgspec.Struct], data: Mapping[str, Any], where: str) -> Any:
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        # msgspec says e.g. "Expected `str`, got `int` - at `$.apiKey`": name the object.
        raise ValidationFailed(f"{where}: {exc}".replace("`$", f"`{where}")) from None


def _as_struct(
    schema: type[msgspec.Struct], value: Any, parse: Callable[[Mapping[str, Any]], Any]
) -> Any:
    if isinstance(value, schema):
        return value
    if value is None:
        value = {}
    if isinstance(value, Mapping):
        return parse(value)
    raise TypeError(f"expected {schema.__name__} or a mapping, got {type(value).__name__}")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
