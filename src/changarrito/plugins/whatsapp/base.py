"""The contract of a WhatsApp provider: the Business API a tenant's number speaks through.

Register a subclass from a ``register_whatsapp_providers`` hook. Besides the ``Provider``
members it declares ``platform_config_env``: the environment variables of the platform's own
number (its ids, not secrets), by config field. The platform's credential exists only when its
required secrets *and* its ``phoneNumberId`` are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from changarrito.plugins.base import Provider


class WhatsAppProvider(Provider):
    """A WhatsApp Business API (Meta's Cloud API is the built-in ``meta``)."""

    #: Environment variables holding the platform number's ids, by config field.
    platform_config_env: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def platform_config(cls, env: Mapping[str, str]) -> dict[str, str]:
        """The platform number's ids from ``env`` (unset and blank ones left out)."""
        values = {field: env.get(var, "").strip() for field, var in cls.platform_config_env.items()}
        return {k: v for k, v in values.items() if v}

    @classmethod
    def platform_credentials(cls, env: Mapping[str, str]) -> dict[str, str] | None:
        """The platform's secrets (trimmed), or ``None`` without a required one or without the
        number's ``phoneNumberId``: a token alone cannot tell which number it speaks for."""
        values = {field: env.get(var, "").strip() for field, var in cls.platform_env.items()}
        required = _required_fields(cls.credentials_schema)
        if not cls.platform_config(env).get("phoneNumberId"):
            return None
        if not cls.platform_env or any(not values.get(f) for f in required):
            return None
        return {k: v for k, v in values.items() if v}

    @classmethod
    def platform_hint(cls) -> str:
        """The variables that configure the platform's number, for ``NotConfigured``."""
        required = _required_fields(cls.credentials_schema)
        names = [cls.platform_env[f] for f in required if f in cls.platform_env]
        if "phoneNumberId" in cls.platform_config_env:
            names.append(cls.platform_config_env["phoneNumberId"])
        return " and ".join(names)

    @classmethod
    def env_vars(cls) -> list[str]:
        return sorted({*super().env_vars(), *cls.platform_config_env.values()})


def _required_fields(schema: type[msgspec.Struct]) -> list[str]:
    info = msgspec.inspect.type_info(schema)
    assert isinstance(info, msgspec.inspect.StructType)
    return [f.encode_name for f in info.fields if f.required]
