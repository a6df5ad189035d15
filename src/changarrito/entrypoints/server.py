"""``changarrito serve``: prepare the database, check it, then run the ASGI server."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import structlog
import uvicorn

from changarrito.bootstrap import bootstrap, check_role, embedded_defaults, prepare_database
from changarrito.entrypoints.http.app import create_app
from changarrito.settings import Role, Settings

log = structlog.get_logger("changarrito.serve")


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    role: Role,
    workers: int = 1,
) -> int:
    check_role(settings, role)
    database = prepare_database(settings)
    settings = embedded_defaults(settings)

    async def check() -> None:
        # Migrations, the key ring and the plugins are checked here, once, so a bad
        # configuration stops start-up with one line instead of failing the first request.
        service = await bootstrap(settings, database, listen=False, role=role)
        await service.aclose()

    asyncio.run(check())
    log.info(
        "changarrito.starting",
        url=f"http://{host}:{port}",
        role=role,
        workers=workers,
        database="embedded" if database.embedded else "external",
    )
    # uvicorn handles SIGTERM gracefully and then re-raises it; exiting through SystemExit
    # instead (not the default kill) lets atexit stop the embedded PostgreSQL cleanly.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    common = {"host": host, "port": port, "log_config": None, "access_log": False}
    if workers <= 1:
        app = create_app(settings, database, role=role)
        uvicorn.Server(uvicorn.Config(app, lifespan="on", **common)).run()  # type: ignore[arg-type]
        return 0
    # Worker processes rebuild the app from the environment: hand them the settled database.
    os.environ["DATABASE_URL"] = database.url
    os.environ["CHANGARRITO_ENCRYPTION_KEYS"] = database.keyring.serialize()
    os.environ["CHANGARRITO_ROLE"] = role
    if settings.auth.jwt_secret:
        os.environ["JWT_SECRET"] = settings.auth.jwt_secret
    uvicorn.run(
        "changarrito.entrypoints.http.app:app_from_env",
        factory=True,
        workers=workers,
        lifespan="on",
        **common,  # type: ignore[arg-type]
    )
    return 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(0)
