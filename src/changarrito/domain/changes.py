"""What another process changed, as a change notification tells it.

Every write to tenants, credentials or numbers names what it touched (a tenant, a WhatsApp
phone number id); processes that cache what they read from it drop exactly that. A ``Change``
naming neither means "anything may have changed" (the listener reconnected after missing
notifications, or a payload it could not read): drop everything. The wire format is the
Postgres adapter's (``adapters/postgres/notify.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Change:
    """One change: a tenant, a phone number, or (neither) everything."""

    tenant_id: UUID | None = None
    phone_number_id: str | None = None

    def __post_init__(self) -> None:
        if self.tenant_id is not None and self.phone_number_id is not None:
            raise ValueError("a change names a tenant or a phone number, not both")

    @property
    def everything(self) -> bool:
        return self.tenant_id is None and self.phone_number_id is None


#: Anything may have changed: forget everything cached.
EVERYTHING = Change()
