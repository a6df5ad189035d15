"""Meta's WhatsApp Cloud API (Graph), the built-in WhatsApp provider ``meta``.

A tenant's credential is the number's access token (plus the Meta app's secret and the
webhook's verify token, when the tenant has its own app); its config is the number's Graph ids
and how it is shown. ``verify`` is also the proof of ownership a claim on the number and its
business account needs (``changarrito.domain.integrations``): with the tenant's own bearer
token, ``GET {base}/{version}/{phoneNumberId}?fields=…`` must answer for that number, and
``GET {base}/{version}/{businessAccountId}/phone_numbers?fields=id`` must list it (paged with
``after`` cursors, at most ``MAX_ACCOUNT_PAGES`` pages). A bad token is Graph code 190 (HTTP
401), a wrong id or an account the token cannot read code 100 (HTTP 400), a number outside the
account a ``ProviderBadRequest``; ``graph_errors.classify_graph_error`` is the one Graph
classifier. Sending stays in ``changarrito.adapters.whatsapp.graph`` for now.
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
#: Numbers asked for per page of an account's list, and pages read at most: an account has a
#: handful of numbers (Meta allows a few dozen without an increase).
ACCOUNT_PAGE_SIZE = 100
MAX_ACCOUNT_PAGES = 10

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
    #: Purpose -> template (``domain.template_send.mapping_from_json`` checks it).
    templates: dict[str, Any] | None = None


class PhoneNumberInfo(msgspec.Struct, frozen=True):
    """The part of Graph's phone number node we read."""

    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None
    code_verification_status: str | None = None
    quality_rating: str | None = None


class _Listed(msgspec.Struct, frozen=True):
    id: str


class _Cursors(msgspec.Struct, frozen=True):
    after: str | None = None


class _Paging(msgspec.Struct, frozen=True):
    cursors: _Cursors | None = None
    next: str | None = None


class AccountNumbers(msgspec.Struct, frozen=True):
    """One page of ``GET /{waba_id}/phone_numbers``: ``{"data": [{"id"}], "paging"?}``."""

    data: list[_Listed]
    paging: _Paging | None = None

    @property
    def after(self) -> str | None:
        """The cursor of the next page (``None``: this was the last)."""
        paging = self.paging
        if paging is None or not paging.next or paging.cursors is None:
            return None
        return paging.cursors.after or None


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

    async def account_lists(
        self, access_token: str, business_account_id: str, phone_number_id: str
    ) -> bool:
        """Whether the business account, read with ``access_token``, lists the number; a
        ``ProviderError`` when the token or the account id is refused."""
        url = self.graph_url(f"{business_account_id}/phone_numbers")
        client: httpx.AsyncClient = self.context.http.get(url)
        params = {"fields": "id", "limit": str(ACCOUNT_PAGE_SIZE)}
        for _ in range(MAX_ACCOUNT_PAGES):
            async with translate_transport_errors(PROVIDER):
                response = await client.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {access_token}"},
                    timeout=self.timeout,
                )
            if not response.is_success:
                raise classify_graph_error(response, secrets=[access_token])
            page: AccountNumbers = decode_json(response, AccountNumbers, PROVIDER)
            if any(n.id == phone_number_id for n in page.data):
                return True
            after = page.after
            if after is None:
                return False
            params = {**params, "after": after}
        return False

    async def verify(self, credentials: Any, config: Any) -> None:
        """The token reads the number, and the number is in the business account (read with
        the same token): the proof a claim on both needs."""
        creds: WhatsAppSecrets = self.credentials_of(credentials)
        conf: WhatsAppConfig = self.config_of(config)
        await self.check(creds.access_token, conf.phone_number_id)
        token, waba, number = creds.access_token, conf.business_account_id, conf.phone_number_id
        if not await self.account_lists(token, waba, number):
            raise ProviderBadRequest(
                f"WhatsApp business account {waba} does not list phone number id {number}",
                provider=PROVIDER,
            )


@hookimpl
def register_whatsapp_providers(register: RegisterWhatsApp) -> None:
    register(MetaProvider)
