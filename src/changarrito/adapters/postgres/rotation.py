"""Key rotation and the start-up key ring check.

Rotation re-encrypts, while the service runs, every credential not under the cipher's primary
(algorithm, key). It walks the table in id order in batches locked ``FOR UPDATE SKIP LOCKED``
and commits each batch, so it never blocks a live write for long, two runs can share the work,
and a run that stops half-way is finished by the next. Rows not yet rotated stay readable as
long as their key is still in the ring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from changarrito.adapters.postgres.credential_rows import context_for
from changarrito.adapters.postgres.errors import translated
from changarrito.adapters.postgres.notify import notify_changes
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.errors import DecryptionFailed, UnknownKey
from changarrito.domain.ports import Cipher

_KEYS_ENV = "CHANGARRITO_ENCRYPTION_KEYS"


@dataclass(frozen=True, slots=True)
class SealedRow:
    id: UUID
    tenant_id: UUID
    integration_type: str
    provider: str
    credentials: dict[str, Any]

    @property
    def context(self) -> bytes:
        return context_for(self.tenant_id, self.integration_type, self.provider)


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What a rotation did. ``skipped`` rows were locked by a concurrent writer: rerun."""

    total: int
    rotated: int = 0
    already_current: int = 0
    failed: tuple[UUID, ...] = field(default=())
    skipped: int = 0

    @property
    def complete(self) -> bool:
        return not self.failed and not self.skipped


async def rotate_keys(
    pool: Pool,
    cipher: Cipher,
    *,
    batch_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> RotationReport:
    """Re-encrypts every row not current under ``cipher``; ``progress(done, total)`` after
    each committed batch. Rows that cannot be decrypted are left as they are and reported."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with translated():
        async with pool.connection() as conn:
            cur = await conn.execute(QUERIES["count_credentials"])
            row = await cur.fetchone()
    total = int(row[0]) if row else 0
    after = UUID(int=0)
    seen = rotated = current = 0
    failed: list[UUID] = []
    while True:
        with translated():
            async with pool.connection() as conn, conn.transaction():
                cur2 = conn.cursor(row_factory=class_row(SealedRow))
                await cur2.execute(
                    QUERIES["credentials_batch_for_update"], {"after": after, "limit": batch_size}
                )
                batch = await cur2.fetchall()
                if not batch:
                    break
                touched: set[UUID] = set()
                for sealed in batch:
                    if cipher.is_current(sealed.credentials):
                        current += 1
                        continue
                    try:
                        plaintext = await cipher.decrypt(sealed.credentials, sealed.context)
                    except DecryptionFailed:
                        failed.append(sealed.id)
                        continue
                    envelope = await cipher.encrypt(plaintext, sealed.context)
                    await conn.execute(
                        QUERIES["replace_ciphertext"],
                        {"id": sealed.id, "credentials": Jsonb(envelope)},
                    )
                    rotated += 1
                    touched.add(sealed.tenant_id)
                await notify_changes(conn, sorted(touched), [])
        seen += len(batch)
        after = batch[-1].id
        if progress is not None:
            progress(min(seen, total), max(total, seen))
    return RotationReport(
        total=total,
        rotated=rotated,
        already_current=current,
        failed=tuple(failed),
        skipped=max(0, total - seen),
    )


async def check_keyring(pool: Pool, cipher: Cipher) -> None:
    """Decrypts one stored row per distinct (cipher, key id) present; raises ``UnknownKey`` or
    ``DecryptionFailed`` with one line naming the key when the ring cannot read them."""
    with translated():
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=class_row(SealedRow))
            await cur.execute(QUERIES["sample_per_key"])
            samples = await cur.fetchall()
    for sealed in samples:
        kid = sealed.credentials.get("kid")
        alg = sealed.credentials.get("alg")
        try:
            await cipher.decrypt(sealed.credentials, sealed.context)
        except UnknownKey:
            raise UnknownKey(
                f"stored credentials use key {kid!r}, which is not in the configured key ring "
                f"({_KEYS_ENV})"
            ) from None
        except DecryptionFailed:
            raise DecryptionFailed(
                f"stored credentials under key {kid!r} ({alg}) cannot be decrypted with the "
                f"configured key ring ({_KEYS_ENV})"
            ) from None
