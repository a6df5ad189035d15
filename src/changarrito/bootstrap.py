"""The composition root: builds the production adapters and wires them to the domain.

``prepare_database`` settles where the data lives (``DATABASE_URL`` or the embedded
PostgreSQL) and which key ring protects it; ``bootstrap`` opens the pool and builds
everything else. Tests pass their own pieces as keyword overrides.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from secrets import token_urlsafe
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from changarrito.adapters.cache import TTLResolutionCache
from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.crypto.keyring import (
    KeyRing,
    load_or_create_keyring_file,
    load_or_create_private_file,
)
from changarrito.adapters.crypto.pgcrypto import PgcryptoCipher
from changarrito.adapters.crypto.suite import CipherSuite
from changarrito.adapters.embedded import EmbeddedPostgres
from changarrito.adapters.http import HttpClients
from changarrito.adapters.metrics import MeteredResolver, Metrics, MetricsSettings
from changarrito.adapters.postgres.group_commit import GroupCommit
from changarrito.adapters.postgres.migrate import migrate
from changarrito.adapters.postgres.notify import listen_for_changes
from changarrito.adapters.postgres.pool import open_pool
from changarrito.adapters.postgres.rotation import check_keyring
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.adapters.postgres.whatsapp_apps import WhatsAppApps
from changarrito.adapters.remote import RemoteResolver
from changarrito.domain.errors import ConfigurationError
from changarrito.domain.model import (
    WHATSAPP_PROVIDER,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Secrets,
)
from changarrito.domain.ports import Cipher, Resolver
from changarrito.domain.services import CredentialResolver
from changarrito.entrypoints.settings import Settings
from changarrito.plugins.manager import ProviderRegistry, load_plugins

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
    if settings.database_url:
        if not settings.encryption_keys:
            raise ConfigurationError(
                "CHANGARRITO_ENCRYPTION_KEYS is not set: with DATABASE_URL, give the key ring "
                "(kid:base64key,...; `changarrito keys generate` prints one)"
            )
        return Database(settings.database_url, KeyRing.parse(settings.encryption_keys))
    embedded = EmbeddedPostgres(settings.home)
    url = embedded.start()
    if settings.encryption_keys:
        keyring = KeyRing.parse(settings.encryption_keys)
    else:
        path = settings.home / "keyring"
        keyring, created = load_or_create_keyring_file(path)
        if created:
            log.warning(
                "keyring.generated",
                path=str(path),
                hint="back this file up: credentials stored under it cannot be read without it; "
                "set CHANGARRITO_ENCRYPTION_KEYS to manage keys yourself",
            )
    return Database(url, keyring, embedded)


def embedded_defaults(settings: Settings) -> Settings:
    """On the embedded default with no JWT configuration, a JWT secret generated (0600) in
    ``CHANGARRITO_HOME``, so ``tokens issue`` and the tenant API work out of the box. An
    external database is production: there the operator must choose the JWT settings."""
    if settings.database_url or settings.jwt_secret or settings.jwt_jwks_url:
        return settings
    path = settings.home / "jwt-secret"
    secret, created = load_or_create_private_file(path, lambda: token_urlsafe(32))
    if created:
        log.warning(
            "jwt_secret.generated",
            path=str(path),
            hint="for development: set JWT_SECRET (or JWT_JWKS_URL) to your platform's own",
        )
    return replace(settings, jwt_secret=secret)


async def build_cipher(
    settings: Settings, pool: AsyncConnectionPool[Any], keyring: KeyRing
) -> CipherSuite:
    """Encrypts with the configured cipher; decrypts rows written by either, so switching
    ``CHANGARRITO_CIPHER`` and running ``keys rotate`` migrates them."""
    aesgcm = AesGcmCipher(keyring)
    pgcrypto = PgcryptoCipher(pool, keyring)
    if settings.cipher == "pgcrypto":
        await pgcrypto.ensure_available()
        return CipherSuite(pgcrypto, aesgcm)
    return CipherSuite(aesgcm, pgcrypto)


#: The platform's WhatsApp number, by credential field.
WHATSAPP_ENV = {
    "accessToken": "WHATSAPP_ACCESS_TOKEN",
    "appSecret": "WHATSAPP_APP_SECRET",
    "verifyToken": "WHATSAPP_VERIFY_TOKEN",
}


def platform_defaults(settings: Settings, registry: ProviderRegistry) -> PlatformDefaults:
    """What tenants fall back to, from the environment and the installed providers."""
    env = settings.env
    credentials: dict[tuple[IntegrationType, str], PlatformCredential] = {}
    hints: dict[tuple[IntegrationType, str], str] = {}

    wa = (IntegrationType.WHATSAPP, WHATSAPP_PROVIDER)
    hints[wa] = "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID"
    phone_number_id = env.get("WHATSAPP_PHONE_NUMBER_ID", "").strip() or None
    token = env.get("WHATSAPP_ACCESS_TOKEN", "").strip()
    if token and phone_number_id:
        secrets = {f: env[v].strip() for f, v in WHATSAPP_ENV.items() if env.get(v, "").strip()}
        ids = {"phoneNumberId": phone_number_id}
        if env.get("WHATSAPP_BUSINESS_ACCOUNT_ID", "").strip():
            ids["businessAccountId"] = env["WHATSAPP_BUSINESS_ACCOUNT_ID"].strip()
        credentials[wa] = PlatformCredential(*wa, Secrets(secrets), ids)

    kinds = ((IntegrationType.LLM, "llm"), (IntegrationType.PAYMENTS, "payment"))
    first_payment: str | None = None
    for itype, kind in kinds:
        for provider in registry.providers(kind):  # type: ignore[arg-type]
            key = (itype, provider.id)
            if provider.platform_env:
                hints[key] = " and ".join(sorted(set(provider.platform_env.values())))
            found = provider.platform_credentials(env)
            if found is None:
                continue
            config: dict[str, Any] = {}
            if itype is IntegrationType.LLM and provider.id == settings.llm_provider:
                config["model"] = settings.llm_model
            credentials[key] = PlatformCredential(itype, provider.id, Secrets(found), config)
            if itype is IntegrationType.PAYMENTS and first_payment is None:
                first_payment = provider.id

    defaults = {IntegrationType.LLM: settings.llm_provider}
    if first_payment:
        defaults[IntegrationType.PAYMENTS] = first_payment
    return PlatformDefaults(
        credentials=credentials,
        default_providers=defaults,
        whatsapp_phone_number_id=phone_number_id,
        env_hints=hints,
    )


@dataclass(slots=True)
class Container:
    """Everything a process needs, built once; ``aclose`` releases it in reverse order."""

    settings: Settings
    pool: AsyncConnectionPool[Any]
    cipher: Cipher
    store: PostgresStore
    cache: TTLResolutionCache
    resolver: Resolver
    registry: ProviderRegistry
    http: HttpClients
    platform: PlatformDefaults
    database: Database
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: The webhook intake's group commit, and the tenants' Meta apps (verify tokens, secrets).
    intake: GroupCommit | None = None
    whatsapp_apps: WhatsAppApps | None = None
    #: This process's Prometheus metrics (``GET /metrics``).
    metrics: Metrics = field(default_factory=Metrics)

    async def aclose(self) -> None:
        if self.intake is not None:
            await self.intake.aclose()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.http.aclose()
        await self.pool.close()


async def bootstrap(
    settings: Settings,
    database: Database,
    *,
    role: str = "all",
    listen: bool = True,
    apply_migrations: bool = True,
    check_keys: bool = True,
    **overrides: Any,
) -> Container:
    """Builds the process's adapters. ``listen`` starts the change listener that keeps this
    process's cache in step with writes made by others; overrides replace any piece by name
    (``http``, ``registry``, ``cache``, ``cipher``...). Role ``whatsapp`` resolves credentials
    through the backend's internal API (``adapters.remote``), the others from the store."""
    pool = overrides.get("pool") or await open_pool(database.url, max_size=20)
    try:
        if apply_migrations:
            applied = await migrate(pool)
            if applied:
                log.info("migrations.applied", names=applied)
        cipher = overrides.get("cipher") or await build_cipher(settings, pool, database.keyring)
        if check_keys:
            await check_keyring(pool, cipher)
        http = overrides.get("http") or HttpClients()
        registry = overrides.get("registry") or load_plugins(settings.env, http=http)
        platform = overrides.get("platform") or platform_defaults(settings, registry)
        store = PostgresStore(pool, cipher)
        cache = overrides.get("cache") or TTLResolutionCache(ttl=settings.credentials_cache_ttl)
        resolver: Resolver = CredentialResolver(store, cache, platform)
        remote = None
        if role == "whatsapp":
            resolver = remote = RemoteResolver.from_settings(settings, http, platform)
        metrics = overrides.get("metrics") or Metrics(MetricsSettings.from_env(settings.env))
        metrics.watch_cache("credentials", cache)
        if remote is not None:
            metrics.watch_cache("backend", remote)
        resolver = MeteredResolver(resolver, metrics)
    except BaseException:
        await pool.close()
        raise
    container = Container(
        settings=settings,
        pool=pool,
        cipher=cipher,
        store=store,
        cache=cache,
        resolver=resolver,
        registry=registry,
        http=http,
        platform=platform,
        database=database,
        intake=GroupCommit(pool),
        whatsapp_apps=(apps := WhatsAppApps(pool, cipher)),
        metrics=metrics,
    )
    if listen:

        def on_change(kind: str, value: str) -> None:
            cache.on_change(kind, value)
            apps.on_change(kind, value)
            if remote is not None:
                remote.on_change(kind, value)

        ready = asyncio.Event()
        task = asyncio.create_task(
            listen_for_changes(database.url, on_change, ready=ready),
            name="changarrito-change-listener",
        )
        container.tasks.append(task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=5)
    return container
