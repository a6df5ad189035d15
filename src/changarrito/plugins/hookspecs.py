"""The hook specifications a Changarrito plugin may implement, and the plugin side of each kind.

A plugin is a module (built-in, or named by an entry point in the ``changarrito`` group) whose
functions are marked ``@changarrito.hookimpl`` and named after a spec below. Every hook is
documented for plugin authors in ``docs/plugins.md``.

Each integration kind (``changarrito.domain.kinds.KINDS``) names its hook in its row; the class
its providers subclass is in ``PROVIDER_BASES``, at the end: the registry reads both, so a new
kind's plugin side is its spec and its base here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pluggy

from changarrito.domain.kinds import IntegrationType
from changarrito.plugins.base import LLMProvider, PaymentProvider
from changarrito.plugins.whatsapp.base import WhatsAppProvider

hookspec = pluggy.HookspecMarker("changarrito")

#: What ``register_whatsapp_providers`` receives: call it once per provider class.
RegisterWhatsApp = Callable[[type[WhatsAppProvider]], None]
#: What ``register_llm_providers`` receives: call it once per provider class.
RegisterLLM = Callable[[type[LLMProvider]], None]
#: What ``register_payment_providers`` receives: call it once per provider class.
RegisterPayment = Callable[[type[PaymentProvider]], None]


@hookspec
def register_whatsapp_providers(register: RegisterWhatsApp) -> None:
    """Registers WhatsApp providers: call ``register(cls)`` once per ``WhatsAppProvider``
    subclass (the built-in ``meta`` is Meta's Cloud API).

    Returns nothing. Same rules as ``register_llm_providers``: classes, not instances; ids are
    unique across every plugin.
    """


@hookspec
def register_llm_providers(register: RegisterLLM) -> None:
    """Registers LLM providers: call ``register(cls)`` once per ``LLMProvider`` subclass.

    Returns nothing. The host instantiates each class with a ``ProviderContext`` after every
    plugin is loaded; a provider id registered twice stops start-up with a
    ``ConfigurationError`` naming both plugins.
    """


@hookspec
def register_payment_providers(register: RegisterPayment) -> None:
    """Registers payment providers: call ``register(cls)`` once per ``PaymentProvider``
    subclass.

    Returns nothing. Same rules as ``register_llm_providers``: classes, not instances; ids are
    unique across every plugin.
    """


#: The class a provider of each kind subclasses (a ``Provider`` subclass; abstract, hence
#: ``type[object]`` for the type checker); the kind's row names the hook above that registers
#: them (``KINDS[kind].hook``).
PROVIDER_BASES: Mapping[IntegrationType, type[object]] = {
    IntegrationType.WHATSAPP: WhatsAppProvider,
    IntegrationType.LLM: LLMProvider,
    IntegrationType.PAYMENTS: PaymentProvider,
}
