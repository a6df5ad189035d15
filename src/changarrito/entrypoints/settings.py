"""Settings from the environment: read once, validated, secrets kept out of ``repr``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from changarrito.domain.errors import ConfigurationError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3141
DEFAULT_GRAPH_API = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v23.0"
Cipher = Literal["aesgcm", "pgcrypto"]


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must not be negative, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment (see the README's table)."""

    home: Path
    database_url: str | None = field(default=None, repr=False)
    encryption_keys: str | None = field(default=None, repr=False)
    cipher: Cipher = "aesgcm"
    credentials_cache_ttl: float = 300.0
    internal_api_key: str | None = field(default=None, repr=False)
    backend_url: str | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    whatsapp_api_base_url: str = DEFAULT_GRAPH_API
    whatsapp_api_version: str = DEFAULT_GRAPH_VERSION
    llm_provider: str = "openai"
    llm_model: str = "gpt-4o-mini"
    llm_platform_fallback: bool = False
    log_level: str = "INFO"
    #: The whole environment, for providers' platform keys and base-URL overrides.
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        cipher = (get("CHANGARRITO_CIPHER") or "aesgcm").lower()
        if cipher not in ("aesgcm", "pgcrypto"):
            raise ConfigurationError(
                f"CHANGARRITO_CIPHER must be 'aesgcm' or 'pgcrypto', got {cipher!r}"
            )
        return cls(
            home=Path(get("CHANGARRITO_HOME") or ".changarrito").expanduser(),
            database_url=get("DATABASE_URL"),
            encryption_keys=get("CHANGARRITO_ENCRYPTION_KEYS"),
            cipher=cipher,  # type: ignore[arg-type]
            credentials_cache_ttl=_positive_float(env, "CREDENTIALS_CACHE_TTL", 300.0),
            internal_api_key=get("INTERNAL_API_KEY"),
            backend_url=get("BACKEND_URL"),
            jwt_secret=get("JWT_SECRET"),
            jwt_jwks_url=get("JWT_JWKS_URL"),
            jwt_issuer=get("JWT_ISSUER"),
            jwt_audience=get("JWT_AUDIENCE"),
            whatsapp_api_base_url=(get("WHATSAPP_API_BASE_URL") or DEFAULT_GRAPH_API).rstrip("/"),
            whatsapp_api_version=get("WHATSAPP_API_VERSION") or DEFAULT_GRAPH_VERSION,
            llm_provider=get("LLM_PROVIDER") or "openai",
            llm_model=get("LLM_MODEL") or "gpt-4o-mini",
            llm_platform_fallback=(get("CHANGARRITO_LLM_PLATFORM_FALLBACK") or "").lower()
            in ("1", "true", "yes", "on"),
            log_level=get("CHANGARRITO_LOG_LEVEL") or "INFO",
            env=env,
        )

    def require(self, name: str, value: str | None) -> str:
        """``value``, or a ``ConfigurationError`` naming the missing setting."""
        if not value:
            raise ConfigurationError(f"{name} is not set")
        return value
