"""AES-256-GCM in the process (the default cipher, ``CHANGARRITO_CIPHER=aesgcm``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from changarrito.adapters.crypto.envelope import VERSION, b64encode, b64field, is_under, kid_of
from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.domain.errors import DecryptionFailed

NONCE_SIZE = 12


class AesGcmCipher:
    """Encrypts under the ring's primary key with a random 96-bit nonce; the context is the
    associated data, so a ciphertext moved to another row (another context) fails to open.

    Envelope: ``{"v": 1, "alg": "aesgcm", "kid", "nonce", "ct"}`` (``ct`` includes the tag).
    """

    name = "aesgcm"

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    async def encrypt(self, plaintext: bytes, context: bytes) -> dict[str, Any]:
        kid = self.keyring.primary_kid
        nonce = os.urandom(NONCE_SIZE)
        ct = AESGCM(self.keyring.key(kid)).encrypt(nonce, plaintext, context)
        return {"v": VERSION, "alg": self.name, "kid": kid, "nonce": b64encode(nonce),
                "ct": b64encode(ct)}  # fmt: skip

    async def decrypt(self, envelope: Mapping[str, Any], context: bytes) -> bytes:
        kid = kid_of(envelope, self.name)
        key = self.keyring.key(kid)
        nonce = b64field(envelope, "nonce")
        ct = b64field(envelope, "ct")
        if len(nonce) != NONCE_SIZE:
            raise DecryptionFailed("the stored ciphertext has a malformed nonce")
        try:
            return AESGCM(key).decrypt(nonce, ct, context)
        except InvalidTag:
            raise DecryptionFailed(
                f"a stored credential under key {kid!r} failed authentication: wrong key, "
                "tampered ciphertext, or ciphertext moved from another row"
            ) from None

    def is_current(self, envelope: Mapping[str, Any]) -> bool:
        return is_under(envelope, self.name, self.keyring.primary_kid)

    def __repr__(self) -> str:
        return f"AesGcmCipher({self.keyring!r})"
