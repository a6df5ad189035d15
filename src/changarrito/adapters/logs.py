"""Structured logging, configured once: JSON off a TTY, console on one, secrets redacted.

The redaction processor runs last before rendering, so nothing a caller binds (event keys,
context variables, nested dicts) reaches the output unmasked when its key looks secret, and
values shaped like well-known API tokens are masked wherever they appear.

Logging is on the webhook's hot path, so a line is kept cheap: loggers are cached on first
use (``configure_logging`` runs once at start-up, before anything logs; a call on an
uncached proxy re-binds it, about 5 µs even when the level filters the line out), the
secret-looking test of a key is remembered per key name, and JSON is rendered by msgspec.
"""

from __future__ import annotations

import json as stdlib_json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import msgspec
import structlog

REDACTED = "[redacted]"

#: Keys whose values are always masked (datasette's redact_keys, extended).
SECRET_KEY = re.compile(
    r"secret|passw|token|authorization|api[_-]?key|apikey|private|credential|signature|cookie"
    r"|(^|[_-])key$",
    re.IGNORECASE,
)

#: Values that look like a credential whatever their key (OpenAI/Anthropic/OpenRouter keys,
#: Stripe keys and webhook secrets, Mercado Pago tokens, Meta tokens, bearer headers, JWTs).
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk_(live|test)_[A-Za-z0-9]{6,}|rk_(live|test)_[A-Za-z0-9]{6,}"
    r"|whsec_[A-Za-z0-9]{6,}|APP_USR-[A-Za-z0-9\-]{8,}|EAA[A-Za-z0-9]{20,}"
    r"|Bearer\s+[A-Za-z0-9._~+/=\-]{8,}|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)"
)


#: Values rendered as they are (checked by exact type first: cheaper than ``isinstance``).
_PLAIN = frozenset({int, float, bool, type(None)})
#: Values masked by ``_mask`` (the common exact types, before the ``isinstance`` test).
_CONTAINERS = frozenset({str, list, tuple, dict})
#: Whether a key looks secret, remembered per key (a few dozen names in practice; capped).
_SECRET_KEYS: dict[str, bool] = {}
_SECRET_KEYS_MAX = 4096


def _mask(value: Any) -> Any:
    # ``kind is ...`` first: the common exact types skip the slower ``isinstance`` tests.
    kind = type(value)
    if kind is str:
        return SECRET_VALUE.sub(REDACTED, value)
    if kind in _PLAIN:
        return value
    if isinstance(value, str):
        return SECRET_VALUE.sub(REDACTED, value)
    if kind is dict or isinstance(value, Mapping):
        return {k: (REDACTED if _secret_key(k) else _mask(v)) for k, v in value.items()}
    if kind is list or kind is tuple or isinstance(value, list | tuple | set | frozenset):
        return [_mask(v) for v in value]
    return value


def _secret_key(key: object) -> bool:
    if type(key) is not str:
        return isinstance(key, str) and bool(SECRET_KEY.search(key))
    known = _SECRET_KEYS.get(key)
    if known is None:
        known = bool(SECRET_KEY.search(key))
        if len(_SECRET_KEYS) < _SECRET_KEYS_MAX:
            _SECRET_KEYS[key] = known
    return known


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: masks secret-looking keys and token-shaped values.

    It runs on every line the service writes (the webhook's one per delivery too), so it
    dispatches on exact types before falling back to ``isinstance``, which is slow for the
    abstract ``Mapping``."""
    for key, value in event_dict.items():  # values are replaced in place, no key is added
        if key != "event" and _secret_key(key):
            event_dict[key] = REDACTED
            continue
        kind = type(value)
        if kind in _PLAIN:
            continue
        if kind in _CONTAINERS or isinstance(value, str | Mapping | list | tuple | set | frozenset):
            event_dict[key] = _mask(value)
        elif not isinstance(value, int | float | bool):
            # Objects are rendered by their str(), which is what a renderer would show anyway.
            event_dict[key] = _mask(str(value))
    return event_dict


def _fallback(value: Any) -> str:
    """What a nested object the processors left alone renders as: its repr, masked."""
    return str(SECRET_VALUE.sub(REDACTED, repr(value)))


_encoder = msgspec.json.Encoder(enc_hook=_fallback)


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: one JSON object per line, by msgspec (the standard library's
    encoder for the odd line msgspec refuses, such as one with non-text dict keys)."""
    try:
        return _encoder.encode(event_dict).decode("utf-8")
    except (TypeError, msgspec.EncodeError):
        return stdlib_json.dumps(event_dict, default=_fallback)


def configure_logging(
    level: str = "INFO",
    *,
    json: bool | None = None,
    stream: TextIO | None = None,
    cache: bool = True,
) -> None:
    """Configures structlog and the stdlib root logger (uvicorn, psycopg) to render alike.

    ``cache``: loggers keep this configuration from their first line on (the processes'
    default; tests that configure more than once, or capture lines, pass ``False``)."""
    out = stream or sys.stderr
    if json is None:
        json = not out.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    renderer: Any = (
        render_json
        if json
        # Plain tracebacks: rich's default shows local variables, which may hold keys.
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=cache,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                # Lines from libraries (httpx, psycopg) carry the bound context too.
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                redact_secrets,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
