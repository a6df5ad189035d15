"""The embedded default: a real PostgreSQL from the ``pgserver`` wheel, in a data folder.

Used when ``DATABASE_URL`` is unset, so ``changarrito serve`` needs nothing installed. Several
processes may attach to the same folder; the server stops when the last one exits.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from changarrito.domain.errors import ConfigurationError, StorageUnavailable

DATABASE = "changarrito"


class EmbeddedPostgres:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.pgdata = home / "pgdata"
        self._server: Any = None

    def start(self) -> str:
        """Starts (or attaches to) the server and returns the URL of its ``changarrito`` db."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"CHANGARRITO_HOME {self.home} cannot be created: {exc.strerror}"
            ) from None
        # pgserver warns about XDG_RUNTIME_DIR on import and logs every step at INFO.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

            try:
                self._server = get_server(self.pgdata, cleanup_mode="stop")
            except Exception as exc:  # pgserver raises bare subprocess/assert errors
                log = self.pgdata / "log"
                raise StorageUnavailable(
                    f"the embedded PostgreSQL in {self.pgdata} did not start "
                    f"({type(exc).__name__}); see {log}"
                ) from None
        admin_url: str = self._server.get_uri()
        _ensure_database(admin_url, DATABASE)
        return str(self._server.get_uri(DATABASE))


def _ensure_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            # Another process may create it first.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
