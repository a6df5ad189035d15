"""Credential rows as stored: sealed secrets and the context that binds them to their row.

Secrets are JSON-serialised and encrypted with the cipher under the context
``"<tenant_id>|<integration_type>|<provider>"`` (``context_for``): a ciphertext copied onto
another row fails to decrypt. The store, key rotation and the WhatsApp app index read rows
through these.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from changarrito.domain.errors import DecryptionFailed
from changarrito.domain.model import Credential, IntegrationType, Secrets
from changarrito.domain.ports import Cipher


def context_for(tenant_id: UUID, integration_type: IntegrationType | str, provider: str) -> bytes:
    """The encryption context that binds a ciphertext to its row's owner."""
    return f"{tenant_id}|{IntegrationType(integration_type).value}|{provider}".encode()


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """A ``tenant_integration_credentials`` row, secrets still encrypted."""

    id: UUID
    tenant_id: UUID
    integration_type: str
    provider: str
    credentials: dict[str, Any]
    config: dict[str, Any]
    is_active: bool
    is_verified: bool
    priority: int
    created_at: datetime
    updated_at: datetime
    verified_at: datetime | None
    verification_error: str | None


async def open_row(cipher: Cipher, row: CredentialRow) -> Credential:
    """The credential a row holds, decrypted; ``DecryptionFailed`` naming the row."""
    context = context_for(row.tenant_id, row.integration_type, row.provider)
    try:
        plaintext = await cipher.decrypt(row.credentials, context)
    except DecryptionFailed as exc:
        raise type(exc)(
            f"the stored {row.integration_type} ({row.provider}) credential {row.id} of "
            f"tenant {row.tenant_id} cannot be decrypted: {exc.message}"
        ) from None
    try:
        data = json.loads(plaintext)
    except ValueError:
        raise DecryptionFailed(f"credential {row.id} decrypted to something not JSON") from None
    return to_credential(row, Secrets({str(k): str(v) for k, v in data.items()}))


def to_credential(row: CredentialRow, secrets: Secrets) -> Credential:
    return Credential(
        tenant_id=row.tenant_id,
        integration_type=IntegrationType(row.integration_type),
        provider=row.provider,
        secrets=secrets,
        config=row.config,
        is_active=row.is_active,
        is_verified=row.is_verified,
        priority=row.priority,
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        verified_at=row.verified_at,
        verification_error=row.verification_error,
    )
