"""What tenants fall back to: the platform's own credentials, from the environment and the
installed providers of every kind.

For each kind (``changarrito.domain.kinds.KINDS``) and each of its installed providers:

- the variables that would configure it, for ``NotConfigured`` messages (a WhatsApp provider's
  ``platform_hint()``, else every variable of its ``platform_env``);
- its platform credential when ``provider.platform_credentials(env)`` finds one, with the
  provider's ``platform_config(env)`` (WhatsApp: the number's ids) as its config, and the
  ``LLM_MODEL`` for the ``LLM_PROVIDER``;
- the kind's default provider, by its ``DefaultRule``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from changarrito.domain.kinds import KINDS, DefaultRule, IntegrationType
from changarrito.domain.model import PlatformCredential, PlatformDefaults, Secrets
from changarrito.plugins.base import Provider
from changarrito.plugins.registry import ProviderRegistry
from changarrito.plugins.whatsapp.base import WhatsAppProvider


def platform_defaults(
    env: Mapping[str, str],
    registry: ProviderRegistry,
    *,
    llm_provider: str,
    llm_model: str | None,
) -> PlatformDefaults:
    """The platform's fallbacks (see the module docstring). ``llm_provider``/``llm_model`` are
    the ``LLM_PROVIDER``/``LLM_MODEL`` settings; with no ``LLM_MODEL`` the provider answers
    with its own ``default_model``."""
    #: Kinds whose default provider is a setting, and what the chosen one is configured with.
    chosen: dict[IntegrationType, tuple[str, dict[str, Any]]] = {
        IntegrationType.LLM: (llm_provider, {"model": llm_model} if llm_model else {}),
    }
    credentials: dict[tuple[IntegrationType, str], PlatformCredential] = {}
    hints: dict[tuple[IntegrationType, str], str] = {}
    defaults: dict[IntegrationType, str] = {}
    for itype, kind in KINDS.items():
        setting, setting_config = chosen.get(itype, (kind.default_provider, {}))
        first: str | None = None
        for provider in registry.providers(itype):
            key = (itype, provider.id)
            hint = env_hint(provider)
            if hint:
                hints[key] = hint
            found = provider.platform_credentials(env)
            if found is None:
                continue
            config = platform_config(provider, env)
            if provider.id == setting:
                config.update(setting_config)
            credentials[key] = PlatformCredential(itype, provider.id, Secrets(found), config)
            first = first or provider.id
        if kind.default is DefaultRule.SETTING and setting:
            defaults[itype] = setting
        elif kind.default is DefaultRule.FIRST_CONFIGURED and first:
            defaults[itype] = first
    return PlatformDefaults(
        credentials=credentials,
        default_providers=defaults,
        whatsapp_phone_number_id=_platform_number(env, registry),
        env_hints=hints,
    )


def env_hint(provider: Provider) -> str:
    """The variables that configure ``provider`` for the platform ("A and B")."""
    if isinstance(provider, WhatsAppProvider):
        return provider.platform_hint()
    return " and ".join(sorted(set(provider.platform_env.values())))


def platform_config(provider: Provider, env: Mapping[str, str]) -> dict[str, Any]:
    """The non-secret config of the platform's credential for ``provider``."""
    if isinstance(provider, WhatsAppProvider):
        return dict(provider.platform_config(env))
    return {}


def _platform_number(env: Mapping[str, str], registry: ProviderRegistry) -> str | None:
    """The platform's own WhatsApp number (``WHATSAPP_PHONE_NUMBER_ID``), whether or not its
    token is set: messages to it are the platform's, never a tenant's."""
    kind = KINDS[IntegrationType.WHATSAPP]
    for provider in registry.providers(IntegrationType.WHATSAPP):
        if provider.id == kind.default_provider and isinstance(provider, WhatsAppProvider):
            return provider.platform_config(env).get("phoneNumberId")
    return None
