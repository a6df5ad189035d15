"""One exception tree for the whole service.

Every error Changarrito raises on purpose is a ``ChangarritoError``. The class docstring is the
default message; entry points map classes (never status codes guessed elsewhere) to HTTP problem
responses or to one-line CLI errors. Messages never contain a secret.
"""

from __future__ import annotations


class ChangarritoError(Exception):
    """Changarrito failed."""

    #: Stable machine-readable slug, used as the RFC 9457 ``type`` suffix.
    code = "error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        super().__init__(self.message)


class ConfigurationError(ChangarritoError):
    """The service is misconfigured."""

    code = "configuration"


class ClientError(ChangarritoError):
    """The request cannot be carried out as given."""

    code = "bad-request"


class Unauthorized(ClientError):
    """The request is not authenticated."""

    code = "unauthorized"


class NotFound(ClientError):
    """Not found."""

    code = "not-found"


class TenantNotFound(NotFound):
    """No such tenant."""

    code = "tenant-not-found"


class Conflict(ClientError):
    """The request conflicts with what is stored."""

    code = "conflict"


class ValidationFailed(ClientError):
    """The input is not valid."""

    code = "validation"

    def __init__(
        self, message: str | None = None, *, errors: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        #: Field-level problems as ``(field path, message)``, e.g. ``("credentials.apiKey",
        #: "is required")``; rendered as the problem's ``errors`` member.
        self.errors = list(errors or [])


class NotConfigured(ClientError):
    """No credentials are configured for this integration."""

    code = "not-configured"


class UnknownPhoneNumber(ClientError):
    """This WhatsApp phone number id belongs to no active tenant and is not the platform's."""

    code = "unknown-phone-number"


class CredentialError(ChangarritoError):
    """A stored credential could not be read."""

    code = "credential"


class DecryptionFailed(CredentialError):
    """A stored credential could not be decrypted: wrong key ring, or the ciphertext was moved."""

    code = "decryption-failed"


class UnknownKey(DecryptionFailed):
    """A stored credential names an encryption key id that is not in the key ring."""

    code = "unknown-key"


class StorageError(ChangarritoError):
    """The database failed."""

    code = "storage"


class StorageUnavailable(StorageError):
    """The database cannot be reached."""

    code = "storage-unavailable"


class ProviderError(ChangarritoError):
    """The upstream provider failed.

    Classified once, where the response is read: ``retryable`` says whether the same call may
    succeed later (rate limits, overload, 5xx, timeouts), with ``retry_after`` seconds when the
    provider said so. Callers never guess from status codes.
    """

    code = "provider"
    retryable = False

    def __init__(
        self,
        message: str | None = None,
        *,
        provider: str | None = None,
        status: int | None = None,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.provider_code = provider_code
        self.retry_after = retry_after


class RetryableProviderError(ProviderError):
    """The provider is briefly unavailable or rate limited; the call may be retried."""

    code = "provider-unavailable"
    retryable = True


class ProviderTimeout(RetryableProviderError):
    """The provider did not answer in time."""

    code = "provider-timeout"


class RecipientRateLimited(RetryableProviderError):
    """Too many messages to this one recipient: wait before writing to them again (others are
    not affected)."""

    code = "recipient-rate-limited"


class CredentialsUnavailable(RetryableProviderError):
    """The backend that holds the credentials (BACKEND_URL) cannot be reached and nothing is
    cached to serve meanwhile; retry shortly."""

    code = "credentials-unavailable"


class FinalProviderError(ProviderError):
    """The provider refused the call; retrying it unchanged will not help."""

    code = "provider-refused"


class ProviderAuthError(FinalProviderError):
    """The provider rejected the credentials."""

    code = "provider-auth"


class ProviderQuotaExceeded(FinalProviderError):
    """The account is out of quota, credit or spend limit."""

    code = "provider-quota"


class ProviderBadRequest(FinalProviderError):
    """The provider rejected the request as invalid."""

    code = "provider-bad-request"


class ProviderBadResponse(RetryableProviderError):
    """The provider answered with something that is not its documented format."""

    code = "provider-bad-response"


class InvalidSignature(ClientError):
    """The notification's signature is missing or does not match."""

    code = "invalid-signature"


class InvalidWebhook(ClientError):
    """The body is not a WhatsApp webhook."""

    code = "invalid-webhook"
