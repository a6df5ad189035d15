"""Everything a provider plugin needs, from one module: ``from changarrito.plugin import ...``.

The hook marker, the base classes, the credential and config bases, the errors a provider
raises, the shapes it takes and returns (``ChatMessage`` with its ``Attachment``s, ``Tool``
and ``Audio`` in; ``Reply``, ``ToolCall`` and ``Transcript`` out), the one upstream-call
helper (``Provider.call_json``) and the helpers around it. ``docs/plugins.md`` documents
every name in ``__all__``; a plugin imports nothing else of Changarrito's
(``changarrito.testing`` is for its tests).
"""

from __future__ import annotations

from changarrito import hookimpl
from changarrito.domain.chat import (
    Attachment,
    Audio,
    ChatMessage,
    LLMConfig,
    Reply,
    Tool,
    ToolCall,
    Transcript,
    Usage,
)
from changarrito.domain.errors import (
    FinalProviderError,
    InvalidSignature,
    InvalidWebhook,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderError,
    ProviderQuotaExceeded,
    ProviderTimeout,
    RetryableProviderError,
    ValidationFailed,
)
from changarrito.domain.money import minor_unit_decimals
from changarrito.domain.payment_model import PaymentStatus
from changarrito.plugins.base import (
    Config,
    Credentials,
    LLMProvider,
    PaymentEvent,
    PaymentLink,
    PaymentProvider,
    Provider,
    ProviderContext,
    secret_values,
)
from changarrito.plugins.llm.openai_compat import OpenAICompatibleProvider
from changarrito.plugins.payments._common import idempotency_key
from changarrito.plugins.payments._money import (
    checked_amount,
    currency_code,
    from_minor_units,
    to_minor_units,
)
from changarrito.plugins.payments._webhooks import header, json_object
from changarrito.plugins.upstream import decode_json, scrub
from changarrito.plugins.whatsapp.base import WhatsAppProvider

__all__ = [
    "Attachment",
    "Audio",
    "ChatMessage",
    "Config",
    "Credentials",
    "FinalProviderError",
    "InvalidSignature",
    "InvalidWebhook",
    "LLMConfig",
    "LLMProvider",
    "OpenAICompatibleProvider",
    "PaymentEvent",
    "PaymentLink",
    "PaymentProvider",
    "PaymentStatus",
    "Provider",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderBadResponse",
    "ProviderContext",
    "ProviderError",
    "ProviderQuotaExceeded",
    "ProviderTimeout",
    "Reply",
    "RetryableProviderError",
    "Tool",
    "ToolCall",
    "Transcript",
    "Usage",
    "ValidationFailed",
    "WhatsAppProvider",
    "checked_amount",
    "currency_code",
    "decode_json",
    "from_minor_units",
    "header",
    "hookimpl",
    "idempotency_key",
    "json_object",
    "minor_unit_decimals",
    "scrub",
    "secret_values",
    "to_minor_units",
]
