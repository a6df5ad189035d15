"""The tenant and credential store on PostgreSQL (``TenantStore`` and ``CredentialStore``).

Secrets are sealed per row (``credential_rows``: a ciphertext copied onto another row fails
to decrypt). Every write notifies ``changarrito_changes`` in its own transaction
(``notify.notify_changes``), so other processes drop their cached resolutions when it commits.
A ``tenant_whatsapp_numbers`` row is a confirmed claim (``0009_whatsapp_claims.sql``): the
number routes to its tenant, and its ``business_account_id`` is the account Graph confirmed.

``number_with_credentials``, the webhook's uncached lookup, remembers for a second the numbers
nobody owns (``cache.UnknownNumbers``: fed this store's ``on_change``, forgotten by a claim
here at once), so that bodies for a number no tenant claimed cost no round trip each; and
concurrent lookups of one number share one round trip.
``number_owner`` (the claim check, ``route``) always reads the database.
"""

from __future__ import annotations

import json
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import TupleRow, class_row
from psycopg.types.json import Jsonb

from changarrito.adapters.cache import UnknownNumbers
from changarrito.adapters.postgres.credential_rows import (
    CredentialRow,
    context_for,
    open_row,
    to_credential,
)
from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.events import emit
from changarrito.adapters.postgres.notify import notify_changes
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.adapters.single_flight import SingleFlight
from changarrito.domain.changes import Change
from changarrito.domain.errors import Conflict, NotConfigured, TenantNotFound, ValidationFailed
from changarrito.domain.model import Credential, IntegrationType, Tenant, WhatsAppNumber
from changarrito.domain.ports import Cipher

_NumberLookup = tuple[WhatsAppNumber | None, list[Credential]]


class PostgresStore:
    def __init__(self, pool: Pool, cipher: Cipher, unknown: UnknownNumbers | None = None) -> None:
        self.pool = pool
        self.cipher = cipher
        #: Numbers nobody owned a moment ago (see the module docstring).
        self.unknown = unknown if unknown is not None else UnknownNumbers()
        self._lookups: SingleFlight[str, _NumberLookup] = SingleFlight()

    def on_change(self, change: Change) -> None:
        """A change notification (see ``adapters.postgres.notify``)."""
        self.unknown.on_change(change)

    # -- tenants -------------------------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        if not name.strip():
            raise ValidationFailed("a tenant needs a non-empty name")
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(Tenant))
                await cur.execute(QUERIES["create_tenant"], {"name": name.strip()})
                tenant = await cur.fetchone()
        assert tenant is not None
        return tenant

    async def get_tenant(self, tenant_id: UUID) -> Tenant:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(Tenant))
                await cur.execute(QUERIES["get_tenant"], {"tenant_id": tenant_id})
                tenant = await cur.fetchone()
        if tenant is None:
            raise TenantNotFound(f"no tenant {tenant_id}")
        return tenant

    async def list_tenants(self) -> list[Tenant]:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(Tenant))
                await cur.execute(QUERIES["list_tenants"])
                return await cur.fetchall()

    async def delete_tenant(self, tenant_id: UUID) -> None:
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(QUERIES["delete_tenant"], {"tenant_id": tenant_id})
                rows = await cur.fetchall()
                if not rows:
                    raise TenantNotFound(f"no tenant {tenant_id}")
                await notify_changes(conn, [tenant_id], [r[0] for r in rows if r[0] is not None])

    # -- credentials ---------------------------------------------------------------------

    async def credentials_for(
        self, tenant_id: UUID, integration_type: IntegrationType | None = None
    ) -> list[Credential]:
        params = {
            "tenant_id": tenant_id,
            "integration_type": integration_type.value if integration_type else None,
        }
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["credentials_for"], params)
                names = [c.name for c in cur.description or ()]
                rows = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
        if not rows:  # the query joins from tenants: no row at all means no such tenant
            raise TenantNotFound(f"no tenant {tenant_id}")
        stored = [
            CredentialRow(**{k: v for k, v in r.items() if k != "owner_id"})
            for r in rows
            if r["id"] is not None
        ]
        return [await open_row(self.cipher, row) for row in stored]

    async def save_credential(
        self, credential: Credential, number: WhatsAppNumber | None = None
    ) -> Credential:
        if number is not None and number.tenant_id != credential.tenant_id:
            raise ValidationFailed("a WhatsApp number can only be claimed by its own tenant")
        itype = IntegrationType(credential.integration_type)
        plaintext = json.dumps(credential.secrets.reveal(), sort_keys=True).encode()
        context = context_for(credential.tenant_id, itype, credential.provider)
        envelope = await self.cipher.encrypt(plaintext, context)
        params = {
            "id": credential.id,
            "tenant_id": credential.tenant_id,
            "integration_type": itype.value,
            "provider": credential.provider,
            "credentials": Jsonb(envelope),
            "config": Jsonb(dict(credential.config)),
            "is_active": credential.is_active,
            "is_verified": credential.is_verified,
            "priority": credential.priority,
            "verified_at": credential.verified_at,
            "verification_error": credential.verification_error,
        }
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=class_row(CredentialRow))
                await cur.execute(QUERIES["upsert_credential"], params)
                row = await cur.fetchone()
                assert row is not None
                numbers = []
                if number is not None:
                    await self._claim(conn, number)
                    numbers.append(number.phone_number_id)
                await notify_changes(conn, [credential.tenant_id], numbers)
        if number is not None:  # claimed: routed here at once, not after the notification
            self.unknown.on_change(Change(phone_number_id=number.phone_number_id))
        return to_credential(row, credential.secrets)

    async def delete_credentials(
        self, tenant_id: UUID, integration_type: IntegrationType, provider: str | None = None
    ) -> int:
        itype = IntegrationType(integration_type)
        params = {"tenant_id": tenant_id, "integration_type": itype.value, "provider": provider}
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                await _require_tenant(conn, tenant_id)
                cur = await conn.execute(QUERIES["delete_credentials_of_type"], params)
                deleted = len(await cur.fetchall())
                numbers: list[str] = []
                if itype is IntegrationType.WHATSAPP:
                    cur = await conn.execute(
                        QUERIES["delete_numbers_of_tenant"], {"tenant_id": tenant_id}
                    )
                    numbers = [r[0] for r in await cur.fetchall()]
                await notify_changes(conn, [tenant_id], numbers)
        return deleted

    async def set_verified(
        self,
        tenant_id: UUID,
        integration_type: IntegrationType,
        provider: str,
        verified: bool,
        error: str | None = None,
    ) -> None:
        itype = IntegrationType(integration_type)
        params = {
            "tenant_id": tenant_id,
            "integration_type": itype.value,
            "provider": provider,
            "verified": verified,
            "error": error,
        }
        with translated():
            async with self.pool.connection() as conn, conn.transaction():
                cur = await conn.execute(QUERIES["set_verified"], params)
                row = await cur.fetchone()
                if row is None:
                    await _require_tenant(conn, tenant_id)
                    raise NotConfigured(
                        f"tenant {tenant_id} has no stored {itype.value} ({provider}) credential"
                    )
                if row[1] and not verified:  # it worked, and stopped: a revoked key
                    data = {
                        "tenantId": str(tenant_id),
                        "integration": itype.value,
                        "provider": provider,
                        "reason": error,
                    }
                    key = f"credential:{tenant_id}:{itype.value}"
                    await emit(conn, "credential.unverified", tenant_id, key, data)
                await notify_changes(conn, [tenant_id], [])

    # -- WhatsApp numbers ----------------------------------------------------------------

    async def number_owner(self, phone_number_id: str) -> WhatsAppNumber | None:
        with translated():
            async with self.pool.connection() as conn:
                cur = conn.cursor(row_factory=class_row(WhatsAppNumber))
                await cur.execute(QUERIES["number_owner"], {"phone_number_id": phone_number_id})
                return await cur.fetchone()

    async def number_with_credentials(
        self, phone_number_id: str
    ) -> tuple[WhatsAppNumber | None, list[Credential]]:
        if phone_number_id in self.unknown:
            return None, []
        # Concurrent lookups of one number share one round trip: the bodies that arrive while
        # the first is in flight (say, once a second when an unknown number expires) would
        # otherwise each take a connection from the group commit.
        return await self._lookups.run(
            phone_number_id, lambda: self._number_with_credentials(phone_number_id)
        )

    async def _number_with_credentials(self, phone_number_id: str) -> _NumberLookup:
        generation = self.unknown.generation
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    QUERIES["number_with_credentials"], {"phone_number_id": phone_number_id}
                )
                names = [c.name for c in cur.description or ()]
                rows = [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
        if not rows:
            self.unknown.add(phone_number_id, generation)
            return None, []
        first = rows[0]
        number = WhatsAppNumber(
            tenant_id=first["number_tenant_id"],
            phone_number_id=first["phone_number_id"],
            phone_number=first["phone_number"],
            display_name=first["display_name"],
            is_active=first["number_is_active"],
            id=first["number_id"],
            business_account_id=first["business_account_id"],
        )
        fields = set(CredentialRow.__dataclass_fields__)
        stored = [
            CredentialRow(**{k: v for k, v in r.items() if k in fields})
            for r in rows
            if r["id"] is not None
        ]
        return number, [await open_row(self.cipher, row) for row in stored]

    async def numbers_for(self, tenant_id: UUID) -> list[WhatsAppNumber]:
        with translated():
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["numbers_for"], {"tenant_id": tenant_id})
                rows = await cur.fetchall()
        if not rows:
            raise TenantNotFound(f"no tenant {tenant_id}")
        return [
            WhatsAppNumber(
                tenant_id=r[1],
                phone_number_id=r[2],
                phone_number=r[3],
                display_name=r[4],
                is_active=r[5],
                id=r[6],
                business_account_id=r[7],
            )
            for r in rows
            if r[2] is not None
        ]

    # -- helpers -------------------------------------------------------------------------

    async def _claim(self, conn: AsyncConnection[TupleRow], number: WhatsAppNumber) -> None:
        params = {
            "id": number.id,
            "tenant_id": number.tenant_id,
            "phone_number_id": number.phone_number_id,
            "phone_number": number.phone_number,
            "display_name": number.display_name,
            "is_active": number.is_active,
            "business_account_id": number.business_account_id,
        }
        cur = await conn.execute(QUERIES["claim_number"], params)
        if await cur.fetchone() is None:
            # Deliberately silent about who owns it.
            raise Conflict(
                f"WhatsApp phone number id {number.phone_number_id} is already registered "
                "to another account"
            )


async def _require_tenant(conn: AsyncConnection[TupleRow], tenant_id: UUID) -> None:
    cur = await conn.execute(QUERIES["tenant_exists"], {"tenant_id": tenant_id})
    row = await cur.fetchone()
    if not (row and row[0]):
        raise TenantNotFound(f"no tenant {tenant_id}")
