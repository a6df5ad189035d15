"""The stores of one process: the PostgreSQL adapters (``postgres_storage``), or the in-memory
fakes the tests build the same ``Storage`` from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.crypto.pgcrypto import PgcryptoCipher
from changarrito.adapters.crypto.suite import CipherSuite
from changarrito.adapters.postgres.audit import PostgresAuditLog
from changarrito.adapters.postgres.budgets import PostgresBudgets
from changarrito.adapters.postgres.conversations import PostgresConversations
from changarrito.adapters.postgres.events import PostgresEvents
from changarrito.adapters.postgres.group_commit import GroupCommit
from changarrito.adapters.postgres.message_log import PostgresMessageLog
from changarrito.adapters.postgres.migrate import PostgresSchema, migrate
from changarrito.adapters.postgres.payments import PostgresPaymentStore
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.adapters.postgres.queue import MessageQueue
from changarrito.adapters.postgres.queue_stats import QueueStats, queue_stats
from changarrito.adapters.postgres.rate_limits import PostgresRateLimits
from changarrito.adapters.postgres.rotation import check_keyring
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.adapters.postgres.templates import PostgresTemplates
from changarrito.adapters.postgres.usage import PostgresUsage
from changarrito.adapters.postgres.whatsapp_apps import WhatsAppApps
from changarrito.bootstrap.database import Database
from changarrito.domain.budgets import BudgetStore
from changarrito.domain.changes import Change
from changarrito.domain.inbox import ConversationStore
from changarrito.domain.ports import (
    AuditLog,
    Cipher,
    EventStore,
    IntakeStore,
    MessageLog,
    NoticeStore,
    PaymentStore,
    RateLimiter,
    SchemaState,
    Store,
    TemplateStore,
    WhatsAppAppIndex,
)
from changarrito.domain.usage import UsageStore
from changarrito.settings import Settings

log = structlog.get_logger("changarrito.bootstrap")


@dataclass(slots=True)
class Storage:
    """Where the service keeps its state: PostgreSQL (``postgres_storage``), or in-memory
    fakes in tests. ``cipher``, ``pool``, ``queue``, ``listen_url`` and ``queue_stats`` exist
    only on PostgreSQL (the workers, the operator's commands and the change listener need
    them). Without ``rate_limits`` the tenant API has no rate limits (fakes that test them
    pass one)."""

    store: Store
    audit: AuditLog
    payments: PaymentStore
    intake: IntakeStore
    apps: WhatsAppAppIndex
    schema: SchemaState
    messages: MessageLog
    cipher: Cipher | None = None
    rate_limits: RateLimiter | None = None
    queue: MessageQueue | None = None
    pool: Pool | None = None
    listen_url: str | None = None
    queue_stats: Callable[[], Awaitable[QueueStats]] | None = None
    conversations: ConversationStore | None = None
    #: The synced message templates (on PostgreSQL only).
    templates: TemplateStore | None = None
    #: The payment notices waiting to be sent (on PostgreSQL only: the payment store).
    notices: NoticeStore | None = None
    #: The outbox of events for the platform's backend (on PostgreSQL only).
    events: EventStore | None = None
    #: The usage ledger's roll-ups (on PostgreSQL only).
    usage: UsageStore | None = None
    #: The budgets on platform-sourced usage (on PostgreSQL only).
    budgets: BudgetStore | None = None
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
    store = PostgresStore(pool, cipher)
    workers = settings.workers
    payments = PostgresPaymentStore(pool)
    return Storage(
        store=store,
        audit=PostgresAuditLog(pool),
        payments=payments,
        notices=payments,
        events=PostgresEvents(pool),
        usage=PostgresUsage(pool),
        budgets=PostgresBudgets(pool),
        intake=GroupCommit(pool),
        apps=apps,
        schema=PostgresSchema(pool),
        messages=PostgresMessageLog(pool),
        cipher=cipher,
        rate_limits=PostgresRateLimits(pool),
        queue=MessageQueue(pool, lease=workers.lease, max_attempts=workers.max_attempts),
        pool=pool,
        listen_url=database.url,
        queue_stats=lambda: queue_stats(pool),
        conversations=PostgresConversations(pool),
        templates=PostgresTemplates(pool),
        on_change=[apps.on_change, store.on_change],
    )
