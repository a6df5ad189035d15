"""An embedded PostgreSQL (pgserver, the service's own default) for the ``--embedded`` runs."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def embedded_admin_url() -> Iterator[str]:
    """Starts a throw-away embedded PostgreSQL and yields its admin URL; stops and removes it."""
    datadir = tempfile.mkdtemp(prefix="changarrito-bench-pg-")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(datadir, cleanup_mode="stop")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(datadir, ignore_errors=True)
