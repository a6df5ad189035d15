"""The composition root builds the whole service, here on the in-memory fakes."""

from __future__ import annotations

import inspect

import pytest

from changarrito.bootstrap import Service, bootstrap, build_service
from changarrito.settings import Settings
from fakes.service import memory_storage

ENV = {"JWT_SECRET": "unit-tests-jwt-secret-0123456789", "INTERNAL_API_KEY": "k" * 32}


async def test_the_whole_service_is_built_on_fakes_without_a_database() -> None:
    storage = memory_storage()
    service = build_service(Settings.from_env(ENV), storage)
    try:
        # One resolver and one store behind every use case that needs them.
        assert service.integrations.store is storage.store
        assert service.payments.resolver is service.resolver
        assert service.webhook.resolver is service.resolver
        assert service.authenticator.tenants is storage.store
        assert service.listener is None  # nothing to listen to without PostgreSQL
        tenant = await storage.store.create_tenant("Tienda")
        status = await service.integrations.status(tenant.id)
        assert status.llm_provider == "openai"
    finally:
        await service.aclose()


def test_an_unknown_override_is_a_type_error_not_silently_ignored() -> None:
    with pytest.raises(TypeError):
        build_service(Settings.from_env(ENV), memory_storage(), htpp=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("builder", [build_service, bootstrap])
def test_every_override_is_a_typed_keyword_parameter(builder: object) -> None:
    parameters = inspect.signature(builder).parameters.values()  # type: ignore[arg-type]
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in parameters)
    keywords = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keywords and all(p.annotation != inspect.Parameter.empty for p in keywords)


def test_the_service_names_each_of_its_parts() -> None:
    fields = set(Service.__dataclass_fields__)
    for part in ("integrations", "payments", "authenticator", "webhook", "pipeline", "graph"):
        assert part in fields


async def test_the_status_names_the_platform_providers_own_model_when_llm_model_is_unset() -> None:
    storage = memory_storage()
    settings = Settings.from_env({**ENV, "LLM_PROVIDER": "anthropic"})
    service = build_service(settings, storage)
    try:
        tenant = await storage.store.create_tenant("Tienda")
        status = await service.integrations.status(tenant.id)
        assert status.llm_provider == "anthropic"
        assert status.llm_model == service.registry.llm("anthropic").default_model
    finally:
        await service.aclose()
