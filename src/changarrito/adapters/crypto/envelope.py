"""The ciphertext envelope stored in ``credentials`` (JSONB), shared by every cipher.

``{"v": 1, "alg": "<cipher name>", "kid": "<key id>", ...cipher fields (base64)}``. The ``alg``
and ``kid`` say which cipher and key can open it, so rows under an old key or another cipher
stay readable while a rotation runs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from changarrito.domain.errors import DecryptionFailed

VERSION = 1


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64field(envelope: Mapping[str, Any], name: str) -> bytes:
    """A base64 field of the envelope, or ``DecryptionFailed`` if missing or malformed."""
    value = envelope.get(name)
    if not isinstance(value, str):
        raise DecryptionFailed(f"the stored ciphertext envelope has no {name!r}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionFailed(f"the stored ciphertext envelope has a malformed {name!r}") from None


def kid_of(envelope: Mapping[str, Any], alg: str) -> str:
    """The key id of an envelope written by cipher ``alg`` (``DecryptionFailed`` otherwise)."""
    if envelope.get("v") != VERSION:
        raise DecryptionFailed(f"unsupported ciphertext envelope version {envelope.get('v')!r}")
    if envelope.get("alg") != alg:
        raise DecryptionFailed(f"the ciphertext was written by {envelope.get('alg')!r}, not {alg}")
    kid = envelope.get("kid")
    if not isinstance(kid, str) or not kid:
        raise DecryptionFailed("the stored ciphertext envelope names no key id")
    return kid


def is_under(envelope: Mapping[str, Any], alg: str, kid: str) -> bool:
    return (
        envelope.get("v") == VERSION and envelope.get("alg") == alg and envelope.get("kid") == kid
    )
