"""The hook specifications a Changarrito plugin may implement.

A plugin is a module (built-in, or named by an entry point in the ``changarrito`` group) whose
functions are marked ``@changarrito.hookimpl`` and named after a spec below. Every hook is
documented for plugin authors in ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from changarrito.plugins.base import LLMProvider, PaymentProvider

hookspec = pluggy.HookspecMarker("changarrito")

#: What ``register_llm_providers`` receives: call it once per provider class.
RegisterLLM = Callable[["type[LLMProvider]"], None]
#: What ``register_payment_providers`` receives: call it once per provider class.
RegisterPayment = Callable[["type[PaymentProvider]"], None]


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


if TYPE_CHECKING:
    from changarrito.plugins.whatsapp.base import WhatsAppProvider

#: What ``register_whatsapp_providers`` receives: call it once per provider class.
RegisterWhatsApp = Callable[["type[WhatsAppProvider]"], None]


@hookspec
def register_whatsapp_providers(register: RegisterWhatsApp) -> None:
    """Registers WhatsApp providers: call ``register(cls)`` once per ``WhatsAppProvider``
    subclass (the built-in ``meta`` is Meta's Cloud API).

    Returns nothing. Same rules as ``register_llm_providers``: classes, not instances; ids are
    unique across every plugin.
    """
