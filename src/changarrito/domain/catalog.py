"""The port through which the use cases see the installed providers, of every kind.

``changarrito.plugins.catalog.RegistryCatalog`` implements it over the plugin registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from changarrito.domain.model import IntegrationType, Secrets


class ProviderCatalog(Protocol):
    """What the use cases need of the installed providers (WhatsApp included)."""

    def installed(self, itype: IntegrationType) -> list[str]: ...

    def default_model(self, provider: str) -> str | None: ...

    def normalize(
        self,
        itype: IntegrationType,
        provider: str,
        secrets: Mapping[str, str],
        config: Mapping[str, Any],
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Secrets and config checked against the provider's schemas; ``ValidationFailed``
        with field-level ``errors`` otherwise."""
        ...

    async def verify(
        self, itype: IntegrationType, provider: str, secrets: Secrets, config: Mapping[str, Any]
    ) -> None:
        """A cheap authenticated call; a ``ProviderError`` (scrubbed) when it fails."""
        ...
