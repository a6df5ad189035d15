"""The composition root: the one place that builds adapters and use cases and wires them.

- ``prepare_database`` settles where the data lives (``DATABASE_URL`` or the embedded
  PostgreSQL) and which key ring protects it;
- ``postgres_storage`` opens the pool and builds the PostgreSQL adapters (a ``Storage``);
- ``build_service`` wires a ``Storage`` to everything else (credential resolution, plugins,
  use cases, the webhook intake, the pipeline) and returns the ``Service``;
- ``bootstrap`` does both, and starts the change listener that keeps caches in step.

Tests build a ``Service`` on in-memory fakes with ``build_service(settings, storage)`` and
replace single pieces with the typed keyword overrides (an unknown one is a ``TypeError``).
Entry points take what they need from the ``Service``: they never build an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from secrets import token_urlsafe

import structlog

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
from changarrito.adapters.jwt_auth import TenantAuthenticator
from changarrito.adapters.metrics import MeteredResolver, Metrics
from changarrito.adapters.postgres.audit import PostgresAuditLog
from changarrito.adapters.postgres.group_commit import GroupCommit
from changarrito.adapters.postgres.message_log import PostgresMessageLog
from changarrito.adapters.postgres.migrate import PostgresSchema, migrate
from changarrito.adapters.postgres.notify import Listener
from changarrito.adapters.postgres.payments import PostgresPaymentStore
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.adapters.postgres.queue import MessageQueue
from changarrito.adapters.postgres.queue_stats import QueueStats, queue_stats
from changarrito.adapters.postgres.rotation import check_keyring
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.adapters.postgres.whatsapp_apps import WhatsAppApps
from changarrito.adapters.remote import RemoteResolver
from changarrito.adapters.whatsapp.graph import GraphClient
from changarrito.adapters.whatsapp.intake import WebhookIntake
from changarrito.domain.assistant import Assistant
from changarrito.domain.changes import Change
from changarrito.domain.errors import ConfigurationError
from changarrito.domain.integrations import Integrations
from changarrito.domain.model import PlatformDefaults
from changarrito.domain.payments import Payments
from changarrito.domain.pipeline import MessageLog, Pipeline, PipelineSettings
from changarrito.domain.ports import (
    AuditLog,
    Cipher,
    IntakeStore,
    PaymentStore,
    Resolver,
    SchemaState,
    Store,
    WhatsAppAppIndex,
)
from changarrito.domain.services import CredentialResolver
from changarrito.plugins.catalog import RegistryCatalog
from changarrito.plugins.manager import ProviderRegistry, load_plugins
from changarrito.plugins.platform import platform_defaults
from changarrito.settings import Role, Settings

log = structlog.get_logger("changarrito.bootstrap")

_LISTENER = "changarrito-change-listener"
#: Seconds ``Service.listen`` waits for the listener's first connection (it goes on trying).
LISTEN_WAIT = 5.0


# --- where the data lives -------------------------------------------------------------------


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


# --- the stores -------------------------------------------------------------------------------


@dataclass(slots=True)
class Storage:
    """Where the service keeps its state: PostgreSQL (``postgres_storage``), or in-memory
    fakes in tests. ``cipher``, ``pool``, ``queue``, ``listen_url`` and ``queue_stats`` exist
    only on PostgreSQL (the workers, the operator's commands and the change listener need
    them)."""

    store: Store
    audit: AuditLog
    payments: PaymentStore
    intake: IntakeStore
    apps: WhatsAppAppIndex
    schema: SchemaState
    messages: MessageLog
    cipher: Cipher | None = None
    queue: MessageQueue | None = None
    pool: Pool | None = None
    listen_url: str | None = None
    queue_stats: Callable[[], Awaitable[QueueStats]] | None = None
    #: Called with every change another process announces (the app index's cache, ...).
    on_change: list[Callable[[Change], None]] = field(default_factory=list)

    async def aclose(self) -> None:
        closing = getattr(self.intake, "aclose", None)
        if closing is not None:
            await closing()
        if self.pool is not None:
            await self.pool.close()


async def build_cipher(settings: Settings, pool: Pool, keyring: KeyRing) -> CipherSuite:
    """Encrypts with the configured cipher; decrypts rows written by either, so switching
    ``CHANGARRITO_CIPHER`` and running ``keys rotate`` migrates them."""
    aesgcm = AesGcmCipher(keyring)
    pgcrypto = PgcryptoCipher(pool, keyring)
    if settings.crypto.cipher == "pgcrypto":
        await pgcrypto.ensure_available()
        return CipherSuite(pgcrypto, aesgcm)
    return CipherSuite(aesgcm, pgcrypto)


async def postgres_storage(
    settings: Settings,
    database: Database,
    *,
    apply_migrations: bool = True,
    check_keys: bool = True,
    pool: Pool | None = None,
    cipher: Cipher | None = None,
) -> Storage:
    """Opens the pool (unless given), applies pending migrations, checks that the key ring
    reads the stored rows, and builds every PostgreSQL adapter."""
    pool = pool or await open_pool(database.url, max_size=20)
    try:
        if apply_migrations:
            applied = await migrate(pool)
            if applied:
                log.info("migrations.applied", names=applied)
        cipher = cipher or await build_cipher(settings, pool, database.keyring)
        if check_keys:
            await check_keyring(pool, cipher)
    except BaseException:
        await pool.close()
        raise
    apps = WhatsAppApps(pool, cipher)
    workers = settings.workers
    return Storage(
        store=PostgresStore(pool, cipher),
        audit=PostgresAuditLog(pool),
        payments=PostgresPaymentStore(pool),
        intake=GroupCommit(pool),
        apps=apps,
        schema=PostgresSchema(pool),
        messages=PostgresMessageLog(pool),
        cipher=cipher,
        queue=MessageQueue(pool, lease=workers.lease, max_attempts=workers.max_attempts),
        pool=pool,
        listen_url=database.url,
        queue_stats=lambda: queue_stats(pool),
        on_change=[apps.on_change],
    )


# --- the service --------------------------------------------------------------------------------


@dataclass(slots=True)
class Service:
    """Everything a process needs, built once by ``build_service``; ``aclose`` releases it."""

    settings: Settings
    role: Role
    storage: Storage
    http: HttpClients
    registry: ProviderRegistry
    platform: PlatformDefaults
    cache: TTLResolutionCache
    resolver: Resolver
    metrics: Metrics
    integrations: Integrations
    payments: Payments
    authenticator: TenantAuthenticator
    webhook: WebhookIntake
    graph: GraphClient
    pipeline: Pipeline
    database: Database | None = None
    #: Change notifications (and the workers' wake-ups), on PostgreSQL; see ``listen``.
    listener: Listener | None = None
    #: What forgets cached reads when something changes (``on_change``).
    forgetters: list[Callable[[Change], None]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def listen(self) -> None:
        """Starts the change listener (once; everything that listens registered by now) and
        waits up to ``LISTEN_WAIT`` seconds for it to be listening."""
        if self.listener is None or any(t.get_name() == _LISTENER for t in self.tasks):
            return
        self.listener.on_change(self.on_change)
        ready = asyncio.Event()
        task = asyncio.create_task(self.listener.run(ready=ready), name=_LISTENER)
        self.tasks.append(task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=LISTEN_WAIT)

    def on_change(self, change: Change) -> None:
        """Forgets what a change (announced by this or another process) made stale."""
        for forget in self.forgetters:
            forget(change)

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.storage.aclose()
        await self.http.aclose()


def build_service(
    settings: Settings,
    storage: Storage,
    *,
    role: Role | None = None,
    http: HttpClients | None = None,
    registry: ProviderRegistry | None = None,
    platform: PlatformDefaults | None = None,
    cache: TTLResolutionCache | None = None,
    metrics: Metrics | None = None,
    database: Database | None = None,
) -> Service:
    """Wires ``storage`` to the plugins, the resolver and every use case. Role ``whatsapp``
    resolves credentials through the backend's internal API (``adapters.remote``), the
    others from the store."""
    role = role or settings.role.name
    http = http or HttpClients()
    registry = registry or load_plugins(settings.plugins, http=http)
    platform = platform or platform_defaults(
        settings.plugins.env,
        registry,
        llm_provider=settings.llm.provider,
        llm_model=settings.llm.model,
    )
    cache = cache or TTLResolutionCache(ttl=settings.crypto.credentials_cache_ttl)
    metrics = metrics or Metrics(settings.metrics, queue_stats=storage.queue_stats)
    resolver: Resolver = CredentialResolver(storage.store, cache, platform)
    metrics.watch_cache("credentials", cache)
    forgetters = [*storage.on_change, cache.on_change]
    if role == "whatsapp":
        remote = RemoteResolver(
            http,
            settings.require("BACKEND_URL", settings.role.backend_url),
            settings.require("INTERNAL_API_KEY", settings.auth.internal_api_key),
            platform,
            ttl=settings.crypto.credentials_cache_ttl,
        )
        metrics.watch_cache("backend", remote)
        forgetters.append(remote.on_change)
        resolver = remote
    resolver = MeteredResolver(resolver, metrics)
    wa = settings.whatsapp
    graph = GraphClient(
        http, wa.api_base_url, wa.api_version, timeout=wa.graph_timeout, metrics=metrics
    )
    assistant = Assistant(
        resolver,
        registry,
        platform_fallback=settings.llm.platform_fallback,
        fallback_text=settings.workers.fallback_text,
        metrics=metrics,
    )
    return Service(
        settings=settings,
        role=role,
        storage=storage,
        http=http,
        registry=registry,
        platform=platform,
        cache=cache,
        resolver=resolver,
        metrics=metrics,
        integrations=Integrations(
            storage.store,
            resolver,
            storage.audit,
            RegistryCatalog(registry),
            platform,
            default_llm_model=settings.llm.model,
        ),
        payments=Payments(storage.payments, resolver, registry),
        authenticator=TenantAuthenticator(settings.auth, storage.store, http),
        webhook=WebhookIntake(
            resolver,
            storage.apps,
            storage.intake,
            verify_token=wa.verify_token,
            app_secret=wa.app_secret,
        ),
        graph=graph,
        pipeline=Pipeline(
            senders=resolver,
            assistant=assistant,
            whatsapp=graph,
            messages=storage.messages,
            verifications=storage.store,
            settings=PipelineSettings(
                max_attempts=settings.workers.max_attempts,
                history_limit=settings.workers.history,
            ),
        ),
        database=database,
        listener=_listener(storage),
        forgetters=forgetters,
    )


def _listener(storage: Storage) -> Listener | None:
    return Listener(storage.listen_url) if storage.listen_url else None


async def bootstrap(
    settings: Settings,
    database: Database,
    *,
    role: Role | None = None,
    listen: bool = True,
    apply_migrations: bool = True,
    check_keys: bool = True,
    pool: Pool | None = None,
    cipher: Cipher | None = None,
    http: HttpClients | None = None,
    registry: ProviderRegistry | None = None,
    platform: PlatformDefaults | None = None,
    cache: TTLResolutionCache | None = None,
    metrics: Metrics | None = None,
) -> Service:
    """The production service on PostgreSQL. ``listen`` starts the change listener that keeps
    this process's caches in step with writes made by others."""
    storage = await postgres_storage(
        settings,
        database,
        apply_migrations=apply_migrations,
        check_keys=check_keys,
        pool=pool,
        cipher=cipher,
    )
    try:
        service = build_service(
            settings,
            storage,
            role=role,
            http=http,
            registry=registry,
            platform=platform,
            cache=cache,
            metrics=metrics,
            database=database,
        )
    except BaseException:
        await storage.aclose()
        raise
    if listen:
        await service.listen()
    return service
