"""What the webhook parsers share: header lookup, ``k=v,k=v`` signature headers, HMAC checks."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from changarrito.domain.errors import InvalidSignature, ValidationFailed


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name``, whatever the case of the keys in ``headers``."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def signature_parts(value: str) -> list[tuple[str, str]]:
    """``"t=1,v1=ab,v1=cd"`` → ``[("t", "1"), ("v1", "ab"), ("v1", "cd")]`` (order kept,
    repeated keys kept, malformed items dropped)."""
    parts = []
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if sep and key.strip() and val.strip():
            parts.append((key.strip(), val.strip()))
    return parts


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def any_matches(expected: str, candidates: list[str]) -> bool:
    """Whether any candidate equals ``expected``, comparing each in constant time."""
    found = False
    for candidate in candidates:
        # Compare every candidate (no early exit) so timing says nothing about which matched.
        found |= hmac.compare_digest(expected.encode(), candidate.lower().encode())
    return found


def unix_seconds(raw: str) -> float:
    """A signature timestamp in seconds; values too large to be seconds are milliseconds.

    1e11 seconds is the year 5138 and 1e11 milliseconds is 1973, so the split is unambiguous
    for any timestamp a provider sends today.
    """
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSignature("the signature timestamp is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidSignature("the signature timestamp is not a number")
    return value / 1000.0 if value >= 1e11 else value


def check_freshness(timestamp: float, now: float, tolerance: float) -> None:
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature(
            f"the signature timestamp is more than {int(tolerance)} seconds away from now"
        )


def json_object(raw_body: bytes, provider: str) -> dict[str, Any]:
    """The webhook body as a JSON object, or ``ValidationFailed``."""
    try:
        body = msgspec.json.decode(raw_body)
    except msgspec.DecodeError:
        raise ValidationFailed(f"the {provider} notification is not JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed(f"the {provider} notification is not a JSON object")
    return body


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 string or unix seconds as an aware datetime; ``None`` when absent or odd."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
