"""The cheap check of a WhatsApp credential (PROVIDERS.md §1.13).

``GET {base}/{version}/{phoneNumberId}?fields=…`` with the number's bearer token, on the shared
pooled client of the Graph host. A bad token is Graph code 190 (HTTP 401), a wrong id code 100
(HTTP 400); errors are classified by ``graph.classify_graph_error``, the one Graph classifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from changarrito.adapters.http import HttpClients, decode_json, translate_transport_errors
from changarrito.adapters.whatsapp.graph import PROVIDER, classify_graph_error
from changarrito.domain.errors import ProviderBadRequest, ProviderBadResponse

FIELDS = "display_phone_number,verified_name,code_verification_status,quality_rating"
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class PhoneNumberInfo(msgspec.Struct, frozen=True):
    """The part of Graph's phone number node we read."""

    id: str
    display_phone_number: str | None = None
    verified_name: str | None = None
    code_verification_status: str | None = None
    quality_rating: str | None = None


class WhatsAppVerifier:
    """Asks Graph whether a token can read its phone number."""

    def __init__(self, http: HttpClients, base_url: str, version: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.version = version.strip("/")

    async def check(self, access_token: str, phone_number_id: str) -> PhoneNumberInfo:
        """The number's details; a ``ProviderError`` when the token or the id is refused."""
        if not phone_number_id.isdigit():
            raise ProviderBadRequest(
                f"not a WhatsApp phone number id: {phone_number_id!r}", provider=PROVIDER
            )
        url = f"{self.base_url}/{self.version}/{phone_number_id}"
        client = self.http.get(url)
        async with translate_transport_errors(PROVIDER):
            response = await client.get(
                url,
                params={"fields": FIELDS},
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=TIMEOUT,
            )
        if not response.is_success:
            raise classify_graph_error(response, secrets=[access_token])
        info: PhoneNumberInfo = decode_json(response, PhoneNumberInfo, PROVIDER)
        if info.id != phone_number_id:
            raise ProviderBadResponse(
                "WhatsApp answered about another phone number id", provider=PROVIDER
            )
        return info

    async def verify(self, secrets: Mapping[str, str], config: Mapping[str, Any]) -> None:
        await self.check(secrets["accessToken"], str(config["phoneNumberId"]))
