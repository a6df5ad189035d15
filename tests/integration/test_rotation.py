"""Key rotation while the service runs, and the start-up key ring check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import psycopg
import pytest

from changarrito.adapters.crypto import CipherSuite
from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.crypto.pgcrypto import PgcryptoCipher
from changarrito.adapters.postgres.migrate import migrate
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.adapters.postgres.rotation import check_keyring, rotate_keys
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.domain.errors import DecryptionFailed, UnknownKey
from changarrito.domain.model import Credential, IntegrationType, Secrets


async def seed(store: PostgresStore, count: int) -> dict[UUID, str]:
    """``count`` tenants, each with one LLM key; returns tenant id -> key."""
    keys: dict[UUID, str] = {}
    for i in range(count):
        tenant = await store.create_tenant(f"Rotation {i}")
        keys[tenant.id] = f"sk-rotate-{i}-{tenant.id.hex[:8]}"
        await store.save_credential(
            Credential(
                tenant.id, IntegrationType.LLM, "openai", Secrets({"apiKey": keys[tenant.id]})
            )
        )
    return keys


async def read_all(store: PostgresStore, keys: dict[UUID, str]) -> None:
    for tenant_id, key in keys.items():
        [credential] = await store.credentials_for(tenant_id)
        assert credential.secrets["apiKey"] == key


async def kids(database_url: str, tenant_ids: list[UUID]) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT credentials->>'alg' || ':' || (credentials->>'kid') "
            "FROM tenant_integration_credentials WHERE tenant_id = ANY(%s)",
            (tenant_ids,),
        ).fetchall()
    return {r[0] for r in rows}


@pytest.fixture
async def own_pool(fresh_database_url: str) -> AsyncIterator[Pool]:
    """A private migrated database: rotation walks the whole table."""
    pool = await open_pool(fresh_database_url, max_size=4)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


async def test_a_rotation_stopped_half_way_leaves_every_row_readable_and_a_rerun_finishes(
    own_pool: Pool, fresh_database_url: str
) -> None:
    old = KeyRing.generate("old")
    keys = await seed(PostgresStore(own_pool, AesGcmCipher(old)), 5)
    new = old.with_new_primary("new")
    store = PostgresStore(own_pool, AesGcmCipher(new))

    class Stop(Exception):
        pass

    def stop_after_first_batch(done: int, total: int) -> None:
        assert (done, total) == (1, 5)
        raise Stop

    with pytest.raises(Stop):
        await rotate_keys(
            own_pool, AesGcmCipher(new), batch_size=1, progress=stop_after_first_batch
        )
    assert await kids(fresh_database_url, list(keys)) == {"aesgcm:old", "aesgcm:new"}
    await read_all(store, keys)  # mid-rotation: old and new rows both readable

    seen: list[tuple[int, int]] = []
    report = await rotate_keys(
        own_pool, AesGcmCipher(new), batch_size=2, progress=lambda d, t: seen.append((d, t))
    )
    assert (report.rotated, report.already_current, report.failed) == (4, 1, ())
    assert report.complete
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert await kids(fresh_database_url, list(keys)) == {"aesgcm:new"}
    await read_all(store, keys)

    again = await rotate_keys(own_pool, AesGcmCipher(new))
    assert (again.rotated, again.already_current) == (0, 5)


async def test_after_rotation_a_ring_without_the_new_key_reads_nothing(own_pool: Pool) -> None:
    old = KeyRing.generate("old")
    keys = await seed(PostgresStore(own_pool, AesGcmCipher(old)), 3)
    await rotate_keys(own_pool, AesGcmCipher(old.with_new_primary("new")))
    stale = PostgresStore(own_pool, AesGcmCipher(old))
    for tenant_id in keys:
        with pytest.raises(UnknownKey):
            await stale.credentials_for(tenant_id)


async def test_rows_that_cannot_be_decrypted_are_reported_and_left_alone(own_pool: Pool) -> None:
    lost = KeyRing.generate("lost")
    await seed(PostgresStore(own_pool, AesGcmCipher(lost)), 1)
    kept = KeyRing.generate("kept")
    keys = await seed(PostgresStore(own_pool, AesGcmCipher(kept)), 2)
    rotated = kept.with_new_primary("next")
    report = await rotate_keys(own_pool, AesGcmCipher(rotated))
    assert report.rotated == 2 and len(report.failed) == 1 and not report.complete
    await read_all(PostgresStore(own_pool, AesGcmCipher(rotated)), keys)


@pytest.mark.pgcrypto
async def test_rotation_moves_rows_to_another_cipher_when_the_cipher_is_switched(
    own_pool: Pool, fresh_database_url: str
) -> None:
    ring = KeyRing.generate("k1")
    aes, pgp = AesGcmCipher(ring), PgcryptoCipher(own_pool, ring)
    await pgp.ensure_available()
    keys = await seed(PostgresStore(own_pool, aes), 2)
    switched = CipherSuite(pgp, aes)
    report = await rotate_keys(own_pool, switched)
    assert report.rotated == 2
    assert await kids(fresh_database_url, list(keys)) == {"pgcrypto:k1"}
    await read_all(PostgresStore(own_pool, switched), keys)


async def test_the_keyring_check_passes_on_an_empty_table_and_a_matching_ring(
    own_pool: Pool,
) -> None:
    ring = KeyRing.generate("k1")
    await check_keyring(own_pool, AesGcmCipher(ring))
    await seed(PostgresStore(own_pool, AesGcmCipher(ring)), 2)
    await check_keyring(own_pool, AesGcmCipher(ring.with_new_primary("k2")))


async def test_the_keyring_check_names_a_key_missing_from_the_ring(own_pool: Pool) -> None:
    await seed(PostgresStore(own_pool, AesGcmCipher(KeyRing.generate("k1"))), 1)
    with pytest.raises(UnknownKey) as caught:
        await check_keyring(own_pool, AesGcmCipher(KeyRing.generate("k9")))
    message = str(caught.value)
    assert "'k1'" in message and "CHANGARRITO_ENCRYPTION_KEYS" in message and "\n" not in message


async def test_the_keyring_check_detects_a_wrong_key_under_the_right_kid(own_pool: Pool) -> None:
    await seed(PostgresStore(own_pool, AesGcmCipher(KeyRing.generate("k1"))), 1)
    with pytest.raises(DecryptionFailed, match=r"under key 'k1'.*CHANGARRITO_ENCRYPTION_KEYS"):
        await check_keyring(own_pool, AesGcmCipher(KeyRing.generate("k1")))
