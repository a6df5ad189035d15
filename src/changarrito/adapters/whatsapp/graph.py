"""Sending through Meta's Graph API (its errors are classified by the ``meta`` provider's
``changarrito.plugins.whatsapp.graph_errors.classify_graph_error``).

``POST {base}/{version}/{phone_number_id}/messages`` with the number's own bearer token, on the
shared pooled client of the Graph host; pictures and documents are uploaded first with ``POST
{base}/{version}/{phone_number_id}/media`` (multipart) and sent by the id Graph answers, or
sent by a public ``link`` Meta fetches itself. Graph reports most failures as
HTTP 400 whatever they mean, rate limits included, so ``classify_graph_error`` reads
``error.code`` first and the HTTP status only when the body has no code it knows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import structlog

from changarrito.adapters.http import HttpClients, decode_json, translate_transport_errors
from changarrito.domain import media
from changarrito.domain.errors import FinalProviderError, ProviderBadRequest, ProviderError
from changarrito.domain.media import MAX_CAPTION_CHARS, MediaFile, OutgoingMedia
from changarrito.domain.templates import GraphTemplate, TemplateListing
from changarrito.domain.text import MAX_TEXT_CHARS, split_text
from changarrito.plugins.whatsapp.graph_errors import (
    PROVIDER,
    classify_graph_error,
)

if TYPE_CHECKING:
    from changarrito.adapters.metrics import Metrics

log = structlog.get_logger(__name__)

#: Graph calls answer in well under a second; a stuck one is retried, not waited on.
DEFAULT_TIMEOUT = 20.0

_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9]{1,128}$")
#: Where Meta serves media downloads (``lookaside.fbsbx.com`` in its examples).
MEDIA_HOSTS = (".fbsbx.com", ".facebook.com", ".fbcdn.net", ".whatsapp.net")
#: The most characters of ``biz_opaque_callback_data`` Meta takes (it echoes them in the
#: message's status webhooks).
MAX_CALLBACK_DATA_CHARS = 512


class _SentMessage(msgspec.Struct):
    id: str


class MediaNode(msgspec.Struct):
    """``GET /{media-id}``: where to download the item (a URL valid for minutes) and what
    Meta says it is (``file_size`` comes as a string)."""

    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | str | None = None
    id: str | None = None

    @property
    def size(self) -> int | None:
        try:
            return int(self.file_size) if self.file_size is not None else None
        except ValueError:
            return None


class UploadResponse(msgspec.Struct):
    """``POST /{phone_number_id}/media`` answers the new media's id."""

    id: str


#: Templates asked for per page of ``GET /{waba_id}/message_templates``, and pages read at
#: most (Meta allows 6,000 templates to a verified account: 60 pages).
TEMPLATE_PAGE_SIZE = 100
MAX_TEMPLATE_PAGES = 60
TEMPLATE_FIELDS = (
    "id,name,language,status,category,sub_category,parameter_format,components,quality_score"
)


class _Quality(msgspec.Struct):
    score: str | None = None


class _ListedTemplate(msgspec.Struct):
    id: str
    name: str
    language: str
    status: str
    category: str | None = None
    sub_category: str | None = None
    parameter_format: str | None = None
    quality_score: _Quality | None = None
    components: list[dict[str, Any]] = []

    def record(self) -> GraphTemplate:
        quality = self.quality_score.score if self.quality_score else None
        return GraphTemplate(
            id=self.id,
            name=self.name,
            language=self.language,
            status=self.status.upper(),
            category=self.category.upper() if self.category else None,
            sub_category=self.sub_category,
            parameter_format=self.parameter_format,
            quality=quality.upper() if quality else None,
            components=self.components,
        )


class _Cursors(msgspec.Struct):
    after: str | None = None


class _Paging(msgspec.Struct):
    cursors: _Cursors | None = None
    next: str | None = None


class TemplatePage(msgspec.Struct):
    """One page of ``GET /{waba_id}/message_templates``: ``{"data": [...], "paging"?}``."""

    data: list[_ListedTemplate]
    paging: _Paging | None = None

    @property
    def after(self) -> str | None:
        """The cursor of the next page (``None``: this was the last)."""
        paging = self.paging
        if paging is None or not paging.next or paging.cursors is None:
            return None
        return paging.cursors.after or None


class SendResponse(msgspec.Struct):
    """The part of Graph's send response we read: ``messages[0].id`` is the new wamid."""

    messages: list[_SentMessage]


def recipient_fields(to: str) -> dict[str, str]:
    """``to`` as Graph wants it: a phone number in E.164 with its ``+`` (without it Meta
    prepends the business number's country code), or a business-scoped user id in
    ``recipient`` when the customer has no phone number in the webhook (§1.7)."""
    to = to.strip()
    if _BSUID.match(to):
        return {"recipient": to}
    digits = to.removeprefix("+")
    return {"to": f"+{digits}" if digits.isdigit() else to}


class GraphClient:
    """Sends text messages, pictures, documents, template messages and read receipts from a
    WhatsApp Business number, and downloads the customer's media.

    The token is passed per call (it belongs to the number, resolved per message); the HTTP
    client is the shared pooled one of the Graph host.
    """

    def __init__(
        self,
        http: HttpClients,
        base_url: str,
        version: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        metrics: Metrics | None = None,
    ) -> None:
        self.http = http
        self.metrics = metrics
        self.base_url = base_url.rstrip("/")
        self.version = version.strip("/")
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))

    def messages_url(self, phone_number_id: str, edge: str = "messages") -> str:
        if not phone_number_id.isdigit():
            raise ProviderBadRequest(
                f"not a WhatsApp phone number id: {phone_number_id!r}", provider=PROVIDER
            )
        return f"{self.base_url}/{self.version}/{phone_number_id}/{edge}"

    async def send_text(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        body: str,
        reply_to_wamid: str | None = None,
    ) -> list[str]:
        """Sends ``body`` to ``to`` and returns the wamid of each message sent, in order.

        A body over 4,096 characters goes as several messages, split on paragraph, sentence
        or word boundaries and sent one after the other; only the first quotes
        ``reply_to_wamid`` (``context.message_id``).
        """
        parts = split_text(body, MAX_TEXT_CHARS)
        if not parts:
            raise ProviderBadRequest("refusing to send an empty WhatsApp message")
        wamids: list[str] = []
        for index, part in enumerate(parts):
            message: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                **recipient_fields(to),
                "type": "text",
                "text": {"preview_url": False, "body": part},
            }
            if reply_to_wamid and index == 0:
                message["context"] = {"message_id": reply_to_wamid}
            response = await self._post(phone_number_id, token, message)
            wamids.append(_wamid(response))
        return wamids

    async def upload_media(
        self, phone_number_id: str, token: str, content: bytes, mime_type: str, filename: str
    ) -> str:
        """Uploads ``content`` for ``phone_number_id`` to send (Graph keeps it 30 days) and
        returns its media id: ``multipart/form-data`` with ``messaging_product=whatsapp``,
        ``type`` (the MIME type) and ``file``. Checking what the bytes are is the caller's
        (``domain/outgoing.py``); Graph refuses a MIME type that does not match (131053)."""
        url = self.messages_url(phone_number_id, "media")
        request: dict[str, Any] = {
            "data": {"messaging_product": "whatsapp", "type": mime_type},
            "files": {"file": (filename, content, mime_type)},
        }
        response = await self._call("upload", url, token, request)
        uploaded: UploadResponse = decode_json(response, UploadResponse, PROVIDER)
        if not uploaded.id.isdigit():
            raise FinalProviderError(
                "WhatsApp accepted the upload but returned no media id", provider=PROVIDER
            )
        return uploaded.id

    async def send_media(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        media: OutgoingMedia,
        reply_to_wamid: str | None = None,
    ) -> str:
        """Sends a picture or document by its uploaded ``media_id`` or by ``link``, with its
        caption (up to 1,024 characters) and, for a document, its ``filename``; returns the
        wamid."""
        body = media_body(media)
        message: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **recipient_fields(to),
            "type": media.kind,
            media.kind: body,
        }
        if reply_to_wamid:
            message["context"] = {"message_id": reply_to_wamid}
        response = await self._post(phone_number_id, token, message)
        return _wamid(response)

    async def send_template(
        self,
        phone_number_id: str,
        token: str,
        to: str,
        name: str,
        language: str,
        components: Sequence[Mapping[str, Any]],
        *,
        callback_data: str | None = None,
    ) -> str:
        """Sends the approved template ``name`` in ``language`` (its code, ``es_MX``) with its
        filled-in ``components`` (``[{"type": "body", "parameters": [...]}, ...]``, sent as
        given; none: no ``components`` member) and returns the wamid. ``callback_data`` (at
        most 512 characters) goes as ``biz_opaque_callback_data``, which Meta echoes in the
        message's status webhooks. Templates are what may be sent outside the customer's
        24-hour window; Graph refuses unknown, paused or mis-filled ones (132xxx, final)."""
        if callback_data is not None and len(callback_data) > MAX_CALLBACK_DATA_CHARS:
            raise ProviderBadRequest(
                f"callback data is at most {MAX_CALLBACK_DATA_CHARS} characters",
                provider=PROVIDER,
            )
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = [dict(component) for component in components]
        message: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **recipient_fields(to),
            "type": "template",
            "template": template,
        }
        if callback_data is not None:
            message["biz_opaque_callback_data"] = callback_data
        response = await self._post(phone_number_id, token, message)
        return _wamid(response)

    async def mark_read(
        self, phone_number_id: str, token: str, wamid: str, *, typing: bool = False
    ) -> None:
        """Marks the inbound message ``wamid`` as read (blue ticks), optionally showing the
        typing indicator until the reply arrives or 25 seconds pass."""
        message: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": wamid,
        }
        if typing:
            message["typing_indicator"] = {"type": "text"}
        await self._post(phone_number_id, token, message)

    async def download_media(
        self, media_id: str, token: str, *, kind: str, phone_number_id: str | None = None
    ) -> MediaFile:
        """Downloads the customer's ``kind`` item ``media_id`` with the receiving number's
        token: its node (URL, MIME type, SHA-256, size), checked against ``domain/media.py``'s
        limits before anything is downloaded, then its bytes, counted while they arrive and
        their hash checked. The URL lives minutes: a 404 asks for a fresh one, once. The
        token goes only to the Graph host or Meta's media hosts."""
        if not media_id.isdigit():
            raise ProviderBadRequest(f"not a WhatsApp media id: {media_id!r}", provider=PROVIDER)
        try:
            return await self._download(media_id, token, kind, phone_number_id)
        except ProviderError as exc:
            self._count("media", exc)
            raise

    async def _download(
        self, media_id: str, token: str, kind: str, phone_number_id: str | None
    ) -> MediaFile:
        for attempt in (1, 2):
            node = await self._media_node(media_id, token, phone_number_id)
            limit = media.check_metadata(kind, node.mime_type, node.size)
            self._check_media_host(node.url)
            received = media.Received(kind, limit)
            client = self.http.get(node.url)
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                translate_transport_errors(PROVIDER),
                client.stream("GET", node.url, headers=headers, timeout=self.timeout) as response,
            ):
                if response.status_code == 404 and attempt == 1:
                    continue  # the URL expired: ask Graph for a fresh one
                if response.status_code == 404:
                    raise media.MediaRefused(
                        "the media's download link expired twice", reason="expired"
                    )
                if not response.is_success:
                    await response.aread()
                    raise classify_graph_error(response, secrets=[token])
                async for chunk in response.aiter_bytes():
                    received.add(chunk)
            content = received.verified(node.sha256)
            assert node.mime_type is not None  # check_metadata allowed it
            self._count("media", None)
            return MediaFile(content, media.essence(node.mime_type), node.sha256, received.size)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _media_node(
        self, media_id: str, token: str, phone_number_id: str | None
    ) -> MediaNode:
        url = f"{self.base_url}/{self.version}/{media_id}"
        params = {"phone_number_id": phone_number_id} if phone_number_id else None
        client = self.http.get(url)
        headers = {"Authorization": f"Bearer {token}"}
        async with translate_transport_errors(PROVIDER):
            response = await client.get(url, params=params, headers=headers, timeout=self.timeout)
        if not response.is_success:
            raise classify_graph_error(response, secrets=[token])
        node: MediaNode = decode_json(response, MediaNode, PROVIDER)
        return node

    def _check_media_host(self, url: str) -> None:
        """The bearer token goes with the download: only to the Graph host itself or to
        Meta's own media hosts, over HTTPS (or the Graph host's own scheme)."""
        target, graph = httpx.URL(url), httpx.URL(self.base_url)
        host = target.host.lower()
        same = host == graph.host.lower() and target.scheme == graph.scheme
        meta = target.scheme == "https" and host.endswith(MEDIA_HOSTS)
        if not (same or meta):
            raise media.MediaRefused(
                f"refusing to send the token to {host or 'an unnamed host'} for a download",
                reason="untrusted-host",
            )

    async def message_templates(self, waba_id: str, token: str) -> TemplateListing:
        """Every template of business account ``waba_id``, read with its ``token``: pages of
        ``TEMPLATE_PAGE_SIZE`` asked for with the previous page's ``cursors.after`` while it
        has a ``next`` (never the ``next`` URL itself: the token goes only to the Graph
        host), at most ``MAX_TEMPLATE_PAGES`` (past it the listing is not ``complete``)."""
        if not waba_id.isdigit():
            raise ProviderBadRequest(
                f"not a WhatsApp Business Account id: {waba_id!r}", provider=PROVIDER
            )
        url = f"{self.base_url}/{self.version}/{waba_id}/message_templates"
        params = {"fields": TEMPLATE_FIELDS, "limit": str(TEMPLATE_PAGE_SIZE)}
        found: list[GraphTemplate] = []
        for _ in range(MAX_TEMPLATE_PAGES):
            page = await self._template_page(url, token, params)
            found += [t.record() for t in page.data]
            after = page.after
            if after is None:
                self._count("templates", None)
                return TemplateListing(found)
            params = {**params, "after": after}
        self._count("templates", None)
        log.warning("whatsapp.templates_truncated", pages=MAX_TEMPLATE_PAGES, found=len(found))
        return TemplateListing(found, complete=False)

    async def _template_page(self, url: str, token: str, params: dict[str, str]) -> TemplatePage:
        client = self.http.get(url)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with translate_transport_errors(PROVIDER):
                response = await client.get(
                    url, params=params, headers=headers, timeout=self.timeout
                )
            if not response.is_success:
                raise classify_graph_error(response, secrets=[token])
            page: TemplatePage = decode_json(response, TemplatePage, PROVIDER)
        except ProviderError as exc:
            self._count("templates", exc)
            raise
        return page

    async def _post(self, phone_number_id: str, token: str, body: dict[str, Any]) -> httpx.Response:
        url = self.messages_url(phone_number_id)
        kind = "read" if body.get("status") == "read" else "message"
        return await self._call(kind, url, token, {"json": body})

    async def _call(
        self, kind: str, url: str, token: str, request: dict[str, Any]
    ) -> httpx.Response:
        """POSTs ``request`` (httpx's ``json=`` or ``data=``/``files=``) with the token,
        counting the call as ``kind`` and classifying Graph's refusal."""
        client = self.http.get(url)
        headers = {"Authorization": f"Bearer {token}"}
        if "json" in request:
            headers["Content-Type"] = "application/json"
        try:
            async with translate_transport_errors(PROVIDER):
                response = await client.post(url, headers=headers, timeout=self.timeout, **request)
        except ProviderError as exc:
            self._count(kind, exc)
            raise
        if response.is_success:
            self._count(kind, None)
            return response
        error = classify_graph_error(response, secrets=[token])
        self._count(kind, error)
        log.warning(
            "whatsapp.graph_failed",
            status=response.status_code,
            graph_code=error.provider_code,
            retryable=error.retryable,
            error=error.message,
        )
        raise error

    def _count(self, kind: str, error: ProviderError | None) -> None:
        if self.metrics is not None:
            self.metrics.graph_call(kind, error, error.provider_code if error else None)


def media_body(media: OutgoingMedia) -> dict[str, str]:
    """The ``image`` or ``document`` object of a send: ``id`` or ``link`` (exactly one), the
    caption when there is one, and a document's ``filename``."""
    if media.kind not in ("image", "document"):
        raise ProviderBadRequest(f"cannot send a {media.kind!r} as media", provider=PROVIDER)
    if (media.media_id is None) == (media.link is None):
        raise ProviderBadRequest("a media message needs either an id or a link", provider=PROVIDER)
    if media.media_id is not None and not media.media_id.isdigit():
        raise ProviderBadRequest(f"not a WhatsApp media id: {media.media_id!r}", provider=PROVIDER)
    body = {"id": media.media_id} if media.media_id is not None else {"link": str(media.link)}
    if media.caption:
        if len(media.caption) > MAX_CAPTION_CHARS:
            raise ProviderBadRequest(
                f"a caption is at most {MAX_CAPTION_CHARS:,} characters", provider=PROVIDER
            )
        body["caption"] = media.caption
    if media.filename and media.kind == "document":
        body["filename"] = media.filename
    return body


def _wamid(response: httpx.Response) -> str:
    sent: SendResponse = decode_json(response, SendResponse, PROVIDER)
    if not sent.messages:
        raise FinalProviderError(
            "WhatsApp accepted the message but returned no message id",
            provider=PROVIDER,
            status=response.status_code,
        )
    return sent.messages[0].id
