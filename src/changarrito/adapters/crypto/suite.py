"""Encrypt with one cipher, decrypt with any: how ``CHANGARRITO_CIPHER`` can be switched.

After switching the cipher (or the primary key), old rows stay readable through the cipher
named by their envelope's ``alg``; ``changarrito keys rotate`` then re-encrypts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from changarrito.domain.errors import DecryptionFailed
from changarrito.domain.ports import Cipher


class CipherSuite:
    """A ``Cipher`` that encrypts with ``primary`` and decrypts by the envelope's ``alg``."""

    def __init__(self, primary: Cipher, *others: Cipher) -> None:
        self.primary = primary
        self.name = primary.name
        self._by_alg: dict[str, Cipher] = {}
        for cipher in (primary, *others):
            self._by_alg.setdefault(cipher.name, cipher)

    async def encrypt(self, plaintext: bytes, context: bytes) -> dict[str, Any]:
        return await self.primary.encrypt(plaintext, context)

    async def decrypt(self, envelope: Mapping[str, Any], context: bytes) -> bytes:
        alg = envelope.get("alg")
        cipher = self._by_alg.get(alg) if isinstance(alg, str) else None
        if cipher is None:
            raise DecryptionFailed(
                f"a stored credential is encrypted with {alg!r}, which is not configured "
                f"(configured: {', '.join(self._by_alg)})"
            )
        return await cipher.decrypt(envelope, context)

    def is_current(self, envelope: Mapping[str, Any]) -> bool:
        return self.primary.is_current(envelope)

    def __repr__(self) -> str:
        return f"CipherSuite(primary={self.primary!r}, algs={list(self._by_alg)!r})"
