"""Both ciphers against a real PostgreSQL: round trips, context binding, wrong keys, tampering,
and the suite that reads either."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from changarrito.adapters.crypto import CipherSuite
from changarrito.adapters.crypto.aesgcm import AesGcmCipher
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.crypto.pgcrypto import PgcryptoCipher
from changarrito.adapters.postgres.pool import Pool, open_pool
from changarrito.domain.errors import ConfigurationError, DecryptionFailed, UnknownKey
from changarrito.domain.ports import Cipher

CONTEXT = b"0000|llm|openai"
SECRET = b'{"apiKey": "sk-live-very-secret"}'


def make_cipher(alg: str, pool: Pool, ring: KeyRing) -> Cipher:
    return AesGcmCipher(ring) if alg == "aesgcm" else PgcryptoCipher(pool, ring)


ALGS = ["aesgcm", pytest.param("pgcrypto", marks=pytest.mark.pgcrypto)]


@pytest.mark.parametrize("alg", ALGS)
async def test_a_secret_encrypted_by_either_cipher_decrypts_to_itself(
    alg: str, pool: Pool, keyring: KeyRing
) -> None:
    cipher = make_cipher(alg, pool, keyring)
    envelope = await cipher.encrypt(SECRET, CONTEXT)
    assert envelope["v"] == 1 and envelope["alg"] == alg and envelope["kid"] == "k1"
    assert b"sk-live" not in repr(envelope).encode()
    assert await cipher.decrypt(envelope, CONTEXT) == SECRET
    assert cipher.is_current(envelope)


@pytest.mark.parametrize("alg", ALGS)
async def test_a_ciphertext_under_another_context_fails_to_decrypt(
    alg: str, pool: Pool, keyring: KeyRing
) -> None:
    cipher = make_cipher(alg, pool, keyring)
    envelope = await cipher.encrypt(SECRET, CONTEXT)
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(envelope, b"1111|llm|openai")


@pytest.mark.parametrize("alg", ALGS)
async def test_a_wrong_key_under_the_same_kid_fails_to_decrypt(
    alg: str, pool: Pool, keyring: KeyRing
) -> None:
    envelope = await make_cipher(alg, pool, keyring).encrypt(SECRET, CONTEXT)
    impostor = make_cipher(alg, pool, KeyRing.generate("k1"))
    with pytest.raises(DecryptionFailed) as caught:
        await impostor.decrypt(envelope, CONTEXT)
    assert not isinstance(caught.value, UnknownKey)


@pytest.mark.parametrize("alg", ALGS)
async def test_a_kid_missing_from_the_ring_raises_unknown_key(
    alg: str, pool: Pool, keyring: KeyRing
) -> None:
    envelope = await make_cipher(alg, pool, keyring).encrypt(SECRET, CONTEXT)
    with pytest.raises(UnknownKey, match="'k1'"):
        await make_cipher(alg, pool, KeyRing.generate("k2")).decrypt(envelope, CONTEXT)


@pytest.mark.parametrize("alg", ALGS)
async def test_a_tampered_ciphertext_fails_to_decrypt(
    alg: str, pool: Pool, keyring: KeyRing
) -> None:
    cipher = make_cipher(alg, pool, keyring)
    envelope = await cipher.encrypt(SECRET, CONTEXT)
    raw = bytearray(base64.b64decode(envelope["ct"]))
    raw[len(raw) // 2] ^= 0x01
    tampered: dict[str, Any] = {**copy.deepcopy(envelope), "ct": base64.b64encode(raw).decode()}
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt(tampered, CONTEXT)
    with pytest.raises(DecryptionFailed):
        await cipher.decrypt({**envelope, "ct": "%%%not base64"}, CONTEXT)


async def test_aesgcm_uses_a_fresh_nonce_for_every_encryption(keyring: KeyRing) -> None:
    cipher = AesGcmCipher(keyring)
    a = await cipher.encrypt(SECRET, CONTEXT)
    b = await cipher.encrypt(SECRET, CONTEXT)
    assert a["nonce"] != b["nonce"] and a["ct"] != b["ct"]


async def test_a_cipher_refuses_an_envelope_of_another_algorithm(keyring: KeyRing) -> None:
    envelope = await AesGcmCipher(keyring).encrypt(SECRET, CONTEXT)
    with pytest.raises(DecryptionFailed, match="aesgcm"):
        await AesGcmCipher(keyring).decrypt({**envelope, "alg": "rot13"}, CONTEXT)


@pytest.mark.pgcrypto
async def test_the_suite_encrypts_with_its_primary_and_reads_either_algorithm(
    pool: Pool, keyring: KeyRing
) -> None:
    aes, pgp = AesGcmCipher(keyring), PgcryptoCipher(pool, keyring)
    suite = CipherSuite(pgp, aes)
    old = await aes.encrypt(SECRET, CONTEXT)
    new = await suite.encrypt(SECRET, CONTEXT)
    assert new["alg"] == "pgcrypto" and suite.name == "pgcrypto"
    assert await suite.decrypt(old, CONTEXT) == SECRET
    assert await suite.decrypt(new, CONTEXT) == SECRET
    assert suite.is_current(new) and not suite.is_current(old)


async def test_the_suite_names_an_algorithm_it_is_not_configured_for(keyring: KeyRing) -> None:
    suite = CipherSuite(AesGcmCipher(keyring))
    with pytest.raises(DecryptionFailed, match="'pgcrypto', which is not configured"):
        await suite.decrypt({"v": 1, "alg": "pgcrypto", "kid": "k1", "ct": ""}, CONTEXT)


@pytest.mark.pgcrypto
async def test_pgcrypto_is_created_on_demand_in_a_database_that_lacks_it(
    fresh_database_url: str, keyring: KeyRing
) -> None:
    pool = await open_pool(fresh_database_url, max_size=2)
    try:
        cipher = PgcryptoCipher(pool, keyring)
        await cipher.ensure_available()
        envelope = await cipher.encrypt(SECRET, CONTEXT)
        assert await cipher.decrypt(envelope, CONTEXT) == SECRET
    finally:
        await pool.close()


async def test_a_server_without_pgcrypto_says_to_use_aesgcm(
    pg_admin_url: str, pgcrypto_available: bool, fresh_database_url: str, keyring: KeyRing
) -> None:
    if pgcrypto_available:
        pytest.skip("this server has pgcrypto (the embedded one has not)")
    pool = await open_pool(fresh_database_url, max_size=1)
    try:
        with pytest.raises(ConfigurationError, match="CHANGARRITO_CIPHER=aesgcm") as caught:
            await PgcryptoCipher(pool, keyring).ensure_available()
        assert "\n" not in str(caught.value)
    finally:
        await pool.close()


async def test_a_pgcrypto_row_in_a_database_without_the_extension_says_so(
    fresh_database_url: str, keyring: KeyRing
) -> None:
    envelope = {"v": 1, "alg": "pgcrypto", "kid": "k1", "ct": base64.b64encode(b"x").decode()}
    pool = await open_pool(fresh_database_url, max_size=1)
    try:
        with pytest.raises(DecryptionFailed, match="extension is not installed"):
            await PgcryptoCipher(pool, keyring).decrypt(envelope, CONTEXT)
    finally:
        await pool.close()
