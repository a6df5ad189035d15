"""A fake of Meta's Graph API messages endpoint on a real port, as Meta's Cloud API messages
reference describes sending and its errors.

``POST /{version}/{phone_number_id}/messages`` answers a text message with a new wamid and a
read receipt with ``{"success": true}``, unless the test scripted something else:
``graph.script_sends(FakeGraph.error(130429), Answer(200, ...))`` answers the next sends in
that order, then goes back to accepting. A request whose client hung up before the answer was
ready (a killed worker) is recorded as not answered, like a send Meta never accepted.

It also answers the two reads that confirm a tenant's claim on its number, for the numbers a
test said a token can read (``graph.own(token, waba_id, *phone_number_ids)``):
``GET /{version}/{phone_number_id}`` (the number's node) and ``GET
/{version}/{waba_id}/phone_numbers`` (``{"data": [{"id"}...]}``); anything else is Graph's
code 100 ("does not exist, cannot be loaded due to missing permissions").

Media, as Meta's Media API reference describes it (PROVIDERS.md 5.1):

- ``GET /{version}/{media-id}`` of an item a test added (``graph.add_media(...)``) answers its
  node (``messaging_product``, ``url``, ``mime_type``, ``sha256`` in hex, ``file_size`` as a
  string, ``id``) to the bearer token it was added for (any bearer token when none was
  given; without one, code 190); ``?phone_number_id=`` of another number is code 100.
- The node's ``url`` points back at this fake (``/media-download/{id}?token=...``): the bytes,
  with the item's ``Content-Type``, to the same bearer token; ``graph.expire_downloads(id, n)``
  makes the next ``n`` downloads 404 (an expired URL), ``graph.state_wrong_hash(id)`` and
  ``graph.state_size(id, n)`` make the node lie about the bytes it serves.
  ``graph.node_gets(id)`` and ``graph.downloads(id)`` count the calls.
- ``POST /{version}/{phone_number_id}/media`` (multipart) records the upload
  (``graph.uploads()``: file bytes, file name, content type, ``type``, ``messaging_product``)
  and answers ``{"id": "<new media id>"}``, unless ``graph.script_uploads(...)`` says otherwise;
  the uploaded file can be downloaded back like an added item.
- The messages endpoint takes ``image`` and ``document`` messages like text ones
  (``graph.media_sends()``).

Templates (PROVIDERS.md 5.5): ``GET /{version}/{waba_id}/message_templates`` lists the
account's templates a test added (``graph.add_template(waba, name, ...)``, changed with
``graph.set_template(...)``, removed with ``graph.remove_template(...)``) to a token that
owns the account (``graph.own(token, waba_id, ...)``; else code 100, no token code 190), in
pages of ``limit`` (at most ``graph.template_page_size`` when set): ``{"data": [...],
"paging": {"cursors": {"before", "after"}, "next"?}}``, ``next`` only while more follow, the
next page asked for with ``after``; only the ``fields`` asked for (all when none).

Template sends and the window: a ``"type": "template"`` message is accepted (a new wamid,
``graph.template_sends()``) when a test added a template of that ``name`` and
``language.code`` with status ``APPROVED``. Which accounts count: when ``graph.own(...)`` put
the sending number in an account, only that account's templates (a template belongs to its
business account, as on Meta); for a number no ``own`` mentions, every account's. Else Graph's
errors: no such template, or one not approved (pending, rejected...), is 132001 (HTTP 404,
"Template name does not exist in the translation"); ``PAUSED`` is 132015, ``DISABLED``
132016; a ``body`` component whose ``parameters`` are not as many as the distinct ``{{...}}``
placeholders of the template's ``BODY`` text (no body component: none) is 132000. Each
recipient's customer-service window is open unless the test closed it
(``graph.close_window(to)``, ``graph.open_window(to)``; ``to`` as sent: a phone number with
or without its ``+``, or a BSUID): any other message (text, image, document...) to a
recipient whose window is closed is 131047 ("Re-engagement message", HTTP 400); templates
go through. Scripted answers (``script_sends``) come first, whatever the message.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from changarrito.testing.upstream import Form
from fakes._server import Answer, FakeServer, Recorded

_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<pnid>\d+)/messages$")
_NODE = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<id>\d+)(?P<edge>/phone_numbers)?$")
_UPLOAD = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<pnid>\d+)/media$")
_DOWNLOAD = re.compile(r"^/media-download/(?P<id>\d+)$")
_TEMPLATES = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<waba>\d+)/message_templates$")
_BSUID = re.compile(r"^[A-Z]{2}\.[A-Za-z0-9]{1,128}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
REENGAGEMENT_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer last"
    " replied to this number."
)


@dataclass
class FakeMedia:
    """One item Graph holds: its bytes and what its node says of them (``sha256`` and
    ``file_size`` are what is *stated*; a test may make them lie)."""

    media_id: str
    content: bytes = field(repr=False)
    mime_type: str
    sha256: str
    file_size: int
    #: The bearer token that may read it (``None``: any) and the number it belongs to.
    token: str | None = None
    phone_number_id: str | None = None
    #: How many of the next downloads answer 404 (an expired URL).
    expire_next: int = 0
    node_gets: int = 0
    downloads: int = 0


@dataclass(frozen=True)
class FakeUpload:
    """One ``POST /{phone_number_id}/media`` as received."""

    phone_number_id: str
    token: str
    messaging_product: str | None
    type: str | None
    filename: str | None
    content_type: str | None
    content: bytes = field(repr=False)
    media_id: str | None


class FakeGraph(FakeServer):
    def __init__(self, version: str = "v23.0") -> None:
        super().__init__()
        self.version = version
        self.send_delay = 0.0
        self._sends: list[Answer] = []
        self._reads: list[Answer] = []
        self._ids = itertools.count(1)
        #: (token, phone number id) -> the business account it is in, as Graph lets it read.
        self._readable: dict[tuple[str, str], str] = {}
        self._media: dict[str, FakeMedia] = {}
        self._uploads: list[FakeUpload] = []
        self._upload_answers: list[Answer] = []
        self._media_ids = itertools.count(7_000_000_000_001)
        #: (token, business account) pairs a token may read, and each account's templates.
        self._accounts: set[tuple[str, str]] = set()
        self._templates: dict[str, list[dict[str, Any]]] = {}
        self._template_ids = itertools.count(9_000_000_000_001)
        #: The most templates one page holds, whatever ``limit`` asks (``None``: as asked).
        self.template_page_size: int | None = None
        #: Recipients (``window_key``) whose customer-service window is closed.
        self._closed_windows: set[str] = set()

    def own(self, token: str, waba_id: str, *phone_number_ids: str) -> None:
        """``token`` can read these numbers, in business account ``waba_id``, and the account."""
        with self._lock:
            self._accounts.add((token, waba_id))
            for pnid in phone_number_ids:
                self._readable[(token, pnid)] = waba_id

    @staticmethod
    def error(
        code: int,
        status: int = 400,
        message: str = "fake Graph error",
        *,
        details: str | None = None,
    ) -> Answer:
        """Graph's error body: ``(#code) message``, with ``details`` (else ``message``)."""
        return Answer(
            status,
            {
                "error": {
                    "message": f"(#{code}) {message}",
                    "type": "OAuthException",
                    "code": code,
                    "error_data": {"messaging_product": "whatsapp", "details": details or message},
                    "fbtrace_id": "AfakeTrace",
                }
            },
        )

    def script_sends(self, *answers: Answer) -> None:
        with self._lock:
            self._sends = list(answers)

    def script_reads(self, *answers: Answer) -> None:
        with self._lock:
            self._reads = list(answers)

    # Templates --------------------------------------------------------------------------

    def add_template(
        self,
        waba_id: str,
        name: str,
        language: str = "es_MX",
        *,
        components: list[dict[str, Any]] | None = None,
        category: str = "UTILITY",
        status: str = "APPROVED",
        parameter_format: str | None = None,
        quality: str | None = None,
        template_id: str | None = None,
    ) -> dict[str, Any]:
        """A template of account ``waba_id`` as Graph lists it (a new id when none given)."""
        template: dict[str, Any] = {
            "id": template_id or str(next(self._template_ids)),
            "name": name,
            "language": language,
            "status": status,
            "category": category,
            "components": components
            if components is not None
            else [{"type": "BODY", "text": "Hola {{1}}"}],
        }
        if parameter_format is not None:
            template["parameter_format"] = parameter_format
        if quality is not None:
            template["quality_score"] = {"score": quality, "date": 1735689600}
        with self._lock:
            self._templates.setdefault(waba_id, []).append(template)
        return template

    def set_template(self, waba_id: str, name: str, language: str, **fields: Any) -> None:
        """Changes a template's fields (``status="PAUSED"``, ``category=...``)."""
        with self._lock:
            for template in self._templates.get(waba_id, []):
                if template["name"] == name and template["language"] == language:
                    template.update(fields)

    def remove_template(self, waba_id: str, name: str, language: str) -> None:
        with self._lock:
            self._templates[waba_id] = [
                t
                for t in self._templates.get(waba_id, [])
                if (t["name"], t["language"]) != (name, language)
            ]

    def template_reads(self) -> list[Recorded]:
        return self.recorded(
            lambda r: r.method == "GET" and _TEMPLATES.match(urlsplit(r.path).path) is not None
        )

    def _template_page(self, recorded: Recorded, waba_id: str, token: str) -> Answer:
        if not token:
            return self.error(190, 401, "Invalid OAuth access token")
        query = parse_qs(urlsplit(recorded.path).query)
        with self._lock:
            allowed = (token, waba_id) in self._accounts
            templates = [dict(t) for t in self._templates.get(waba_id, [])]
        if not allowed:
            return self.error(100, 400, "Unsupported get request: does not exist or no permission")
        limit = int((query.get("limit") or ["25"])[0])
        if self.template_page_size is not None:
            limit = min(limit, self.template_page_size)
        after = (query.get("after") or [None])[0]
        try:
            start = int(base64.urlsafe_b64decode(after).decode()) if after else 0
        except ValueError:
            return self.error(100, 400, "Invalid parameter: after")
        page = templates[start : start + limit]
        fields = (query.get("fields") or [""])[0].split(",")
        if fields != [""]:
            page = [{k: v for k, v in t.items() if k in fields} for t in page]
        end = start + len(page)

        def cursor(n: int) -> str:
            return base64.urlsafe_b64encode(str(n).encode()).decode()

        paging: dict[str, Any] = {"cursors": {"before": cursor(start), "after": cursor(end)}}
        if end < len(templates):
            paging["next"] = f"{self.url}{urlsplit(recorded.path).path}?after={cursor(end)}"
        return Answer(200, {"data": page, "paging": paging})

    # Template sends and the customer-service window ---------------------------------------

    def close_window(self, to: str) -> None:
        """More than 24 hours since ``to`` last wrote: only templates reach them."""
        with self._lock:
            self._closed_windows.add(window_key(to))

    def open_window(self, to: str) -> None:
        """``to`` wrote again: anything reaches them."""
        with self._lock:
            self._closed_windows.discard(window_key(to))

    def template_sends(self, *, accepted_only: bool = True) -> list[Recorded]:
        """Template messages received (by default only those answered with a wamid)."""

        def is_template(r: Recorded) -> bool:
            if not (isinstance(r.body, dict) and r.body.get("type") == "template"):
                return False
            return not accepted_only or (r.answered and r.status == 200)

        return self.recorded(is_template)

    def _refusal(self, body: dict[str, Any], pnid: str) -> Answer | None:
        """Graph's refusal of a (non-read) message, or ``None`` when it is accepted."""
        if body.get("type") == "template":
            return self._template_refusal(body, pnid)
        to = body.get("to") or body.get("recipient") or ""
        with self._lock:
            closed = window_key(str(to)) in self._closed_windows
        if closed:
            return self.error(131047, 400, "Re-engagement message", details=REENGAGEMENT_DETAILS)
        return None

    def _template_refusal(self, body: dict[str, Any], pnid: str) -> Answer | None:
        sent = body.get("template")
        sent = sent if isinstance(sent, dict) else {}
        language = sent.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        with self._lock:
            own = {w for (_, p), w in self._readable.items() if p == pnid}
            accounts = own or set(self._templates)
            found = [
                t
                for w in sorted(accounts)
                for t in self._templates.get(w, [])
                if t["name"] == sent.get("name") and t["language"] == code
            ]
            found = [dict(t) for t in found]
        statuses = {str(t.get("status", "")).upper() for t in found}
        approved = [t for t in found if str(t.get("status", "")).upper() == "APPROVED"]
        if not approved:
            if "PAUSED" in statuses:
                return self.error(132015, 400, "Template is paused", details=_PAUSED)
            if "DISABLED" in statuses:
                return self.error(132016, 400, "Template is disabled", details=_DISABLED)
            return self.error(
                132001, 404, "Template name does not exist in the translation", details=_MISSING
            )
        expected = body_placeholders(approved[0])
        given = body_parameters(sent)
        if given != expected:
            return self.error(
                132000,
                400,
                "Number of parameters does not match the expected number of params",
                details=f"body: number of localizable_params ({given}) does not match the"
                f" expected number of params ({expected})",
            )
        return None

    # Media ------------------------------------------------------------------------------

    def add_media(
        self,
        media_id: str | None,
        content: bytes,
        mime_type: str,
        *,
        token: str | None = None,
        phone_number_id: str | None = None,
    ) -> FakeMedia:
        """An item Graph holds (``media_id`` ``None``: a new id), stating its true hash and
        size; readable with ``token`` only when one is given."""
        with self._lock:
            ident = media_id or str(next(self._media_ids))
            item = FakeMedia(
                ident,
                content,
                mime_type,
                hashlib.sha256(content).hexdigest(),
                len(content),
                token=token,
                phone_number_id=phone_number_id,
            )
            self._media[ident] = item
            return item

    def expire_downloads(self, media_id: str, times: int = 1) -> None:
        """The next ``times`` downloads of the item answer 404, as an expired URL does."""
        with self._lock:
            self._media[media_id].expire_next = times

    def state_wrong_hash(self, media_id: str) -> None:
        """The node states a SHA-256 that is not the bytes'."""
        with self._lock:
            self._media[media_id].sha256 = hashlib.sha256(b"not these bytes").hexdigest()

    def state_size(self, media_id: str, size: int) -> None:
        """The node states ``size`` bytes, whatever it serves: a small one while serving
        more (oversize while streaming), or one over the type's limit."""
        with self._lock:
            self._media[media_id].file_size = size

    def node_gets(self, media_id: str) -> int:
        with self._lock:
            return self._media[media_id].node_gets

    def downloads(self, media_id: str) -> int:
        """Download requests of the item (those answered 404 too)."""
        with self._lock:
            return self._media[media_id].downloads

    def script_uploads(self, *answers: Answer) -> None:
        with self._lock:
            self._upload_answers = list(answers)

    def uploads(self) -> list[FakeUpload]:
        with self._lock:
            return list(self._uploads)

    def media_sends(self, *, accepted_only: bool = True) -> list[Recorded]:
        """Picture, document and other media messages received."""

        def is_media(r: Recorded) -> bool:
            if not (isinstance(r.body, dict) and r.body.get("type") in MEDIA_TYPES):
                return False
            return not accepted_only or (r.answered and r.status == 200)

        return self.recorded(is_media)

    def _node(self, recorded: Recorded, item: FakeMedia, token: str) -> Answer:
        query = parse_qs(urlsplit(recorded.path).query)
        number = (query.get("phone_number_id") or [None])[0]
        with self._lock:
            item.node_gets += 1
            if item.token is not None and token != item.token:
                return self.error(100, 400, "Unsupported get request: no permission")
            if number and item.phone_number_id and number != item.phone_number_id:
                return self.error(100, 400, "Unsupported get request: not this number's media")
            nonce = secrets.token_urlsafe(12)
            return Answer(
                200,
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.url}/media-download/{item.media_id}?token={nonce}",
                    "mime_type": item.mime_type,
                    "sha256": item.sha256,
                    "file_size": str(item.file_size),
                    "id": item.media_id,
                },
            )

    def _download(self, recorded: Recorded, media_id: str, token: str) -> Answer:
        with self._lock:
            item = self._media.get(media_id)
            if item is None:
                return Answer(404, content=b"", content_type="text/plain")
            item.downloads += 1
            if not token or (item.token is not None and token != item.token):
                return self.error(190, 401, "Invalid OAuth access token")
            if item.expire_next > 0:
                item.expire_next -= 1
                return Answer(404, content=b"URL expired", content_type="text/plain")
            return Answer(200, content=item.content, content_type=item.mime_type)

    def _upload(self, recorded: Recorded, pnid: str, token: str) -> Answer:
        try:
            form = Form.parse(recorded.headers.get("content-type", ""), recorded.raw)
        except ValueError:
            form = Form()
        file = form.files.get("file")
        with self._lock:
            scripted = self._upload_answers.pop(0) if self._upload_answers else None
        media_id = None
        if scripted is None and file is not None and token:
            stored = self.add_media(
                None, file.data, file.content_type or "", token=token, phone_number_id=pnid
            )
            media_id = stored.media_id
        upload = FakeUpload(
            pnid,
            token,
            form.fields.get("messaging_product"),
            form.fields.get("type"),
            file.filename if file else None,
            file.content_type if file else None,
            file.data if file else b"",
            media_id,
        )
        with self._lock:
            self._uploads.append(upload)
        if scripted is not None:
            return scripted
        if not token:
            return self.error(190, 401, "Invalid OAuth access token")
        if file is None:
            return self.error(100, 400, "The parameter file is required")
        return Answer(200, {"id": media_id})

    def answer(self, recorded: Recorded) -> Answer:
        path = urlsplit(recorded.path).path
        token = recorded.headers.get("authorization", "").removeprefix("Bearer ")
        download = _DOWNLOAD.match(path)
        if recorded.method == "GET" and download is not None:
            return self._download(recorded, download["id"], token)
        node = _NODE.match(path)
        if recorded.method == "GET" and node is not None and not node["edge"]:
            with self._lock:
                item = self._media.get(node["id"])
            if item is not None and node["version"] == self.version:
                if not token:
                    return self.error(190, 401, "Invalid OAuth access token")
                return self._node(recorded, item, token)
        templates = _TEMPLATES.match(path)
        if recorded.method == "GET" and templates is not None:
            if templates["version"] != self.version:
                return self.error(100, 404, f"Unknown path {recorded.path}")
            return self._template_page(recorded, templates["waba"], token)
        if recorded.method == "GET":
            return self._read(recorded)
        upload = _UPLOAD.match(path)
        if recorded.method == "POST" and upload is not None and upload["version"] == self.version:
            return self._upload(recorded, upload["pnid"], token)
        match = _PATH.match(recorded.path)
        if recorded.method != "POST" or match is None or match["version"] != self.version:
            return self.error(100, 404, f"Unknown path {recorded.path}")
        body = recorded.body if isinstance(recorded.body, dict) else {}
        with self._lock:
            if body.get("status") == "read":
                return self._reads.pop(0) if self._reads else Answer(200, {"success": True})
            if self._sends:
                return self._sends.pop(0)
        refusal = self._refusal(body, match["pnid"])
        if refusal is not None:
            return refusal
        to = body.get("to") or body.get("recipient") or ""
        return Answer(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": str(to).lstrip("+")}],
                "messages": [{"id": f"wamid.FAKE{next(self._ids):06d}"}],
            },
            delay=self.send_delay,
        )

    def _read(self, recorded: Recorded) -> Answer:
        match = _NODE.match(urlsplit(recorded.path).path)
        token = recorded.headers.get("authorization", "").removeprefix("Bearer ")
        missing = self.error(100, 400, "Unsupported get request: does not exist or no permission")
        if match is None or match["version"] != self.version:
            return missing
        with self._lock:
            readable = dict(self._readable)
        if match["edge"]:
            listed = [p for (t, p), w in readable.items() if t == token and w == match["id"]]
            if not listed:
                return missing
            return Answer(200, {"data": [{"id": p} for p in listed]})
        if (token, match["id"]) not in readable:
            return missing
        return Answer(200, {"id": match["id"], "display_phone_number": "+52 55 0000 0000"})

    # What the tests look at ---------------------------------------------------------------

    def sends(self, *, accepted_only: bool = True) -> list[Recorded]:
        """Text messages received (by default only those answered with a wamid)."""

        def is_send(r: Recorded) -> bool:
            if not (isinstance(r.body, dict) and r.body.get("type") == "text"):
                return False
            return not accepted_only or (r.answered and r.status == 200)

        return self.recorded(is_send)

    def reads(self) -> list[Recorded]:
        return self.recorded(lambda r: isinstance(r.body, dict) and r.body.get("status") == "read")

    def replies_to(self, wamid: str) -> list[Recorded]:
        """Accepted text messages quoting ``wamid`` (``context.message_id``)."""
        return [s for s in self.sends() if quoted(s) == wamid]


_MISSING = (
    "The template does not exist in the specified language or the template has not been approved."
)
_PAUSED = "Template is paused due to low quality so it cannot be sent in a template message."
_DISABLED = "Template has been paused too many times due to low quality and is now disabled."


def window_key(to: str) -> str:
    """A recipient as the window knows it: a phone number's digits (with or without ``+``),
    else the BSUID (or whatever was sent) as it is."""
    to = to.strip()
    if _BSUID.match(to):
        return to
    digits = to.removeprefix("+")
    return digits if digits.isdigit() else to


def body_placeholders(template: dict[str, Any]) -> int:
    """The distinct ``{{...}}`` placeholders of a template's ``BODY`` text."""
    for component in template.get("components") or []:
        if isinstance(component, dict) and str(component.get("type", "")).upper() == "BODY":
            return len(set(_PLACEHOLDER.findall(str(component.get("text") or ""))))
    return 0


def body_parameters(sent: dict[str, Any]) -> int:
    """The ``parameters`` of a template send's ``body`` component (none: 0)."""
    for component in sent.get("components") or []:
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "body":
            parameters = component.get("parameters")
            return len(parameters) if isinstance(parameters, list) else 0
    return 0


def quoted(recorded: Recorded) -> str | None:
    context: Any = recorded.body.get("context") if isinstance(recorded.body, dict) else None
    return context.get("message_id") if isinstance(context, dict) else None


def phone_number_id(recorded: Recorded) -> str | None:
    match = _PATH.match(recorded.path)
    return match["pnid"] if match else None
