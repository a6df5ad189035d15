"""Tenants: created and deleted through one use case, each change in the audit log."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.errors import TenantNotFound, ValidationFailed
from changarrito.domain.integration_views import Actor
from changarrito.domain.tenants import MAX_NAME, Tenants
from fakes.memory import MemoryAuditLog, MemoryStore

SIGNUP = Actor(subject="internal-api", client_ip="10.0.0.7", user_agent="platform/1.0")


def tenants() -> tuple[Tenants, MemoryAuditLog]:
    audit = MemoryAuditLog()
    return Tenants(MemoryStore(), audit), audit


async def test_a_new_tenant_is_trimmed_stored_and_audited_with_who_asked() -> None:
    use_case, audit = tenants()
    tenant = await use_case.create("  Abarrotes Lupita ", SIGNUP)
    assert tenant.name == "Abarrotes Lupita"
    assert [t.id for t in await use_case.list()] == [tenant.id]
    (entry,) = audit.entries
    assert (entry.tenant_id, entry.action, entry.integration) == (tenant.id, "create", "tenant")
    assert (entry.actor, entry.client_ip, entry.user_agent) == (
        "internal-api",
        "10.0.0.7",
        "platform/1.0",
    )


# Overlong once trimmed: a name whose surrounding whitespace (U+0085 too) takes it under the
# limit is a valid name.
OVERLONG = st.text(min_size=MAX_NAME + 1).filter(lambda s: len(s.strip()) > MAX_NAME)


@given(st.text(alphabet=" \t\n", max_size=5) | OVERLONG)
async def test_a_blank_or_overlong_name_is_refused_naming_the_field(name: str) -> None:
    use_case, audit = tenants()
    with pytest.raises(ValidationFailed) as refused:
        await use_case.create(name, SIGNUP)
    assert [field for field, _ in refused.value.errors] == ["name"]
    assert audit.entries == [] and await use_case.list() == []


async def test_deleting_a_tenant_is_audited_and_the_record_outlives_it() -> None:
    use_case, audit = tenants()
    tenant = await use_case.create("Tienda", SIGNUP)
    await use_case.delete(tenant.id, Actor(subject="cli"))
    with pytest.raises(TenantNotFound):
        await use_case.get(tenant.id)
    assert [(e.action, e.actor) for e in audit.entries] == [
        ("create", "internal-api"),
        ("delete", "cli"),
    ]


async def test_deleting_a_tenant_that_does_not_exist_records_nothing() -> None:
    use_case, audit = tenants()
    with pytest.raises(TenantNotFound):
        await use_case.delete(uuid4(), SIGNUP)
    assert audit.entries == []
