"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State

from changarrito.domain.errors import StorageError
from changarrito.entrypoints.http.problems import problem


@get("/health", sync_to_thread=False, include_in_schema=True, tags=["health"])
def health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@get("/ready", tags=["health"])
async def ready(state: State) -> Response[dict[str, Any]]:
    """The database is reachable and every migration is applied (503 otherwise)."""
    try:
        missing = await state.service.storage.schema.pending_migrations()
    except StorageError as exc:
        return problem(503, "not-ready", f"database unreachable: {exc.message}")
    if missing:
        return problem(503, "not-ready", "migrations pending: " + ", ".join(missing))
    return Response({"status": "ready"})
