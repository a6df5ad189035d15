import time
import uuid

import pytest

from changarrito.adapters.cache import TTLResolutionCache
from changarrito.domain.changes import EVERYTHING, Change
from changarrito.domain.model import IntegrationType, Resolved, Route, Secrets, Source

LLM = IntegrationType.LLM


def _resolved(tenant_id: uuid.UUID | None) -> Resolved:
    return Resolved(
        tenant_id=tenant_id,
        integration_type=LLM,
        provider="openai",
        secrets=Secrets({"apiKey": "sk-test"}),
        config={},
        source=Source.TENANT,
    )


def test_the_cache_refuses_an_entry_resolved_for_another_tenant() -> None:
    cache = TTLResolutionCache()
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(ValueError, match="another tenant"):
        cache.put_resolved(tenant_a, LLM, None, _resolved(tenant_b))
    assert cache.get_resolved(tenant_a, LLM, None) is None


def test_invalidating_a_tenant_forgets_only_that_tenant() -> None:
    cache = TTLResolutionCache()
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    cache.put_resolved(tenant_a, LLM, None, _resolved(tenant_a))
    cache.put_resolved(tenant_b, LLM, None, _resolved(tenant_b))
    cache.on_change(Change(tenant_id=tenant_a))
    assert cache.get_resolved(tenant_a, LLM, None) is None
    assert cache.get_resolved(tenant_b, LLM, None) == _resolved(tenant_b)


def test_a_number_change_forgets_its_route_and_its_owners_entries() -> None:
    cache = TTLResolutionCache()
    tenant = uuid.uuid4()
    cache.put_route(Route("111", tenant))
    cache.put_resolved(tenant, IntegrationType.WHATSAPP, "111", _resolved(tenant))
    cache.on_change(Change(phone_number_id="111"))
    assert cache.get_route("111") is None
    assert cache.get_resolved(tenant, IntegrationType.WHATSAPP, "111") is None


def test_entries_expire_after_the_ttl() -> None:
    cache = TTLResolutionCache(ttl=0.05)
    tenant = uuid.uuid4()
    cache.put_resolved(tenant, LLM, None, _resolved(tenant))
    cache.put_route(Route("222", None))
    time.sleep(0.08)
    assert cache.get_resolved(tenant, LLM, None) is None
    assert cache.get_route("222") is None


def test_a_change_of_everything_clears_everything() -> None:
    cache = TTLResolutionCache()
    tenant = uuid.uuid4()
    cache.put_resolved(tenant, LLM, None, _resolved(tenant))
    cache.on_change(EVERYTHING)
    assert cache.get_resolved(tenant, LLM, None) is None


def test_a_full_cache_forgets_the_oldest_entries_first() -> None:
    cache = TTLResolutionCache(maxsize=3)
    for n in range(5):
        cache.put_route(Route(str(n), None))
    assert [cache.get_route(str(n)) is not None for n in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_an_expired_tenant_entry_is_replaced_not_extended() -> None:
    now = [0.0]
    cache = TTLResolutionCache(ttl=10, clock=lambda: now[0])
    tenant = uuid.uuid4()
    cache.put_resolved(tenant, LLM, None, _resolved(tenant))
    now[0] = 11
    assert cache.get_resolved(tenant, LLM, None) is None
    cache.put_resolved(tenant, LLM, "other", _resolved(tenant))
    assert cache.get_resolved(tenant, LLM, None) is None
    assert cache.get_resolved(tenant, LLM, "other") is not None


def test_a_cached_sender_is_forgotten_with_its_tenant_or_its_number() -> None:
    cache = TTLResolutionCache()
    tenant, other = uuid.uuid4(), uuid.uuid4()
    for number, owner in (("111", tenant), ("222", tenant), ("333", other)):
        cache.put_sender(number, _resolved(owner))
    cache.on_change(Change(tenant_id=tenant))
    assert cache.get_sender("111") is None and cache.get_sender("222") is None
    assert cache.get_sender("333") is not None
    cache.on_change(Change(phone_number_id="333"))
    assert cache.get_sender("333") is None


def test_the_platforms_sender_is_not_cached() -> None:
    cache = TTLResolutionCache()
    cache.put_sender("999", _resolved(None))
    assert cache.get_sender("999") is None
