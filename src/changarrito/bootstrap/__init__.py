"""The composition root: the one place that builds adapters and use cases and wires them.

- ``prepare_database`` settles where the data lives (``DATABASE_URL`` or the embedded
  PostgreSQL) and which key ring protects it;
- ``postgres_storage`` opens the pool and builds the PostgreSQL adapters (a ``Storage``);
- ``build_service`` wires a ``Storage`` to everything else (credential resolution, plugins,
  use cases, the webhook intake, the pipeline) and returns the ``Service``;
- ``bootstrap`` does both, and starts the change listener that keeps caches in step.

Tests build a ``Service`` on in-memory fakes with ``build_service(settings, storage)`` and
replace single pieces with the typed keyword overrides (an unknown one is a ``TypeError``).
Entry points take what they need from the ``Service``: they never build an adapter.

Three modules, one step each: ``database.py`` (where the data lives), ``storage.py`` (the
stores), ``service.py`` (everything else).
"""

from __future__ import annotations

from changarrito.bootstrap.database import (
    Database,
    check_role,
    embedded_defaults,
    prepare_database,
)
from changarrito.bootstrap.service import LISTEN_WAIT, Service, bootstrap, build_service
from changarrito.bootstrap.storage import Storage, build_cipher, postgres_storage

__all__ = [
    "LISTEN_WAIT",
    "Database",
    "Service",
    "Storage",
    "bootstrap",
    "build_cipher",
    "build_service",
    "check_role",
    "embedded_defaults",
    "postgres_storage",
    "prepare_database",
]
