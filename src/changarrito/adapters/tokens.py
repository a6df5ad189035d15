"""Tenant JWTs: issued by the CLI for development and operations (HS256 with JWT_SECRET)."""

from __future__ import annotations

import re
from datetime import timedelta
from uuid import UUID

import jwt

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.model import utcnow

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` or ``2w`` as a positive ``timedelta``."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValidationFailed(f"invalid duration {text!r}: use e.g. 3600, 15m, 1h, 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def issue_token(
    secret: str,
    tenant_id: UUID,
    ttl: timedelta,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    subject: str | None = None,
) -> str:
    now = utcnow()
    claims: dict[str, object] = {
        "tenant_id": str(tenant_id),
        "sub": subject or f"tenant:{tenant_id}",
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
