"""Wire shapes of the internal API (``X-Internal-Key``), shared by its server and its clients.

The ``whatsapp`` role's remote credentials provider decodes responses with these very Structs::

    msgspec.json.decode(response.content, type=ResolvedCredential)

``GET /api/v1/internal/integrations/{tenantId}/whatsapp`` and ``.../llm`` answer 200 with a
``ResolvedCredential`` (camelCase)::

    {"tenantId": "5f0c…", "integration": "whatsapp", "provider": "meta",
     "source": "tenant",                      # or "platform": the process's environment
     "isVerified": true,
     "credentials": {"accessToken": "EAA…", "appSecret": "…", "verifyToken": "…"},
     "config": {"phoneNumberId": "1065…", "businessAccountId": "…",
                "phoneNumber": "+52…", "displayName": "…"}}

    {"tenantId": "5f0c…", "integration": "llm", "provider": "anthropic", "source": "tenant",
     "isVerified": false,
     "credentials": {"apiKey": "sk-ant-…"},             # plus baseUrl/endpoint where the
     "config": {"model": "claude-…", "maxTokens": 512,  # provider's schema has them
                "temperature": 0.2, "systemPrompt": "…"}}

``credentials`` holds every secret field as stored (absent optional fields are left out);
``config`` is the provider's non-secret settings, and for ``llm`` always carries ``model``
(the tenant's, else ``LLM_MODEL`` for the platform, else the provider's default).

Errors are ``application/problem+json``: 401 ``invalid-internal-key``; 404
``tenant-not-found``; 409 ``not-configured`` when neither the tenant nor the platform has
credentials (a client then falls back to its own environment, which the backend does not
have either).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

INTERNAL_PREFIX = "/api/v1/internal"


def whatsapp_path(tenant_id: UUID | str) -> str:
    return f"{INTERNAL_PREFIX}/integrations/{tenant_id}/whatsapp"


def llm_path(tenant_id: UUID | str) -> str:
    return f"{INTERNAL_PREFIX}/integrations/{tenant_id}/llm"


def resolve_tenant_path(phone_number_id: str) -> str:
    return f"{INTERNAL_PREFIX}/integrations/resolve-tenant/{phone_number_id}"


class ResolvedCredential(msgspec.Struct, frozen=True, rename="camel", kw_only=True):
    """The credential that serves a tenant, and where it came from. Contains secrets."""

    tenant_id: UUID | None
    integration: Literal["whatsapp", "llm"]
    provider: str
    source: Literal["tenant", "platform"]
    is_verified: bool
    credentials: dict[str, str]
    config: dict[str, Any]

    def __repr__(self) -> str:  # never print the secrets
        return (
            f"ResolvedCredential(tenant_id={self.tenant_id}, integration={self.integration}, "
            f"provider={self.provider}, source={self.source}, "
            f"credentials=<{', '.join(sorted(self.credentials))}>)"
        )

    __str__ = __repr__


class TenantRoute(msgspec.Struct, frozen=True, rename="camel"):
    """Which tenant owns a WhatsApp phone number id (``null``: the platform's own number)."""

    tenant_id: UUID | None


#: A tenant's display name: 1 to 200 characters, not only spaces.
TenantName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S")]


class TenantCreate(msgspec.Struct, frozen=True, rename="camel"):
    name: TenantName


class TenantCreated(msgspec.Struct, frozen=True, rename="camel"):
    id: UUID
    name: str
