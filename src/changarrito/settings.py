"""The service's configuration: every environment variable, read once, in one place.

``Settings.from_env(env)`` reads the process environment (or the mapping given, which keeps
tests hermetic) with one set of parsers and returns a frozen tree, one part per concern:
``database``, ``crypto``, ``auth``, ``whatsapp``, ``llm``, ``workers``, ``metrics``,
``limits``, ``plugins`` and ``role``. Nothing below this module reads the environment:
adapters and use cases receive the part they need. The one exception is by design: provider
plugins declare the variables they read (platform keys, base URLs) on their classes and get
them through ``plugins.env``, so a third party's provider needs no change here.

Every variable read here is in the README's configuration table, and every variable in the
table is read (``tests/unit/test_settings.py`` checks both). A value that cannot be parsed
stops start-up with a ``ConfigurationError`` naming the variable and what it must be.

Longer than the house's 250-line aim on purpose: one module is the point (every variable the
service reads, in one place, with one set of parsers).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from changarrito.domain.assistant import DEFAULT_FALLBACK_TEXT
from changarrito.domain.conversations import (
    DEFAULT_HANDOFF_IDLE,
    DEFAULT_HANDOFF_MESSAGE,
    DEFAULT_QUIET_PERIOD,
    MAX_QUIET_PERIOD,
)
from changarrito.domain.errors import ConfigurationError, ValidationFailed
from changarrito.domain.events import parse_secret
from changarrito.domain.template_send import MappedTemplate, mapping_from_json

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3141
DEFAULT_GRAPH_API = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v23.0"
Role = Literal["all", "backend", "whatsapp"]
CipherName = Literal["aesgcm", "pgcrypto"]
PrivateUrls = Literal["off", "on", "loopback"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class _Reader:
    """The one set of parsers. Remembers every name it was asked for (``Settings.variables``)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.names: set[str] = set()

    def text(self, name: str) -> str | None:
        self.names.add(name)
        value = self.env.get(name, "").strip()
        return value or None

    def string(self, name: str, default: str) -> str:
        return self.text(name) or default

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigurationError(f"{name} must be on or off (1/0, true/false, yes/no), got {raw!r}")

    def number(self, name: str, default: float, *, minimum: float = 0) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < minimum:
            raise ConfigurationError(
                f"{name} must be a number of at least {minimum:g}, got {raw!r}"
            )
        return value

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a whole number, got {raw!r}") from None
        if value < minimum:
            raise ConfigurationError(f"{name} must be at least {minimum}, got {raw!r}")
        return value

    def port(self, name: str) -> int | None:
        raw = self.text(name)
        if raw is None:
            return None
        if not (raw.isdigit() and 0 < int(raw) < 65536):
            raise ConfigurationError(f"{name} must be a TCP port (1-65535), got {raw!r}")
        return int(raw)

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = (self.text(name) or default).lower()
        if value not in options:
            allowed = ", ".join(repr(o) for o in options)
            raise ConfigurationError(f"{name} must be one of {allowed}, got {value!r}")
        return value

    def names_list(self, name: str) -> frozenset[str] | None:
        """Comma-separated names; ``None`` when unset, and set but empty is no names at all."""
        self.names.add(name)
        raw = self.env.get(name)
        if raw is None:
            return None
        return frozenset(part.strip() for part in raw.split(",") if part.strip())


#: Meta's template categories.
TEMPLATE_CATEGORIES = frozenset({"MARKETING", "UTILITY", "AUTHENTICATION"})


def _categories(r: _Reader, name: str, default: frozenset[str] | None) -> frozenset[str] | None:
    names = r.names_list(name)
    if names is None:
        return default
    upper = frozenset(n.upper() for n in names)
    unknown = sorted(upper - TEMPLATE_CATEGORIES)
    if unknown:
        allowed = ", ".join(sorted(TEMPLATE_CATEGORIES))
        raise ConfigurationError(f"{name} names no category {', '.join(unknown)} (use {allowed})")
    return upper


def _platform_templates(raw: str | None) -> dict[str, MappedTemplate]:
    if raw is None:
        return {}
    try:
        return mapping_from_json(json.loads(raw))
    except ValueError as exc:
        raise ConfigurationError(
            f"CHANGARRITO_WHATSAPP_TEMPLATES must be a JSON object of purposes: {exc}"
        ) from None
    except ValidationFailed as exc:
        problems = "; ".join(f"{f} {m}" for f, m in exc.errors) or exc.message
        raise ConfigurationError(f"CHANGARRITO_WHATSAPP_TEMPLATES: {problems}") from None


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    #: ``DATABASE_URL``; unset: the embedded PostgreSQL in ``home``.
    url: str | None = field(default=None, repr=False)
    #: ``CHANGARRITO_HOME``: the embedded PostgreSQL's data, its key ring and JWT secret files.
    home: Path = Path(".changarrito")


@dataclass(frozen=True, slots=True)
class CryptoSettings:
    #: ``CHANGARRITO_ENCRYPTION_KEYS``: the key ring, ``kid:base64key,...``, first is primary.
    encryption_keys: str | None = field(default=None, repr=False)
    #: ``CHANGARRITO_CIPHER``.
    cipher: CipherName = "aesgcm"
    #: ``CREDENTIALS_CACHE_TTL``: seconds a resolved credential is cached.
    credentials_cache_ttl: float = 300.0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    jwt_secret: str | None = field(default=None, repr=False)  # JWT_SECRET
    jwt_jwks_url: str | None = None  # JWT_JWKS_URL
    jwt_issuer: str | None = None  # JWT_ISSUER
    jwt_audience: str | None = None  # JWT_AUDIENCE
    internal_api_key: str | None = field(default=None, repr=False)  # INTERNAL_API_KEY


@dataclass(frozen=True, slots=True)
class WhatsAppSettings:
    """The Graph API and the platform's own Meta app (its number is a provider credential,
    read by the ``meta`` provider from ``plugins.env``)."""

    api_base_url: str = DEFAULT_GRAPH_API  # WHATSAPP_API_BASE_URL
    api_version: str = DEFAULT_GRAPH_VERSION  # WHATSAPP_API_VERSION
    verify_token: str | None = field(default=None, repr=False)  # WHATSAPP_VERIFY_TOKEN
    app_secret: str | None = field(default=None, repr=False)  # WHATSAPP_APP_SECRET
    graph_timeout: float = 20.0  # CHANGARRITO_GRAPH_TIMEOUT: seconds per Graph API call
    #: ``CHANGARRITO_TEMPLATE_CATEGORIES``: the template categories a tenant's own number may
    #: send (comma-separated, e.g. ``UTILITY,MARKETING``; unset: any).
    template_categories: frozenset[str] | None = None
    #: ``CHANGARRITO_PLATFORM_TEMPLATE_CATEGORIES``: those the platform's number may send
    #: (default ``UTILITY``: its quality rating and its bill are the operator's).
    platform_template_categories: frozenset[str] | None = frozenset({"UTILITY"})
    #: ``CHANGARRITO_WHATSAPP_TEMPLATES``: the operator's purpose mapping of the platform's
    #: templates, the JSON of ``templates`` in ``PUT /api/v1/integrations/whatsapp``.
    platform_templates: Mapping[str, MappedTemplate] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LLMSettings:
    provider: str = "openai"  # LLM_PROVIDER
    #: ``LLM_MODEL``; unset: the provider's own default model (``gpt-4o-mini`` for openai).
    model: str | None = None
    #: ``CHANGARRITO_LLM_PLATFORM_FALLBACK``: answer with the platform's key when a tenant's
    #: fails for good.
    platform_fallback: bool = False
    #: ``CHANGARRITO_PLATFORM_LLM_MAX_TOKENS``: the most tokens one answer on the platform's
    #: key may ask for, whatever ``maxTokens`` the tenant set.
    platform_max_tokens: int = 1024
    #: ``CHANGARRITO_PLATFORM_LLM_MAX_PROMPT_CHARS``: the most characters of system prompt and
    #: conversation one call on the platform's key sends.
    platform_max_prompt_chars: int = 24000
    #: ``CHANGARRITO_TRANSCRIPTION_PROVIDER``: the platform's provider that transcribes voice
    #: notes (unset: ``LLM_PROVIDER``, when it can); ``CHANGARRITO_TRANSCRIPTION_MODEL``: its
    #: model (unset: the provider's default, ``gpt-4o-mini-transcribe`` for openai).
    transcription_provider: str | None = None
    transcription_model: str | None = None
    #: ``CHANGARRITO_TRANSCRIPTION_PLATFORM_FALLBACK``: the platform also transcribes for
    #: tenants with an LLM of their own that cannot (or whose key fails for good).
    transcription_platform_fallback: bool = False


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The message workers (environment variable in each comment)."""

    concurrency: int = 16  # CHANGARRITO_WORKERS_CONCURRENCY (0: serve runs no workers)
    max_attempts: int = 8  # CHANGARRITO_MAX_ATTEMPTS, then the message is dead-lettered
    retry_base: float = 2.0  # CHANGARRITO_RETRY_BASE: first backoff, seconds, then doubling
    retry_max: float = 600.0  # CHANGARRITO_RETRY_MAX: longest backoff, seconds
    lease: float = 120.0  # CHANGARRITO_WORKER_LEASE: seconds a crashed worker holds a message
    poll: float = 1.0  # CHANGARRITO_WORKER_POLL: seconds between polls without notification
    grace: float = 30.0  # CHANGARRITO_WORKER_GRACE: seconds to finish work in hand on stop
    history: int = 20  # CHANGARRITO_HISTORY_LIMIT: messages of the conversation sent to the LLM
    fallback_text: str = DEFAULT_FALLBACK_TEXT  # CHANGARRITO_FALLBACK_TEXT
    # The conversations' defaults (a tenant's LLM config may set its own):
    quiet_period: float = DEFAULT_QUIET_PERIOD  # CHANGARRITO_QUIET_PERIOD: seconds, 0 is off
    # CHANGARRITO_HANDOFF_IDLE_HOURS: back to the bot after that long with nobody from the shop
    handoff_idle_hours: float = DEFAULT_HANDOFF_IDLE.total_seconds() / 3600
    handoff_message: str = DEFAULT_HANDOFF_MESSAGE  # CHANGARRITO_HANDOFF_MESSAGE
    #: ``CHANGARRITO_TEXT_ONLY_REPLY``; unset: a reply saying what the assistant reads.
    text_only_reply: str | None = None
    #: ``CHANGARRITO_TEMPLATE_SYNC_HOURS``: every owner's templates are synced from Graph
    #: once per this many hours, spread over them (0: no scheduled sync).
    template_sync_hours: float = 6.0
    #: ``CHANGARRITO_BUDGET_EXCEEDED``: what the customer gets when a tenant's hard budget
    #: stops the platform's LLM: ``fallback`` (its fallback text), ``handoff`` or ``silence``.
    budget_exceeded: str = "fallback"


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``/metrics``: tenant labels, the queue-depth cache, and ``changarrito worker``'s own
    listener (no listener while ``port`` is unset)."""

    tenant_labels: bool = False  # CHANGARRITO_METRICS_TENANT_LABELS
    queue_cache: float = 5.0  # CHANGARRITO_METRICS_QUEUE_CACHE
    port: int | None = None  # CHANGARRITO_METRICS_PORT
    host: str = "127.0.0.1"  # CHANGARRITO_METRICS_HOST


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Per-tenant rate limits of the calls that spend someone's provider quota, per minute
    (``0``: no limit). Global: every process counts in the same PostgreSQL rows."""

    payment_links: int = 30  # CHANGARRITO_PAYMENT_LINKS_PER_MINUTE
    verify: int = 10  # CHANGARRITO_VERIFY_PER_MINUTE


@dataclass(frozen=True, slots=True)
class PluginSettings:
    #: ``CHANGARRITO_LOAD_PLUGINS``: third-party plugins to load (``None``: every installed one).
    allow_list: frozenset[str] | None = None
    #: ``CHANGARRITO_ALLOW_PRIVATE_URLS``: ``off``; ``on``: tenants' endpoints may be private
    #: (LAN) addresses; ``loopback``: this host's too (one-host setups, test harnesses).
    allow_private_urls: PrivateUrls = "off"
    #: The environment providers read their declared variables from (platform keys, base
    #: URLs); see ``Provider.platform_env`` in the plugin API.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class RoleSettings:
    #: ``CHANGARRITO_ROLE`` (``serve --role`` wins): ``all``, ``backend`` or ``whatsapp``.
    name: Role = "all"
    #: ``BACKEND_URL``: where the ``whatsapp`` role reads credentials.
    backend_url: str | None = None


@dataclass(frozen=True, slots=True)
class EventSettings:
    """Where events for the platform's backend go (Standard Webhooks). Unset: none are
    filed at all."""

    #: ``CHANGARRITO_EVENTS_URL``: the receiver (``http://`` or ``https://``).
    url: str | None = None
    #: ``CHANGARRITO_EVENTS_SECRET``: ``whsec_<base64>``, the signing key's bytes.
    secret: bytes | None = field(default=None, repr=False)

    @property
    def on(self) -> bool:
        return self.url is not None


def _events(r: _Reader) -> EventSettings:
    url, secret = r.text("CHANGARRITO_EVENTS_URL"), r.text("CHANGARRITO_EVENTS_SECRET")
    if url is None:
        return EventSettings()
    if not url.startswith(("https://", "http://")):
        raise ConfigurationError(f"CHANGARRITO_EVENTS_URL must be an http(s) URL, got {url!r}")
    if secret is None:
        raise ConfigurationError(
            "CHANGARRITO_EVENTS_SECRET is not set (whsec_ and base64: events are always signed)"
        )
    return EventSettings(url=url, secret=parse_secret(secret))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment (see the README's table)."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    crypto: CryptoSettings = field(default_factory=CryptoSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    whatsapp: WhatsAppSettings = field(default_factory=WhatsAppSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    plugins: PluginSettings = field(default_factory=PluginSettings)
    role: RoleSettings = field(default_factory=RoleSettings)
    events: EventSettings = field(default_factory=EventSettings)
    #: ``CHANGARRITO_LOG_LEVEL``; ``None`` when unset (commands then pick their own default).
    log_level: str | None = None
    #: ``CHANGARRITO_REQUEST_TIMEOUT``: seconds a client has to send a request's head (from
    #: the connection's opening, or the previous response on it), and again its body once
    #: the head arrived (then 408 and the connection is closed).
    request_timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Reads ``env`` (default ``os.environ``) once; ``ConfigurationError`` on a bad value."""
        settings, _ = _read(dict(os.environ if env is None else env))
        return settings

    @staticmethod
    def variables() -> frozenset[str]:
        """Every variable ``from_env`` reads (providers' own are declared on their classes)."""
        _, names = _read({})
        return frozenset(names)

    def require(self, name: str, value: str | None) -> str:
        """``value``, or a ``ConfigurationError`` naming the missing setting."""
        if not value:
            raise ConfigurationError(f"{name} is not set")
        return value


def plugin_settings(env: Mapping[str, str]) -> PluginSettings:
    """The plugins' part alone (``changarrito plugins`` and tests that load plugins)."""
    return _plugins(_Reader(env))


def _plugins(r: _Reader) -> PluginSettings:
    return PluginSettings(
        allow_list=r.names_list("CHANGARRITO_LOAD_PLUGINS"),
        allow_private_urls=_private_urls(r),
        env=r.env,
    )


def _private_urls(r: _Reader) -> PrivateUrls:
    name = "CHANGARRITO_ALLOW_PRIVATE_URLS"
    raw = (r.text(name) or "off").lower()
    if raw in _TRUE or raw in _FALSE or raw == "loopback":
        return "loopback" if raw == "loopback" else "on" if raw in _TRUE else "off"
    raise ConfigurationError(f"{name} must be on, off or loopback, got {raw!r}")


def _read(env: Mapping[str, str]) -> tuple[Settings, set[str]]:
    r = _Reader(env)
    settings = Settings(
        database=DatabaseSettings(
            url=r.text("DATABASE_URL"),
            home=Path(r.string("CHANGARRITO_HOME", ".changarrito")).expanduser(),
        ),
        crypto=CryptoSettings(
            encryption_keys=r.text("CHANGARRITO_ENCRYPTION_KEYS"),
            cipher=r.choice("CHANGARRITO_CIPHER", get_args(CipherName), "aesgcm"),  # type: ignore[arg-type]
            credentials_cache_ttl=r.number("CREDENTIALS_CACHE_TTL", 300.0),
        ),
        auth=AuthSettings(
            jwt_secret=r.text("JWT_SECRET"),
            jwt_jwks_url=r.text("JWT_JWKS_URL"),
            jwt_issuer=r.text("JWT_ISSUER"),
            jwt_audience=r.text("JWT_AUDIENCE"),
            internal_api_key=r.text("INTERNAL_API_KEY"),
        ),
        whatsapp=WhatsAppSettings(
            api_base_url=r.string("WHATSAPP_API_BASE_URL", DEFAULT_GRAPH_API).rstrip("/"),
            api_version=r.string("WHATSAPP_API_VERSION", DEFAULT_GRAPH_VERSION),
            verify_token=r.text("WHATSAPP_VERIFY_TOKEN"),
            app_secret=r.text("WHATSAPP_APP_SECRET"),
            graph_timeout=r.number("CHANGARRITO_GRAPH_TIMEOUT", 20.0, minimum=0.1),
            template_categories=_categories(r, "CHANGARRITO_TEMPLATE_CATEGORIES", None),
            platform_template_categories=_categories(
                r, "CHANGARRITO_PLATFORM_TEMPLATE_CATEGORIES", frozenset({"UTILITY"})
            ),
            platform_templates=_platform_templates(r.text("CHANGARRITO_WHATSAPP_TEMPLATES")),
        ),
        llm=LLMSettings(
            provider=r.string("LLM_PROVIDER", "openai"),
            model=r.text("LLM_MODEL"),
            platform_fallback=r.boolean("CHANGARRITO_LLM_PLATFORM_FALLBACK", False),
            platform_max_tokens=r.integer("CHANGARRITO_PLATFORM_LLM_MAX_TOKENS", 1024, minimum=1),
            platform_max_prompt_chars=r.integer(
                "CHANGARRITO_PLATFORM_LLM_MAX_PROMPT_CHARS", 24000, minimum=100
            ),
            transcription_provider=r.text("CHANGARRITO_TRANSCRIPTION_PROVIDER"),
            transcription_model=r.text("CHANGARRITO_TRANSCRIPTION_MODEL"),
            transcription_platform_fallback=r.boolean(
                "CHANGARRITO_TRANSCRIPTION_PLATFORM_FALLBACK", False
            ),
        ),
        workers=WorkerSettings(
            concurrency=r.integer("CHANGARRITO_WORKERS_CONCURRENCY", 16),
            max_attempts=r.integer("CHANGARRITO_MAX_ATTEMPTS", 8, minimum=1),
            retry_base=r.number("CHANGARRITO_RETRY_BASE", 2.0),
            retry_max=r.number("CHANGARRITO_RETRY_MAX", 600.0),
            lease=r.number("CHANGARRITO_WORKER_LEASE", 120.0, minimum=1),
            poll=r.number("CHANGARRITO_WORKER_POLL", 1.0, minimum=0.05),
            grace=r.number("CHANGARRITO_WORKER_GRACE", 30.0),
            history=r.integer("CHANGARRITO_HISTORY_LIMIT", 20, minimum=1),
            fallback_text=r.string("CHANGARRITO_FALLBACK_TEXT", DEFAULT_FALLBACK_TEXT),
            quiet_period=_quiet_period(r),
            handoff_idle_hours=r.number(
                "CHANGARRITO_HANDOFF_IDLE_HOURS",
                DEFAULT_HANDOFF_IDLE.total_seconds() / 3600,
                minimum=0.001,
            ),
            handoff_message=r.string("CHANGARRITO_HANDOFF_MESSAGE", DEFAULT_HANDOFF_MESSAGE),
            text_only_reply=r.text("CHANGARRITO_TEXT_ONLY_REPLY"),
            template_sync_hours=r.number("CHANGARRITO_TEMPLATE_SYNC_HOURS", 6.0),
            budget_exceeded=r.choice(
                "CHANGARRITO_BUDGET_EXCEEDED", ("fallback", "handoff", "silence"), "fallback"
            ),
        ),
        events=_events(r),
        metrics=MetricsSettings(
            tenant_labels=r.boolean("CHANGARRITO_METRICS_TENANT_LABELS", False),
            queue_cache=r.number("CHANGARRITO_METRICS_QUEUE_CACHE", 5.0),
            port=r.port("CHANGARRITO_METRICS_PORT"),
            host=r.string("CHANGARRITO_METRICS_HOST", "127.0.0.1"),
        ),
        limits=LimitSettings(
            payment_links=r.integer("CHANGARRITO_PAYMENT_LINKS_PER_MINUTE", 30),
            verify=r.integer("CHANGARRITO_VERIFY_PER_MINUTE", 10),
        ),
        plugins=_plugins(r),
        role=RoleSettings(
            name=r.choice("CHANGARRITO_ROLE", get_args(Role), "all"),  # type: ignore[arg-type]
            backend_url=r.text("BACKEND_URL"),
        ),
        log_level=r.text("CHANGARRITO_LOG_LEVEL"),
        request_timeout=r.number("CHANGARRITO_REQUEST_TIMEOUT", 10.0, minimum=0.1),
    )
    return settings, r.names


def _quiet_period(r: _Reader) -> float:
    seconds = r.number("CHANGARRITO_QUIET_PERIOD", DEFAULT_QUIET_PERIOD)
    if seconds > MAX_QUIET_PERIOD:
        raise ConfigurationError(
            f"CHANGARRITO_QUIET_PERIOD must be at most {MAX_QUIET_PERIOD:g} seconds "
            "(0 turns it off)"
        )
    return seconds
