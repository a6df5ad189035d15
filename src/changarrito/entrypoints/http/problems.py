"""RFC 9457 problem details: every error response of the service is made here.

One table maps the domain's exception classes to HTTP statuses; the problem ``type`` is a
stable URI built from the exception's ``code``. Nothing unexpected leaks: an unknown exception
becomes a bare 500 problem (its details go to the log, never to the client).
"""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from changarrito.domain import errors

log = structlog.get_logger("changarrito.http")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://changarrito.dev/problems/"

#: Most specific first; the first class an exception is an instance of decides its status.
STATUS_BY_ERROR: tuple[tuple[type[errors.ChangarritoError], int], ...] = (
    (errors.InvalidSignature, 401),
    (errors.Unauthorized, 401),
    (errors.NotConfigured, 409),
    (errors.UnknownPhoneNumber, 404),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.ValidationFailed, 422),
    (errors.ClientError, 400),
    (errors.ProviderAuthError, 502),
    (errors.ProviderError, 502),
    (errors.StorageUnavailable, 503),
    (errors.DecryptionFailed, 500),
    (errors.ChangarritoError, 500),
)

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal error",
    502: "Upstream provider error",
    503: "Service unavailable",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body = problem_document(status, code, detail, title=title, **extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_document(
    status: int, code: str, detail: str, *, title: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The RFC 9457 object itself (for a plain ASGI handler that answers without a
    ``Response``)."""
    return {
        "type": TYPE_BASE + code,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }


def status_for(exc: errors.ChangarritoError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def domain_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, errors.ChangarritoError)
    status = status_for(exc)
    if status >= 500:
        log.error(
            "request.failed", path=request.url.path, error=type(exc).__name__, detail=exc.message
        )
        detail = exc.message if status in (502, 503) else "The service failed; see its log."
    else:
        detail = exc.message
    # A 401 names the scheme the client should use (RFC 9110 §11.6.1), e.g. ``Bearer``.
    challenge = getattr(exc, "challenge", None) if status == 401 else None
    headers = {"WWW-Authenticate": challenge} if challenge else None
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.ValidationFailed) and exc.errors:
        extra["errors"] = [{"field": f, "message": m} for f, m in exc.errors]
    return problem(status, exc.code, detail, headers=headers, **extra)


def http_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if isinstance(exc, ValidationException):
        return problem(400, "invalid-request", "The request is malformed.", errors=exc.extra or [])
    code = {
        404: "not-found",
        405: "method-not-allowed",
        408: "request-timeout",
        413: "body-too-large",
        401: "unauthorized",
        403: "forbidden",
        415: "unsupported-media-type",
        429: "rate-limited",
    }.get(status, "http-error")
    detail = str(exc.detail) if exc.detail else _TITLES.get(status, "Error")
    # Headers the exception carries go out with it (a 429's ``Retry-After``, a 405's ``Allow``).
    return problem(status, code, detail, headers=dict(exc.headers) if exc.headers else None)


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request.crashed", path=request.url.path, exc_info=exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal", "The service failed; see its log.")


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    errors.ChangarritoError: domain_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
