"""The encryption key ring: ``kid:base64key,kid2:base64key``, the first key is the primary.

New secrets are encrypted under the primary key; older keys stay in the ring so rows written
under them remain readable until ``changarrito keys rotate`` has re-encrypted them. Nothing here
ever puts key bytes in a message or a ``repr``.

The ring also keys the fingerprints a tenant sees of its secrets (``fingerprint_key``: HKDF
from the primary key, for that purpose only), so they need no setting of their own.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from changarrito.domain.errors import ConfigurationError, UnknownKey

#: Every key is an AES-256 key.
KEY_SIZE = 32

_KID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ENV = "CHANGARRITO_ENCRYPTION_KEYS"


class KeyRing:
    """An ordered set of 32-byte keys by key id (``kid``); the first is the primary."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys: dict[str, bytes] = {}
        for kid, key in keys:
            if not _KID.fullmatch(kid):
                raise ConfigurationError(f"invalid key id {kid!r}: use letters, digits, _ . -")
            if kid in self._keys:
                raise ConfigurationError(f"key id {kid!r} appears twice in the key ring")
            if len(key) != KEY_SIZE:
                raise ConfigurationError(f"key {kid!r} is {len(key)} bytes; keys are 32 bytes")
            self._keys[kid] = bytes(key)
        if not self._keys:
            raise ConfigurationError("the key ring is empty")

    @classmethod
    def parse(cls, text: str, *, source: str = _ENV) -> KeyRing:
        """Parses ``kid:base64key,...``; errors name the entry, never its key material."""
        entries = [e.strip() for e in text.replace("\n", ",").split(",")]
        entries = [e for e in entries if e]
        if not entries:
            raise ConfigurationError(f"{source} is empty: give at least one kid:base64key")
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(entries, start=1):
            kid, sep, encoded = entry.partition(":")
            kid = kid.strip()
            where = f"{source} entry {position}"
            if not sep or not _KID.fullmatch(kid):
                raise ConfigurationError(f"{where} is not of the form kid:base64key")
            where = f"{where} ({kid!r})"
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(f"{where} is not valid standard base64") from None
            if len(key) != KEY_SIZE:
                raise ConfigurationError(
                    f"{where} decodes to {len(key)} bytes; keys must be {KEY_SIZE} bytes"
                )
            if any(kid == seen for seen, _ in keys):
                raise ConfigurationError(f"{where} repeats a key id")
            keys.append((kid, key))
        return cls(keys)

    @classmethod
    def generate(cls, kid: str | None = None) -> KeyRing:
        """A ring with one fresh random key."""
        return cls([(kid or new_kid(), secrets.token_bytes(KEY_SIZE))])

    def with_new_primary(self, kid: str | None = None) -> KeyRing:
        """This ring with a fresh random primary key in front (the old keys stay readable)."""
        kid = kid or new_kid(taken=self._keys)
        return KeyRing([(kid, secrets.token_bytes(KEY_SIZE)), *self._keys.items()])

    def serialize(self) -> str:
        """The ``kid:base64key,...`` form that ``parse`` reads back (this *is* key material)."""
        return ",".join(f"{k}:{base64.b64encode(v).decode()}" for k, v in self._keys.items())

    def fingerprint_key(self) -> bytes:
        """The 32-byte HMAC key of secret fingerprints (``Secrets.fingerprint``): HKDF-SHA256
        of the primary key with its own ``info``, so it reveals nothing of the encryption key.
        The same ring gives the same key in every process and after a restart; a new primary
        key (a rotation) changes every fingerprint once."""
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_SIZE,
            salt=None,
            info=b"changarrito secret fingerprints v1",
        )
        return hkdf.derive(self._keys[self.primary_kid])

    @property
    def primary_kid(self) -> str:
        return next(iter(self._keys))

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def key(self, kid: str) -> bytes:
        """The key bytes of ``kid``, or ``UnknownKey``."""
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(f"encryption key {kid!r} is not in the key ring ({_ENV})") from None

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KeyRing):
            return list(self._keys.items()) == list(other._keys.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._keys.items()))

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary_kid!r}, kids={list(self._keys)!r})"

    __str__ = __repr__


def new_kid(taken: Iterable[str] = ()) -> str:
    """A short random key id that is not in ``taken``."""
    taken = set(taken)
    while True:
        kid = "k" + secrets.token_hex(4)
        if kid not in taken:
            return kid


def load_or_create_keyring_file(path: str | os.PathLike[str]) -> tuple[KeyRing, bool]:
    """Reads the key ring file at ``path``, creating it (mode 0600) with a new key if missing.

    Returns the ring and whether the file was created.
    """
    text, created = load_or_create_private_file(path, lambda: KeyRing.generate().serialize())
    return KeyRing.parse(text, source=f"key ring file {path}"), created


def load_or_create_private_file(
    path: str | os.PathLike[str], make: Callable[[], str]
) -> tuple[str, bool]:
    """The text of the file at ``path`` (stripped), creating it with ``make()`` if missing.

    The new file is written under a temporary name opened 0600 and then hard-linked into
    place, so it is never readable by others, never seen half-written, and two processes
    starting at once agree on one content. Returns the text and whether it was created.
    """
    target = Path(path)
    with contextlib.suppress(FileNotFoundError):
        return target.read_text(encoding="utf-8").strip(), False
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = make()
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return target.read_text(encoding="utf-8").strip(), False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return text, True
