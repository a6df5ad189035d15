"""The whole service on in-memory fakes: ``build_service(settings, memory_storage())``.

Nothing here talks to PostgreSQL; tests of the HTTP API that do not test SQL run on it (a
module opts in with ``SERVICE = "memory"``, see ``tests/integration/conftest.py``). Each fake
is held to its PostgreSQL adapter by ``tests/integration/test_fakes_match_postgres.py``.
"""

from __future__ import annotations

from changarrito.bootstrap import Storage
from fakes.memory import (
    MemoryAuditLog,
    MemoryIntake,
    MemoryMessageLog,
    MemoryPaymentStore,
    MemorySchema,
    MemoryStore,
    MemoryWhatsAppApps,
)


def memory_storage() -> Storage:
    """A fresh, empty set of in-memory stores wired like the PostgreSQL ones."""
    store = MemoryStore()
    intake = MemoryIntake()
    return Storage(
        store=store,
        audit=MemoryAuditLog(),
        payments=MemoryPaymentStore(store),
        intake=intake,
        apps=MemoryWhatsAppApps(store),
        schema=MemorySchema(),
        messages=MemoryMessageLog(intake),
    )
