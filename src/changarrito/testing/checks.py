"""What both conformance kits check the same way: a provider class's declarations, and that
its plugin module registers it through its hook (loaded alone, as the host loads plugins)."""

from __future__ import annotations

import re
from typing import Any

from changarrito.domain.kinds import IntegrationType
from changarrito.plugins.provider import Provider, ProviderContext
from changarrito.plugins.registry import PROVIDER_ID, ProviderRegistry, discover_none

#: What an environment variable a provider declares must look like.
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def check_declarations(cls: type[Provider]) -> None:
    """The id the loader accepts, a name, no abstract method left, env-var-shaped variables."""
    assert isinstance(cls.id, str) and PROVIDER_ID.match(cls.id), (
        f"{cls.__name__}.id must be lowercase letters, digits and dashes, got {cls.id!r}"
    )
    assert cls.name, f"{cls.__name__}.name is empty"
    assert not getattr(cls, "__abstractmethods__", None), "abstract methods are left"
    for name in cls.env_vars():
        assert ENV_NAME.match(name), f"{name!r} is not an environment variable name"


def registered(
    plugin: Any, context: ProviderContext, kind: IntegrationType, provider_id: str
) -> Provider:
    """The provider ``plugin`` registers, loaded alone through the real registry."""
    registry = ProviderRegistry.load(
        context, env={}, builtins=(), extra=[("under-test", plugin)], discover=discover_none
    )
    assert not registry.failed, registry.failed
    return registry.get(kind, provider_id)
