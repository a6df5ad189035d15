"""pgcrypto in the database (``CHANGARRITO_CIPHER=pgcrypto``).

``pgp_sym_encrypt_bytea`` with a password derived from the ring's key, passed as a bound
parameter (never in the statement text; but a server logging statements with their parameters
would log it, as with any pgcrypto use). PGP has no associated data, so the context is framed
into the plaintext and compared on decryption; PGP's MDC makes the whole message tamper-evident.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from typing import Any

import psycopg

from changarrito.adapters.crypto.envelope import VERSION, b64encode, b64field, is_under, kid_of
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.postgres.errors import is_unavailable, translate
from changarrito.adapters.postgres.pool import Pool
from changarrito.adapters.postgres.queries import QUERIES
from changarrito.domain.errors import ConfigurationError, DecryptionFailed, StorageError

_FRAME = struct.Struct(">I")
_UNAVAILABLE = (
    "the pgcrypto extension is not available in this PostgreSQL ({why}); "
    "set CHANGARRITO_CIPHER=aesgcm"
)


def password(key: bytes) -> str:
    """The PGP password for a ring key: a hex HMAC of it (the key itself never leaves)."""
    return hmac.new(key, b"changarrito pgcrypto password v1", hashlib.sha256).hexdigest()


class PgcryptoCipher:
    """Envelope: ``{"v": 1, "alg": "pgcrypto", "kid", "ct"}`` (``ct``: the PGP message)."""

    name = "pgcrypto"

    def __init__(self, pool: Pool, keyring: KeyRing) -> None:
        self.pool = pool
        self.keyring = keyring

    async def ensure_available(self) -> None:
        """Creates the extension if needed, or ``ConfigurationError`` saying what to do."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["pgcrypto_installed"])
                row = await cur.fetchone()
                if not (row and row[0]):
                    await conn.execute(QUERIES["create_pgcrypto"])
        except psycopg.errors.InsufficientPrivilege:
            raise ConfigurationError(
                _UNAVAILABLE.format(why="no privilege to create it: run CREATE EXTENSION pgcrypto")
            ) from None
        except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported):
            raise ConfigurationError(_UNAVAILABLE.format(why="not installed")) from None
        except psycopg.OperationalError as exc:
            raise translate(exc) from exc
        except psycopg.Error as exc:
            raise ConfigurationError(_UNAVAILABLE.format(why=exc.sqlstate or "error")) from None

    async def encrypt(self, plaintext: bytes, context: bytes) -> dict[str, Any]:
        kid = self.keyring.primary_kid
        data = _FRAME.pack(len(context)) + context + plaintext
        params = {"data": data, "password": password(self.keyring.key(kid))}
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["pgcrypto_encrypt"], params)
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise translate(exc) from exc
        if row is None:
            raise StorageError("pgcrypto returned no ciphertext")
        return {"v": VERSION, "alg": self.name, "kid": kid, "ct": b64encode(bytes(row[0]))}

    async def decrypt(self, envelope: Mapping[str, Any], context: bytes) -> bytes:
        kid = kid_of(envelope, self.name)
        params = {"ct": b64field(envelope, "ct"), "password": password(self.keyring.key(kid))}
        failed = DecryptionFailed(
            f"a stored credential under key {kid!r} cannot be decrypted by pgcrypto: wrong "
            "key, tampered ciphertext, or ciphertext moved from another row"
        )
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(QUERIES["pgcrypto_decrypt"], params)
                row = await cur.fetchone()
        except psycopg.Error as exc:
            # pgcrypto reports a wrong key or corrupt data as SQLSTATE 39000; only a lost
            # connection or a server in trouble is not about the ciphertext.
            if is_unavailable(exc):
                raise translate(exc) from exc
            if isinstance(exc, psycopg.errors.UndefinedFunction):
                raise DecryptionFailed(
                    "a stored credential is encrypted with pgcrypto, but the pgcrypto extension "
                    "is not installed in this database (CREATE EXTENSION pgcrypto)"
                ) from None
            raise failed from None
        data = bytes(row[0]) if row and row[0] is not None else b""
        if len(data) < _FRAME.size:
            raise failed
        (size,) = _FRAME.unpack_from(data)
        bound = data[_FRAME.size : _FRAME.size + size]
        if len(bound) != size or not hmac.compare_digest(bound, context):
            raise failed
        return data[_FRAME.size + size :]

    def is_current(self, envelope: Mapping[str, Any]) -> bool:
        return is_under(envelope, self.name, self.keyring.primary_kid)

    def __repr__(self) -> str:
        return f"PgcryptoCipher({self.keyring!r})"
