"""The integrations use cases' own errors (their HTTP status comes from their base class)."""

from __future__ import annotations

from changarrito.domain.errors import Conflict, NotFound, ValidationFailed
from changarrito.domain.kinds import Kind


class UnknownProvider(ValidationFailed):
    """No provider by that id is installed (the request body's ``provider``): a 422."""

    code = "unknown-provider"

    def __init__(self, kind: Kind, provider: str, installed: list[str]) -> None:
        names = ", ".join(installed) or "none"
        super().__init__(
            f"Unknown {kind.label} provider {provider!r}; installed: {names}",
            errors=[("provider", f"must be one of: {names}")],
        )
        #: The problem ``type`` names the kind: ``unknown-llm-provider``.
        self.code = f"unknown-{kind.label.lower()}-provider"


class UnknownProviderInPath(NotFound):
    """No provider by that id is installed (the URL's ``{provider}``): a 404."""

    code = "unknown-provider"

    def __init__(self, kind: Kind, provider: str, installed: list[str]) -> None:
        names = ", ".join(installed) or "none"
        super().__init__(f"No {kind.label} provider {provider!r} is installed; installed: {names}")
        #: The problem ``type`` names the kind: ``unknown-payment-provider``.
        self.code = f"unknown-{kind.label.lower()}-provider"


class IntegrationNotConfigured(NotFound):
    """This tenant has no credentials of its own for this integration."""

    code = "integration-not-configured"


class NumberTaken(Conflict):
    """This WhatsApp phone number id is already registered to another account."""

    code = "phone-number-taken"
