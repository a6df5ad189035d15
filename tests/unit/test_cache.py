import time
import uuid

import pytest

from changarrito.adapters.cache import TTLResolutionCache, UnknownNumbers
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


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_unknown_number_is_remembered_for_one_second_at_most() -> None:
    clock = _Clock()
    unknown = UnknownNumbers(clock=clock)
    unknown.add("pn-1", unknown.generation)
    clock.now += 0.99
    assert "pn-1" in unknown
    clock.now += 0.02
    assert "pn-1" not in unknown
    assert len(unknown) == 0


def test_a_change_of_the_number_or_of_everything_forgets_unknown_numbers() -> None:
    unknown = UnknownNumbers()
    for pnid in ("pn-1", "pn-2", "pn-3"):
        unknown.add(pnid, unknown.generation)
    unknown.on_change(Change(phone_number_id="pn-1"))
    unknown.on_change(Change(tenant_id=uuid.uuid4()))  # a tenant's change claims no number
    assert ("pn-1" in unknown, "pn-2" in unknown) == (False, True)
    unknown.on_change(EVERYTHING)
    assert len(unknown) == 0


def test_a_lookup_overtaken_by_a_change_stores_nothing() -> None:
    unknown = UnknownNumbers()
    started = unknown.generation  # the store reads it before its query...
    unknown.on_change(Change(phone_number_id="pn-1"))  # ...the claim commits meanwhile...
    unknown.add("pn-1", started)  # ...and its "nobody owns it" answer is stale
    assert "pn-1" not in unknown


def test_a_flood_of_random_numbers_keeps_at_most_maxsize_of_them() -> None:
    clock = _Clock()
    unknown = UnknownNumbers(maxsize=1_000, clock=clock)
    for i in range(100_000):
        unknown.add(f"random-{i}", unknown.generation)
        clock.now += 0.000_01
    assert len(unknown) == 1_000
    assert "random-99999" in unknown and "random-0" not in unknown


def test_expired_unknown_numbers_are_dropped_as_new_ones_arrive() -> None:
    clock = _Clock()
    unknown = UnknownNumbers(maxsize=1_000, clock=clock)
    for i in range(10):
        unknown.add(f"old-{i}", unknown.generation)
    clock.now += 2
    unknown.add("new", unknown.generation)
    assert len(unknown) == 1


def test_an_unknown_number_seen_again_is_kept_a_second_from_then() -> None:
    clock = _Clock()
    unknown = UnknownNumbers(clock=clock)
    unknown.add("again", unknown.generation)
    clock.now += 0.5
    unknown.add("other", unknown.generation)
    clock.now += 0.4
    unknown.add("again", unknown.generation)
    clock.now += 0.7
    unknown.add("third", unknown.generation)  # "other" has expired, "again" has not
    assert ("again" in unknown, "other" in unknown, len(unknown)) == (True, False, 2)
