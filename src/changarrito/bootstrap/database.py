"""Where the data lives (``DATABASE_URL`` or the embedded PostgreSQL), the key ring that
protects it, the embedded default's development JWT secret, and what each role cannot start
without."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from secrets import token_urlsafe

import structlog

from changarrito.adapters.crypto.keyring import (
    KeyRing,
    load_or_create_keyring_file,
    load_or_create_private_file,
)
from changarrito.adapters.embedded import EmbeddedPostgres
from changarrito.domain.errors import ConfigurationError
from changarrito.settings import Role, Settings

log = structlog.get_logger("changarrito.bootstrap")


@dataclass(slots=True)
class Database:
    url: str = field(repr=False)
    keyring: KeyRing
    embedded: EmbeddedPostgres | None = None


def prepare_database(settings: Settings) -> Database:
    """Where the data lives and the key ring that protects it.

    With ``DATABASE_URL`` the key ring must be given (``CHANGARRITO_ENCRYPTION_KEYS``): a
    generated one would make existing rows unreadable. Without it, the embedded PostgreSQL
    starts in ``CHANGARRITO_HOME`` and a key ring file is generated there on first start.
    """
    url, keys, home = settings.database.url, settings.crypto.encryption_keys, settings.database.home
    if url:
        if not keys:
            raise ConfigurationError(
                "CHANGARRITO_ENCRYPTION_KEYS is not set: with DATABASE_URL, give the key ring "
                "(kid:base64key,...; `changarrito keys generate` prints one)"
            )
        return Database(url, KeyRing.parse(keys))
    embedded = EmbeddedPostgres(home)
    started = embedded.start()
    if keys:
        return Database(started, KeyRing.parse(keys), embedded)
    path = home / "keyring"
    keyring, created = load_or_create_keyring_file(path)
    if created:
        log.warning(
            "keyring.generated",
            path=str(path),
            hint="back this file up: credentials stored under it cannot be read without it; "
            "set CHANGARRITO_ENCRYPTION_KEYS to manage keys yourself",
        )
    return Database(started, keyring, embedded)


def embedded_defaults(settings: Settings) -> Settings:
    """On the embedded default with no JWT configuration, a JWT secret generated (0600) in
    ``CHANGARRITO_HOME``, so ``tokens issue`` and the tenant API work out of the box. An
    external database is production: there the operator must choose the JWT settings."""
    auth = settings.auth
    if settings.database.url or auth.jwt_secret or auth.jwt_jwks_url:
        return settings
    path = settings.database.home / "jwt-secret"
    secret, created = load_or_create_private_file(path, lambda: token_urlsafe(32))
    if created:
        log.warning(
            "jwt_secret.generated",
            path=str(path),
            hint="for development: set JWT_SECRET (or JWT_JWKS_URL) to your platform's own",
        )
    return replace(settings, auth=replace(auth, jwt_secret=secret))


def check_role(settings: Settings, role: Role) -> None:
    """Refuses to start a role without the settings it cannot work without."""
    if role == "backend" and not settings.auth.internal_api_key:
        raise ConfigurationError(
            "INTERNAL_API_KEY is not set: the backend role serves the internal API and will "
            "not start without its key"
        )
    if role == "whatsapp":
        if not settings.role.backend_url:
            raise ConfigurationError(
                "BACKEND_URL is not set: the whatsapp role reads credentials from the "
                "backend's internal API (e.g. BACKEND_URL=http://backend:3141)"
            )
        if not settings.auth.internal_api_key:
            raise ConfigurationError(
                "INTERNAL_API_KEY is not set: the whatsapp role needs it to call the "
                "backend's internal API"
            )
