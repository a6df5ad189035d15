"""The integration kinds, as data: one row per kind, read by everything that differs by kind.

A kind is what a tenant configures (``whatsapp``, ``llm``, ``payments``). Its row says

- ``type``: its one name (its wire name), stored in
  ``tenant_integration_credentials.integration_type`` (the migrations' check constraint is built
  from ``KINDS``), used in the tenant API's URLs, as the key of its section in
  ``GET /api/v1/integrations/status`` and in the ``KIND`` column of ``changarrito plugins``;
- ``hook``: the plugin hook that registers its providers (``changarrito.plugins.hookspecs``,
  which also names the base class a provider of the kind subclasses: ``PROVIDER_BASES``);
- ``shape``: its status section, ``SINGLE`` (one provider at a time: ``{"configured",
  "usesPlatform…", ...}``, served by ``PUT /api/v1/integrations/<kind>`` with a body
  ``{"provider", "credentials", "config"}``) or ``PER_PROVIDER`` (``{"<provider>":
  {"configured", ...}}``, served by ``PUT /api/v1/integrations/<kind>/{provider}`` with a body
  ``{"credentials", "config"}``);
- ``default``: which provider serves a tenant that names none (``PINNED``: always
  ``default_provider``; ``SETTING``: the platform's setting, ``default_provider`` without one;
  ``FIRST_CONFIGURED``: the first provider, by id, the platform has credentials for).

Adding a kind: a member of ``IntegrationType`` and a row in ``KINDS`` here; its hook and its
entry in ``PROVIDER_BASES`` in ``plugins/hookspecs.py``; its base class
(``plugins/<kind>/base.py``, and its providers); the hook in ``docs/plugins.md``. The rest
follows from the rows: the registry and ``changarrito plugins``, the use cases, the platform
defaults, the database's check constraint, the status (``entrypoints/http/status.py``) and the
kind's tenant API endpoints (``entrypoints/http/kind_endpoints.py``).
``tests/integration/test_a_new_kind.py`` adds one that way and sees it all appear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import cast


class IntegrationType(StrEnum):
    """The name of a kind (its wire name); ``KINDS[itype]`` describes it."""

    WHATSAPP = "whatsapp"
    LLM = "llm"
    PAYMENTS = "payments"


class StatusShape(StrEnum):
    """How a kind appears in the tenant's status."""

    #: One provider at a time: ``{"configured", "usesPlatform…", "isVerified"?, ...}``.
    SINGLE = "single"
    #: One entry per installed provider: ``{"<provider>": {"configured", ...}, ...}``.
    PER_PROVIDER = "per-provider"


class DefaultRule(StrEnum):
    """Which provider serves a tenant that has none of its own and asks for none."""

    #: Always ``Kind.default_provider``.
    PINNED = "pinned"
    #: The platform's setting (``LLM_PROVIDER``); ``Kind.default_provider`` when unset.
    SETTING = "setting"
    #: The first provider, by id, the platform has credentials for.
    FIRST_CONFIGURED = "first-configured"


@dataclass(frozen=True, slots=True)
class Kind:
    """Everything that differs between kinds (see the module docstring)."""

    type: IntegrationType
    #: The plugin hook registering its providers.
    hook: str
    #: The kind in a sentence: "No payment provider 'x' is installed".
    label: str
    shape: StatusShape
    default: DefaultRule
    default_provider: str | None = None
    #: The status's first providers, in this order; the others follow, sorted.
    provider_order: tuple[str, ...] = ()
    #: Configuring one provider removes the tenant's other providers of the kind.
    one_per_tenant: bool = False
    #: Configuring claims the WhatsApp number in ``config["phoneNumberId"]`` for the tenant
    #: (``tenant_whatsapp_numbers``), and deleting releases it.
    claims_number: bool = False
    #: The status key saying the platform's credential serves (``SINGLE`` kinds).
    platform_flag: str | None = None
    #: Where the tenant API's body carries the kind's config, for field errors
    #: (WhatsApp's ids travel inside ``credentials``).
    config_field: str = "config"
    #: ``SINGLE`` kinds: the status names the provider serving the tenant and its model
    #: (``"provider"``, ``"model"``: the credential's ``config["model"]``, else the provider's
    #: default; the platform's setting when the platform's credential serves).
    status_provider: bool = False
    #: ``SINGLE`` kinds: the status shows ``isVerified`` (``false``) before anything is
    #: configured; otherwise only once the tenant configured the kind.
    status_verified: bool = False

    @property
    def name(self) -> str:
        return self.type.value

    @property
    def title(self) -> str:
        """``label`` capitalised, for names of things (``PaymentStatus``, ``LLMStatus``)."""
        return self.label[:1].upper() + self.label[1:]

    @property
    def provider_in_path(self) -> bool:
        """The tenant API names the provider in the URL (``/payments/{provider}``); otherwise
        there is one endpoint for the kind and the provider is in the body (or fixed)."""
        return self.shape is StatusShape.PER_PROVIDER

    def endpoint(self, provider: str | None = None) -> str:
        """The tenant API endpoint that configures the kind (and provider)."""
        if self.provider_in_path:
            return f"PUT /api/v1/integrations/{self.name}/{provider or '{provider}'}"
        return f"PUT /api/v1/integrations/{self.name}"

    def ordered(self, installed: list[str]) -> list[str]:
        """``installed`` in status order: ``provider_order`` first, then the rest sorted."""
        order = [p for p in self.provider_order if p in installed]
        return order + [p for p in sorted(installed) if p not in order]


KINDS: Mapping[IntegrationType, Kind] = {
    k.type: k
    for k in (
        Kind(
            type=IntegrationType.WHATSAPP,
            hook="register_whatsapp_providers",
            label="WhatsApp",
            shape=StatusShape.SINGLE,
            default=DefaultRule.PINNED,
            default_provider="meta",
            claims_number=True,
            platform_flag="usesPlatformNumber",
            config_field="credentials",
            status_verified=True,
        ),
        Kind(
            type=IntegrationType.LLM,
            hook="register_llm_providers",
            label="LLM",
            shape=StatusShape.SINGLE,
            default=DefaultRule.SETTING,
            default_provider="openai",
            one_per_tenant=True,
            platform_flag="usesPlatformDefault",
            status_provider=True,
        ),
        Kind(
            type=IntegrationType.PAYMENTS,
            hook="register_payment_providers",
            label="payment",
            shape=StatusShape.PER_PROVIDER,
            default=DefaultRule.FIRST_CONFIGURED,
            provider_order=("stripe", "mercadopago", "clip"),
        ),
    )
}


def kind_of(itype: IntegrationType | str) -> Kind:
    """The row of ``itype``; a store may hand the type over as plain text, which finds the
    same row (a kind's name equals its ``IntegrationType``, a ``StrEnum``)."""
    return KINDS[cast(IntegrationType, itype)]
