"""The PostgreSQL store: tenants, encrypted credentials and WhatsApp numbers."""

from __future__ import annotations

import json
import secrets
from uuid import UUID, uuid4

import psycopg
import pytest

from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.crypto.pgcrypto import PgcryptoCipher
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.store import PostgresStore
from changarrito.domain.errors import (
    Conflict,
    DecryptionFailed,
    NotConfigured,
    TenantNotFound,
    ValidationFailed,
)
from changarrito.domain.model import Credential, IntegrationType, Secrets, WhatsAppNumber
from changarrito.domain.ports import Cipher, CredentialStore, TenantStore

ALGS = ["aesgcm", pytest.param("pgcrypto", marks=pytest.mark.pgcrypto)]


@pytest.fixture
def store(pool: Pool, cipher: AesGcmCipher) -> PostgresStore:
    return PostgresStore(pool, cipher)


def llm_credential(tenant_id: UUID, api_key: str = "sk-test-abcdef123456") -> Credential:
    return Credential(
        tenant_id=tenant_id,
        integration_type=IntegrationType.LLM,
        provider="openai",
        secrets=Secrets({"apiKey": api_key}),
        config={"model": "gpt-4o-mini", "temperature": 0.2},
    )


def whatsapp(tenant_id: UUID, token: str) -> tuple[Credential, WhatsAppNumber]:
    number_id = "pn" + secrets.token_hex(6)
    credential = Credential(
        tenant_id=tenant_id,
        integration_type=IntegrationType.WHATSAPP,
        provider="meta",
        secrets=Secrets({"accessToken": token, "appSecret": "app-" + token}),
        config={"phoneNumberId": number_id, "businessAccountId": "waba-1"},
    )
    number = WhatsAppNumber(tenant_id, number_id, "+5215512345678", "Tienda")
    return credential, number


def test_the_store_satisfies_both_store_ports(store: PostgresStore) -> None:
    tenants: TenantStore = store
    credentials: CredentialStore = store
    assert tenants is credentials


@pytest.mark.parametrize("alg", ALGS)
async def test_a_saved_credential_reads_back_decrypted_with_either_cipher(
    alg: str, pool: Pool, keyring: KeyRing
) -> None:
    cipher: Cipher = AesGcmCipher(keyring) if alg == "aesgcm" else PgcryptoCipher(pool, keyring)
    store = PostgresStore(pool, cipher)
    tenant = await store.create_tenant("Tacos Don Pepe")
    saved = await store.save_credential(llm_credential(tenant.id))
    [read] = await store.credentials_for(tenant.id)
    assert read.secrets == Secrets({"apiKey": "sk-test-abcdef123456"})
    assert read.config == {"model": "gpt-4o-mini", "temperature": 0.2}
    assert (read.id, read.provider, read.integration_type) == (saved.id, "openai", "llm")
    assert read.is_active and not read.is_verified


async def test_saving_again_replaces_the_credential_in_place(store: PostgresStore) -> None:
    tenant = await store.create_tenant("Replace")
    first = await store.save_credential(llm_credential(tenant.id, "sk-old-000000000000"))
    second = await store.save_credential(llm_credential(tenant.id, "sk-new-111111111111"))
    [read] = await store.credentials_for(tenant.id, IntegrationType.LLM)
    assert read.id == first.id == second.id
    assert read.secrets["apiKey"] == "sk-new-111111111111"
    assert read.updated_at >= first.updated_at


async def test_credentials_are_filtered_by_type(store: PostgresStore) -> None:
    tenant = await store.create_tenant("Filter")
    await store.save_credential(llm_credential(tenant.id))
    cred, number = whatsapp(tenant.id, "EAAG-token-1")
    await store.save_credential(cred, number)
    assert len(await store.credentials_for(tenant.id)) == 2
    [only] = await store.credentials_for(tenant.id, IntegrationType.WHATSAPP)
    assert only.provider == "meta"
    assert await store.credentials_for(tenant.id, IntegrationType.PAYMENTS) == []


async def test_the_stored_row_holds_no_plaintext_secret_anywhere(
    store: PostgresStore, database_url: str
) -> None:
    tenant = await store.create_tenant("Raw")
    token = "EAAG-super-secret-" + secrets.token_hex(8)
    cred, number = whatsapp(tenant.id, token)
    saved = await store.save_credential(cred, number)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT row_to_json(c)::text FROM tenant_integration_credentials c WHERE id = %s",
            (saved.id,),
        ).fetchone()
        numbers = conn.execute(
            "SELECT row_to_json(n)::text FROM tenant_whatsapp_numbers n WHERE tenant_id = %s",
            (tenant.id,),
        ).fetchall()
    assert row is not None
    raw = row[0] + "".join(n[0] for n in numbers)
    assert token not in raw and "app-" + token not in raw
    assert token[-8:] not in raw
    envelope = json.loads(row[0])["credentials"]
    assert set(envelope) == {"v", "alg", "kid", "nonce", "ct"}


async def test_a_ciphertext_copied_onto_another_tenants_row_fails_to_decrypt(
    store: PostgresStore, database_url: str
) -> None:
    victim = await store.create_tenant("Victim")
    thief = await store.create_tenant("Thief")
    await store.save_credential(llm_credential(victim.id, "sk-victim-aaaaaaaaaaaa"))
    await store.save_credential(llm_credential(thief.id, "sk-thief-bbbbbbbbbbbb"))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE tenant_integration_credentials SET credentials = "
            "(SELECT credentials FROM tenant_integration_credentials WHERE tenant_id = %s) "
            "WHERE tenant_id = %s",
            (victim.id, thief.id),
        )
    with pytest.raises(DecryptionFailed) as caught:
        await store.credentials_for(thief.id)
    assert "sk-victim" not in str(caught.value)
    [own] = await store.credentials_for(victim.id)
    assert own.secrets["apiKey"] == "sk-victim-aaaaaaaaaaaa"


async def test_a_number_owned_by_another_tenant_is_a_conflict_that_does_not_name_the_owner(
    store: PostgresStore,
) -> None:
    owner = await store.create_tenant("Owner")
    other = await store.create_tenant("Other")
    cred, number = whatsapp(owner.id, "EAAG-owner")
    await store.save_credential(cred, number)
    theirs, _ = whatsapp(other.id, "EAAG-other")
    stolen = WhatsAppNumber(other.id, number.phone_number_id)
    with pytest.raises(Conflict) as caught:
        await store.save_credential(theirs, stolen)
    assert str(owner.id) not in str(caught.value) and "Owner" not in str(caught.value)
    # The whole save was rolled back: the other tenant got no credential either.
    assert await store.credentials_for(other.id) == []
    still = await store.number_owner(number.phone_number_id)
    assert still is not None and still.tenant_id == owner.id


async def test_a_tenant_can_save_its_own_number_again(store: PostgresStore) -> None:
    tenant = await store.create_tenant("Again")
    cred, number = whatsapp(tenant.id, "EAAG-again")
    await store.save_credential(cred, number)
    renamed = WhatsAppNumber(tenant.id, number.phone_number_id, display_name="Nuevo nombre")
    await store.save_credential(cred, renamed)
    [read] = await store.numbers_for(tenant.id)
    assert read.display_name == "Nuevo nombre"


async def test_deleting_whatsapp_credentials_releases_the_tenants_numbers(
    store: PostgresStore,
) -> None:
    tenant = await store.create_tenant("Release")
    cred, number = whatsapp(tenant.id, "EAAG-release")
    await store.save_credential(cred, number)
    await store.save_credential(llm_credential(tenant.id))
    assert await store.delete_credentials(tenant.id, IntegrationType.WHATSAPP) == 1
    assert await store.number_owner(number.phone_number_id) is None
    assert [c.integration_type for c in await store.credentials_for(tenant.id)] == ["llm"]
    assert await store.delete_credentials(tenant.id, IntegrationType.LLM, "anthropic") == 0


async def test_deleting_a_tenant_removes_its_credentials_and_numbers(
    store: PostgresStore,
) -> None:
    tenant = await store.create_tenant("Goodbye")
    cred, number = whatsapp(tenant.id, "EAAG-bye")
    await store.save_credential(cred, number)
    await store.save_credential(llm_credential(tenant.id))
    await store.delete_tenant(tenant.id)
    assert await store.number_owner(number.phone_number_id) is None
    with pytest.raises(TenantNotFound):
        await store.get_tenant(tenant.id)
    with pytest.raises(TenantNotFound):
        await store.credentials_for(tenant.id)
    with pytest.raises(TenantNotFound):
        await store.delete_tenant(tenant.id)


async def test_an_unknown_tenant_is_tenant_not_found_everywhere(store: PostgresStore) -> None:
    nobody = uuid4()
    with pytest.raises(TenantNotFound):
        await store.get_tenant(nobody)
    with pytest.raises(TenantNotFound):
        await store.credentials_for(nobody)
    with pytest.raises(TenantNotFound):
        await store.numbers_for(nobody)
    with pytest.raises(TenantNotFound):
        await store.save_credential(llm_credential(nobody))
    with pytest.raises(TenantNotFound):
        await store.delete_credentials(nobody, IntegrationType.LLM)
    with pytest.raises(TenantNotFound):
        await store.set_verified(nobody, IntegrationType.LLM, "openai", True)


async def test_tenants_are_created_listed_and_named(store: PostgresStore) -> None:
    tenant = await store.create_tenant("  Papelería Lupita  ")
    assert tenant.name == "Papelería Lupita"
    assert await store.get_tenant(tenant.id) == tenant
    assert tenant in await store.list_tenants()
    with pytest.raises(ValidationFailed):
        await store.create_tenant("   ")


async def test_verification_is_recorded_with_its_error(store: PostgresStore) -> None:
    tenant = await store.create_tenant("Verify")
    await store.save_credential(llm_credential(tenant.id))
    await store.set_verified(tenant.id, IntegrationType.LLM, "openai", True)
    [ok] = await store.credentials_for(tenant.id)
    assert ok.is_verified and ok.verified_at is not None and ok.verification_error is None
    await store.set_verified(tenant.id, IntegrationType.LLM, "openai", False, "401 from OpenAI")
    [bad] = await store.credentials_for(tenant.id)
    assert not bad.is_verified and bad.verification_error == "401 from OpenAI"
    with pytest.raises(NotConfigured):
        await store.set_verified(tenant.id, IntegrationType.PAYMENTS, "stripe", True)


async def test_a_number_can_only_be_claimed_with_its_own_tenants_credential(
    store: PostgresStore,
) -> None:
    tenant = await store.create_tenant("Mismatch")
    cred, number = whatsapp(tenant.id, "EAAG-mismatch")
    with pytest.raises(ValidationFailed):
        await store.save_credential(cred, WhatsAppNumber(uuid4(), number.phone_number_id))


async def test_a_number_and_its_owners_whatsapp_credentials_come_back_together(
    pool, cipher
) -> None:
    from changarrito.adapters.postgres.store import PostgresStore
    from changarrito.domain.model import (
        Credential,
        IntegrationType,
        Secrets,
        WhatsAppNumber,
    )

    store = PostgresStore(pool, cipher)
    tenant = await store.create_tenant("Tortillería La Güera")
    pnid = str(uuid4().int)[:15]
    assert await store.number_with_credentials(pnid) == (None, [])
    await store.save_credential(
        Credential(
            tenant.id,
            IntegrationType.WHATSAPP,
            "meta",
            Secrets({"accessToken": "EAAtoken-number-with-credentials"}),
            {"phoneNumberId": pnid},
        ),
        WhatsAppNumber(tenant.id, pnid, "+5215512345678"),
    )
    number, credentials = await store.number_with_credentials(pnid)
    assert number is not None and number.tenant_id == tenant.id
    assert [c.secrets["accessToken"] for c in credentials] == ["EAAtoken-number-with-credentials"]


async def test_the_claims_migration_keeps_only_numbers_a_verified_credential_read(
    fresh_database_url: str,
) -> None:
    """Before 0009 a number was claimed with no proof: only a claim whose tenant's credential
    Graph verified for that very number (``GET /{phone_number_id}`` with its token) stays;
    the others become pending, and no claim keeps an account Graph never confirmed."""
    from changarrito.adapters.postgres.migrate import available

    scripts = dict(available())
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        for name, script in scripts.items():
            if name < "0009":
                conn.execute(script)
        claims = {"verified": "111", "unverified": "222", "other-number": "333"}
        for case, number in claims.items():
            tenant = conn.execute(
                "INSERT INTO tenants (name) VALUES (%s) RETURNING id", (case,)
            ).fetchone()
            assert tenant is not None
            named = "999" if case == "other-number" else number
            conn.execute(
                "INSERT INTO tenant_integration_credentials (tenant_id, integration_type,"
                " provider, credentials, config, is_verified) VALUES (%s, 'whatsapp', 'meta',"
                " %s, %s, %s)",
                (
                    tenant[0],
                    json.dumps({"alg": "x", "kid": "k", "ct": "c"}),
                    json.dumps({"phoneNumberId": named, "businessAccountId": "900"}),
                    case != "unverified",
                ),
            )
            conn.execute(
                "INSERT INTO tenant_whatsapp_numbers (tenant_id, phone_number_id) VALUES (%s, %s)",
                (tenant[0], number),
            )
        [(_, claims_script)] = [(n, s) for n, s in scripts.items() if n.startswith("0009")]
        conn.execute(claims_script)
        kept = conn.execute(
            "SELECT phone_number_id, business_account_id FROM tenant_whatsapp_numbers"
        ).fetchall()
    assert kept == [("111", None)]
