"""Opaque cursors of the cursor-paginated lists: base64url of a small JSON array, whose first
item names the list (so a cursor of one list is refused by another) and the rest is the key
of the last item of the previous page. A client only passes back what it was given; anything
else is a 400 ``invalid-cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from changarrito.domain.errors import ClientError

#: Longest cursor accepted (the query parameter's ``maxLength``).
MAX_CURSOR_CHARS = 200


class InvalidCursor(ClientError):
    """The cursor is not one this list gave out; start again without it."""

    code = "invalid-cursor"


def encode(kind: str, *values: Any) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, kind: str, size: int) -> list[Any]:
    """The ``size`` values of a cursor of list ``kind``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(values, list) or len(values) != size + 1 or values[0] != kind:
        raise InvalidCursor()
    return values[1:]


def timestamp(value: Any) -> datetime:
    """A cursor's timestamp (ISO 8601 with its offset, exact to the microsecond)."""
    if not isinstance(value, str):
        raise InvalidCursor()
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidCursor() from exc
    if at.tzinfo is None:
        raise InvalidCursor()
    return at
