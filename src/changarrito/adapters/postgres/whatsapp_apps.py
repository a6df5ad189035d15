"""The tenants' own Meta apps, as the webhook needs them: verify tokens and app secrets.

Meta's handshake names no tenant, so a verify token must be checked against every active
tenant's; and a webhook about a business account with no phone number (``account_update``...)
is signed by whichever app owns that account. Decrypting every credential on each request
would not do, so this index decrypts each tenant's WhatsApp credential once and keeps:

- the SHA-256 digests of the verify tokens (a lookup of the digest of the token presented
  reveals nothing through its timing);
- each tenant's app secret, and which tenant owns each business account id: the account
  Graph confirmed for one of its numbers (``tenant_whatsapp_numbers.business_account_id``, a
  confirmed claim), never the ``businessAccountId`` its credential merely names. Two tenants
  confirmed on one account: the older claim owns it.

It loads everything on first use, then reloads only the tenants named by change
notifications (``on_change``, fed by the Postgres listener); a lost connection (``all``)
reloads everything. A token not found triggers one full reload at most every
``reload_interval`` seconds, in case a notification was missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import structlog
from psycopg.rows import class_row

from changarrito.adapters.postgres.credential_rows import CredentialRow, context_for
from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.changes import Change
from changarrito.domain.errors import DecryptionFailed
from changarrito.domain.ports import Cipher

log = structlog.get_logger(__name__)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class _App:
    verify_digest: bytes | None
    app_secret: str | None = field(repr=False)
    #: The business accounts Graph confirmed for the tenant's numbers, with when each number
    #: was claimed.
    accounts: tuple[tuple[str, datetime], ...] = ()


class WhatsAppApps:
    def __init__(self, pool: Pool, cipher: Cipher, *, reload_interval: float = 30.0) -> None:
        self.pool = pool
        self.cipher = cipher
        self.reload_interval = reload_interval
        self._apps: dict[UUID, _App] = {}
        self._digests: frozenset[bytes] = frozenset()
        self._wabas: dict[str, UUID] = {}
        self._loaded = False
        self._dirty: set[UUID] = set()
        self._last_full = 0.0
        self._lock = asyncio.Lock()

    def on_change(self, change: Change) -> None:
        """A change notification (see ``adapters.postgres.notify``)."""
        if change.tenant_id is not None:
            self._dirty.add(change.tenant_id)
        elif change.everything:
            self._loaded = False
        # else a number: numbers change with their tenant, which is notified too

    async def verify_token_matches(self, token: str) -> bool:
        """True when ``token`` is the verify token of an active tenant's WhatsApp credential."""
        if not token:
            return False
        await self._refresh()
        if digest(token) in self._digests:
            return True
        if time.monotonic() - self._last_full >= self.reload_interval:
            self._loaded = False
            await self._refresh()
            return digest(token) in self._digests
        return False

    async def app_secret(self, tenant_id: UUID) -> str | None:
        """The tenant's own app secret, or ``None`` (the platform's app then signs)."""
        await self._refresh()
        app = self._apps.get(tenant_id)
        return app.app_secret if app else None

    async def tenant_of_account(self, waba_id: str) -> UUID | None:
        """The tenant with the oldest confirmed claim on this WhatsApp Business Account."""
        await self._refresh()
        return self._wabas.get(waba_id)

    async def _refresh(self) -> None:
        if self._loaded and not self._dirty:
            return
        async with self._lock:
            if not self._loaded:
                self._dirty.clear()
                self._last_full = time.monotonic()
                apps = await self._load(None)
                self._apps = apps
                self._loaded = True
            elif self._dirty:
                tenants, self._dirty = self._dirty, set()
                fresh = await self._load(tenants)
                for tenant in tenants:
                    self._apps.pop(tenant, None)
                self._apps.update(fresh)
            else:
                return
            self._digests = frozenset(
                a.verify_digest for a in self._apps.values() if a.verify_digest
            )
            claims = sorted(
                (since, str(tenant), waba, tenant)
                for tenant, app in self._apps.items()
                for waba, since in app.accounts
            )
            self._wabas = {}
            for *_, waba, tenant in claims:
                self._wabas.setdefault(waba, tenant)

    async def _load(self, tenants: Iterable[UUID] | None) -> dict[UUID, _App]:
        params = {"tenant_ids": list(tenants) if tenants is not None else None}
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(CredentialRow))
                await cur.execute(QUERIES["whatsapp_credentials"], params)
                rows = await cur.fetchall()
                claimed = await conn.execute(QUERIES["confirmed_accounts"], params)
                accounts: dict[UUID, list[tuple[str, datetime]]] = {}
                for tenant_id, waba, since in await claimed.fetchall():
                    accounts.setdefault(tenant_id, []).append((waba, since))
        apps: dict[UUID, _App] = {}
        for row in sorted(rows, key=lambda r: (r.priority, -r.updated_at.timestamp())):
            if row.tenant_id in apps:
                continue  # the winning credential came first (resolution's order)
            secrets = await self._decrypt(row)
            if secrets is None:
                continue
            token, secret = secrets.get("verifyToken"), secrets.get("appSecret")
            apps[row.tenant_id] = _App(
                verify_digest=digest(token) if token else None,
                app_secret=secret or None,
                accounts=tuple(accounts.get(row.tenant_id, ())),
            )
        return apps

    async def _decrypt(self, row: CredentialRow) -> dict[str, str] | None:
        context = context_for(row.tenant_id, row.integration_type, row.provider)
        try:
            data = json.loads(await self.cipher.decrypt(row.credentials, context))
        except (DecryptionFailed, ValueError) as exc:
            log.warning(
                "whatsapp.apps.unreadable_credential",
                tenant_id=str(row.tenant_id),
                credential_id=str(row.id),
                error=type(exc).__name__,
            )
            return None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None
