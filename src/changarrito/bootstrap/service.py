"""Wires a ``Storage`` to everything else and returns the ``Service``; ``bootstrap`` is the
production path (PostgreSQL storage, then the service, then its change listener)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog

from changarrito.adapters.cache import TTLResolutionCache
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.events_http import HttpEventPoster
from changarrito.adapters.http import HttpClients
from changarrito.adapters.jwt_auth import TenantAuthenticator
from changarrito.adapters.metered_resolver import MeteredResolver
from changarrito.adapters.metrics import Metrics
from changarrito.adapters.postgres.events import set_enabled
from changarrito.adapters.postgres.notify import Listener
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.remote import RemoteResolver
from changarrito.adapters.whatsapp.graph import GraphClient
from changarrito.adapters.whatsapp.intake import WebhookIntake
from changarrito.bootstrap.database import Database
from changarrito.bootstrap.storage import Storage, postgres_storage
from changarrito.domain.assistant import Assistant, TranscriptionPolicy
from changarrito.domain.budgets import Budgets
from changarrito.domain.changes import Change
from changarrito.domain.conversations import ConversationSettings
from changarrito.domain.event_delivery import EventDelivery
from changarrito.domain.events import Receiver
from changarrito.domain.inbox import Inbox, TemplatePolicy
from changarrito.domain.integrations import Integrations
from changarrito.domain.llm import PlatformLimits
from changarrito.domain.model import PlatformDefaults
from changarrito.domain.payment_notices import PaymentNotices
from changarrito.domain.payments import Payments
from changarrito.domain.pipeline import Pipeline, PipelineSettings
from changarrito.domain.ports import (
    Cipher,
    Resolver,
)
from changarrito.domain.reading import MediaReader
from changarrito.domain.services import CredentialResolver
from changarrito.domain.template_sync import TemplateCatalog
from changarrito.domain.tenants import Tenants
from changarrito.domain.usage import UsageReports
from changarrito.plugins.catalog import RegistryCatalog
from changarrito.plugins.manager import ProviderRegistry, load_plugins
from changarrito.plugins.platform import platform_defaults
from changarrito.settings import Role, Settings

log = structlog.get_logger("changarrito.bootstrap")

_LISTENER = "changarrito-change-listener"
#: Seconds ``Service.listen`` waits for the listener's first connection (it goes on trying).
LISTEN_WAIT = 5.0


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
    tenants: Tenants
    integrations: Integrations
    payments: Payments
    authenticator: TenantAuthenticator
    webhook: WebhookIntake
    graph: GraphClient
    pipeline: Pipeline
    database: Database | None = None
    #: The shops' conversations (the inbox API), on PostgreSQL.
    inbox: Inbox | None = None
    #: The message templates (the templates API, the webhook's updates, the schedule).
    templates: TemplateCatalog | None = None
    #: The payment notices the workers send (on PostgreSQL).
    notices: PaymentNotices | None = None
    #: What delivers events to the platform's backend (``CHANGARRITO_EVENTS_URL`` set).
    events: EventDelivery | None = None
    #: The usage ledger's reports (on PostgreSQL).
    usage: UsageReports | None = None
    #: The budgets on platform-sourced usage (on PostgreSQL).
    budgets: Budgets | None = None
    #: Change notifications (and the workers' wake-ups), on PostgreSQL; see ``listen``.
    listener: Listener | None = None
    #: What forgets cached reads when something changes (``on_change``).
    forgetters: list[Callable[[Change], None]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def listen(self) -> None:
        """Starts the change listener (once; everything that listens registered by now) and
        waits up to ``LISTEN_WAIT`` seconds for it to be listening. The long-running
        processes call it, so it also says on the database whether events are filed
        (``CHANGARRITO_EVENTS_URL``); a one-off command never changes that."""
        if self.storage.pool is not None and self.storage.events is not None:
            await set_enabled(self.storage.pool, self.settings.events.on)
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
    fingerprint_key: bytes | None = None,
) -> Service:
    """Wires ``storage`` to the plugins, the resolver and every use case. Role ``whatsapp``
    resolves credentials through the backend's internal API (``adapters.remote``), the
    others from the store."""
    role = role or settings.role.name
    private_urls = settings.plugins.allow_private_urls
    http = http or HttpClients(private=private_urls)
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
    budgets = Budgets(storage.budgets) if storage.budgets is not None else None
    assistant = Assistant(
        resolver,
        registry,
        platform_fallback=settings.llm.platform_fallback,
        platform_limits=PlatformLimits(
            max_tokens=settings.llm.platform_max_tokens,
            max_prompt_chars=settings.llm.platform_max_prompt_chars,
        ),
        fallback_text=settings.workers.fallback_text,
        conversations=ConversationSettings(
            quiet_period=settings.workers.quiet_period,
            handoff_idle=timedelta(hours=settings.workers.handoff_idle_hours),
            handoff_message=settings.workers.handoff_message,
            text_only_reply=settings.workers.text_only_reply,
        ),
        transcription=TranscriptionPolicy(
            provider=settings.llm.transcription_provider,
            model=settings.llm.transcription_model,
            platform_fallback=settings.llm.transcription_platform_fallback,
        ),
        metrics=metrics,
        budgets=budgets,
    )
    templates = TemplateCatalog(storage.templates, resolver, graph) if storage.templates else None
    webhook = WebhookIntake(
        resolver,
        storage.apps,
        storage.intake,
        verify_token=wa.verify_token,
        app_secret=wa.app_secret,
        quiet_period=assistant.quiet_period,
        on_events=templates.apply_events if templates else None,
    )
    forgetters.append(webhook.on_change)
    inbox = None
    if storage.conversations is not None:
        inbox = Inbox(
            storage.conversations,
            resolver,
            graph,
            templates=storage.templates,
            policy=TemplatePolicy(
                tenant_categories=wa.template_categories,
                platform_categories=wa.platform_template_categories,
                platform_templates=wa.platform_templates,
            ),
        )
    notices = None
    if inbox is not None and storage.notices is not None:
        notices = PaymentNotices(storage.notices, inbox)
    events = None
    receiver = settings.events
    if storage.events is not None and receiver.url and receiver.secret:
        poster = HttpEventPoster(http)
        events = EventDelivery(
            storage.events,
            poster,
            Receiver(receiver.url, receiver.secret),
            retry_base=settings.workers.retry_base,
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
        tenants=Tenants(storage.store, storage.audit),
        integrations=Integrations(
            storage.store,
            resolver,
            storage.audit,
            RegistryCatalog(registry, private_urls=private_urls, resolve=http.guard.address),
            platform,
            default_llm_model=settings.llm.model,
            fingerprint_key=fingerprint_key or _fingerprint_key(settings, database),
        ),
        payments=Payments(storage.payments, resolver, registry),
        authenticator=TenantAuthenticator(settings.auth, storage.store, http),
        webhook=webhook,
        graph=graph,
        pipeline=Pipeline(
            senders=resolver,
            assistant=assistant,
            whatsapp=graph,
            messages=storage.messages,
            verifications=storage.store,
            reader=MediaReader(
                whatsapp=graph, assistant=assistant, log=storage.messages, metrics=metrics
            ),
            settings=PipelineSettings(
                max_attempts=settings.workers.max_attempts,
                history_limit=settings.workers.history,
                budget_exceeded=settings.workers.budget_exceeded,
            ),
        ),
        database=database,
        inbox=inbox,
        templates=templates,
        notices=notices,
        events=events,
        usage=UsageReports(storage.usage) if storage.usage else None,
        budgets=budgets,
        listener=_listener(storage),
        forgetters=forgetters,
    )


def _fingerprint_key(settings: Settings, database: Database | None) -> bytes:
    """The key of the secret fingerprints tenants are shown: from the database's key ring,
    else the configured one; a storage with neither (the in-memory fakes) gets a key of its
    own, as short-lived as its data."""
    if database is not None:
        return database.keyring.fingerprint_key()
    if settings.crypto.encryption_keys:
        return KeyRing.parse(settings.crypto.encryption_keys).fingerprint_key()
    return KeyRing.generate().fingerprint_key()


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
