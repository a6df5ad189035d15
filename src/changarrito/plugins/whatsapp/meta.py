"""Meta's WhatsApp Cloud API (Graph), the built-in WhatsApp provider ``meta``.

A tenant's credential is the number's access token (plus the Meta app's secret and the
webhook's verify token, when the tenant has its own app); its config is the number's Graph ids
and how it is shown. ``verify`` is the cheap check: ``GET {base}/{version}/{phoneNumberId}?
fields=…`` with the number's bearer token. A bad token is Graph code 190 (HTTP 401), a wrong id
code 100 (HTTP 400); ``graph_errors.classify_graph_error`` is the one Graph classifier. Sending
stays in ``changarrito.adapters.whatsapp.graph`` for now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import httpx
import msgspec

from changarrito import hookimpl
from changarrito.domain.errors import ProviderBadRequest, ProviderBadResponse
from changarrito.plugins.base import Credentials
from changarrito.plugins.hookspecs import RegisterWhatsApp
from changarrito.plugins.upstream import decode_json, translate_transport_errors
from changarrito.plugins.whatsapp.base import WhatsAppProvider
from changarrito.plugins.whatsapp.graph_errors import PROVIDER, classify_graph_error

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v23.0"
FIELDS = "display_phone_number,verified_name,code_verification_status,quality_rating"

#: Graph ids (phone number, business account) are decimal strings.
GraphId = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,32}$")]
Text = Annotated[str, msgspec.Meta(max_length=200)]


class WhatsAppSecrets(Credentials, frozen=True):
    access_token: Annotated[str, msgspec.Meta(min_length=1)]
    #: The Meta app's secret, which signs the webhooks of the tenant's own app.
    app_secret: str | None = None
    #: The token Meta echoes when the tenant's own app subscribes its webhook.
    verify_token: str | None = None


class WhatsAppConfig(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    phone_number_id: GraphId
    business_account_id: GraphId
    phone_number: Text | None = None
    display_name: Text | None = None


class PhoneNumberInfo(msgspec.Struct, frozen=True):
    """The part of Graph's phone number node we read."""

    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None
    code_verification_status: str | None = None
    quality_rating: str | None = None


class MetaProvider(WhatsAppProvider):
    id: ClassVar[str] = "meta"
    name: ClassVar[str] = "Meta WhatsApp Cloud API"
    credentials_schema: ClassVar[type[msgspec.Struct]] = WhatsAppSecrets
    config_schema: ClassVar[type[msgspec.Struct]] = WhatsAppConfig
    platform_env: ClassVar[Mapping[str, str]] = {
        "accessToken": "WHATSAPP_ACCESS_TOKEN",
        "appSecret": "WHATSAPP_APP_SECRET",
        "verifyToken": "WHATSAPP_VERIFY_TOKEN",
    }
    platform_config_env: ClassVar[Mapping[str, str]] = {
        "phoneNumberId": "WHATSAPP_PHONE_NUMBER_ID",
        "businessAccountId": "WHATSAPP_BUSINESS_ACCOUNT_ID",
    }
    base_url_env: ClassVar[str | None] = "WHATSAPP_API_BASE_URL"
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    #: Environment variable naming the Graph API version (``v23.0``).
    version_env: ClassVar[str] = "WHATSAPP_API_VERSION"
    default_version: ClassVar[str] = DEFAULT_VERSION
    timeout: ClassVar[httpx.Timeout | None] = httpx.Timeout(10.0, connect=5.0)

    @classmethod
    def env_vars(cls) -> list[str]:
        return sorted({*super().env_vars(), cls.version_env})

    def graph_url(self, path: str) -> str:
        """``{base}/{version}/{path}`` from the context's environment, else Meta's."""
        version = self.context.env.get(self.version_env, "").strip() or self.default_version
        return f"{self.platform_base_url()}/{version.strip('/')}/{path}"

    async def check(self, access_token: str, phone_number_id: str) -> PhoneNumberInfo:
        """The number's details; a ``ProviderError`` when the token or the id is refused."""
        if not phone_number_id.isdigit():
            raise ProviderBadRequest(
                f"not a WhatsApp phone number id: {phone_number_id!r}", provider=PROVIDER
            )
        url = self.graph_url(phone_number_id)
        client: httpx.AsyncClient = self.context.http.get(url)
        async with translate_transport_errors(PROVIDER):
            response = await client.get(
                url,
                params={"fields": FIELDS},
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.timeout,
            )
        if not response.is_success:
            raise classify_graph_error(response, secrets=[access_token])
        info: PhoneNumberInfo = decode_json(response, PhoneNumberInfo, PROVIDER)
        if info.id != phone_number_id:
            raise ProviderBadResponse(
                "WhatsApp answered about another phone number id", provider=PROVIDER
            )
        return info

    async def verify(self, credentials: Any, config: Any) -> None:
        creds: WhatsAppSecrets = self.credentials_of(credentials)
        conf: WhatsAppConfig = self.config_of(config)
        await self.check(creds.access_token, conf.phone_number_id)


@hookimpl
def register_whatsapp_providers(register: RegisterWhatsApp) -> None:
    register(MetaProvider)
