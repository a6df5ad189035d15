"""Message templates: what Meta approved for a WhatsApp Business Account, and what a send of
each needs.

Pure. A template is synced from Graph (``GET /{waba-id}/message_templates``, PROVIDERS.md
5.5) as Meta gives it (``GraphTemplate``: its components verbatim) and stored per owner and
account (``Template``), with the parameters a send must fill read from its components
(``parameters_of``):

- ``BODY`` text and a ``TEXT`` ``HEADER``'s: every ``{{1}}``... (positional) or ``{{name}}``
  (named, ``parameter_format: NAMED``) placeholder, once each, in the order they first appear;
- a ``HEADER`` of format ``IMAGE``, ``VIDEO``, ``DOCUMENT`` or ``LOCATION``: one parameter of
  that kind;
- ``BUTTONS``: a ``URL`` button whose URL has a placeholder (its suffix), a ``QUICK_REPLY``
  (an optional ``payload``), a ``COPY_CODE`` (the ``coupon_code``); buttons numbered from 0
  in the order Meta lists them, as a send's ``index`` names them.

The webhook fields ``message_template_status_update``, ``template_category_update`` and
``message_template_quality_update`` are read by ``update_of`` into a ``TemplateUpdate``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID

#: The webhook fields that say something of a template.
STATUS_FIELD = "message_template_status_update"
CATEGORY_FIELD = "template_category_update"
QUALITY_FIELD = "message_template_quality_update"
TEMPLATE_FIELDS = frozenset({STATUS_FIELD, CATEGORY_FIELD, QUALITY_FIELD})

#: Statuses a template can have (the webhook's ``event`` values that are statuses).
TemplateStatus = Literal[
    "APPROVED",
    "PENDING",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "FLAGGED",
    "REINSTATED",
    "LIMIT_EXCEEDED",
    "LOCKED",
    "ARCHIVED",
    "DELETED",
    "PENDING_DELETION",
]
STATUSES = frozenset(get_args(TemplateStatus))
QUALITIES = frozenset({"GREEN", "YELLOW", "RED", "UNKNOWN"})
#: ``{{1}}``, ``{{ first_name }}``: Meta's placeholders (names are lower case, digits, ``_``).
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_HEADERS = {"IMAGE": "image", "VIDEO": "video", "DOCUMENT": "document", "GIF": "video"}


@dataclass(frozen=True, slots=True)
class Parameter:
    """One value a send of the template must (or, ``required`` False, may) give.

    ``component``: ``header``, ``body`` or ``button``; ``kind``: ``text``, ``image``,
    ``video``, ``document``, ``location``, ``payload`` (a quick reply's) or ``coupon_code``;
    ``name``: a named placeholder's name; ``index``: a positional placeholder's number
    (``{{2}}`` is 2); ``button``: the button's index and ``sub_type`` its type in lower case
    (``url``, ``quick_reply``, ``copy_code``)."""

    component: str
    kind: str
    name: str | None = None
    index: int | None = None
    button: int | None = None
    sub_type: str | None = None
    required: bool = True


@dataclass(frozen=True, slots=True)
class GraphTemplate:
    """A template as Graph lists it (``components`` as Meta gave them)."""

    id: str
    name: str
    language: str
    status: str
    category: str | None = None
    sub_category: str | None = None
    parameter_format: str | None = None
    quality: str | None = None
    components: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class TemplateListing:
    """What Graph listed; ``complete`` False when the listing stopped at the page cap (so
    nothing absent from it may be taken as removed)."""

    templates: Sequence[GraphTemplate]
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Template:
    """A stored template of an owner (``tenant_id``; ``None``: the platform's) and account."""

    id: int
    tenant_id: UUID | None
    business_account_id: str
    template_id: str
    name: str
    language: str
    category: str | None
    status: str
    quality: str | None
    parameter_format: str
    components: Sequence[Mapping[str, Any]]
    parameters: Sequence[Parameter]
    synced_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TemplateUpdate:
    """What a webhook says of one template: found by account and ``template_id``, else by
    ``name`` and ``language``; each of ``status``, ``category``, ``quality`` when it says."""

    business_account_id: str
    template_id: str | None
    name: str | None = None
    language: str | None = None
    status: str | None = None
    category: str | None = None
    quality: str | None = None


@dataclass(frozen=True, slots=True)
class TemplateFilters:
    #: Only templates of this status (Meta's, upper case) / of exactly this name.
    status: str | None = None
    name: str | None = None


#: The position after which a list of templates goes on: (name, language, row id).
TemplateKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class SyncResult:
    business_account_id: str
    synced: int
    removed: int
    complete: bool = True


def placeholders(text: str) -> list[str]:
    """The placeholders of ``text`` (``"{{1}} y {{2}}, {{1}}"`` → ``["1", "2"]``): each once,
    in the order they first appear."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def _text_parameters(component: str, text: Any, named: bool) -> list[Parameter]:
    if not isinstance(text, str):
        return []
    found = []
    for ph in placeholders(text):
        if not named and ph.isdigit():
            found.append(Parameter(component, "text", index=int(ph)))
        else:
            found.append(Parameter(component, "text", name=ph))
    return found


def _button_parameters(buttons: Any) -> list[Parameter]:
    found: list[Parameter] = []
    if not isinstance(buttons, list):
        return found
    for number, button in enumerate(buttons):
        if not isinstance(button, Mapping):
            continue
        kind = str(button.get("type", "")).upper()
        if kind == "URL":
            url = button.get("url")
            for ph in placeholders(url) if isinstance(url, str) else []:
                index = int(ph) if ph.isdigit() else None
                name = None if ph.isdigit() else ph
                found.append(Parameter("button", "text", name, index, number, "url"))
        elif kind == "QUICK_REPLY":
            reply = Parameter("button", "payload", button=number, sub_type="quick_reply")
            found.append(replace(reply, required=False))
        elif kind == "COPY_CODE":
            found.append(Parameter("button", "coupon_code", button=number, sub_type="copy_code"))
    return found


def parameters_of(
    components: Sequence[Mapping[str, Any]], parameter_format: str | None = None
) -> list[Parameter]:
    """The parameters a send of a template with these components fills: the header's, the
    body's, then the buttons', each in order (see the module's docstring)."""
    named = (parameter_format or "").upper() == "NAMED"
    header: list[Parameter] = []
    body: list[Parameter] = []
    buttons: list[Parameter] = []
    for component in components:
        if not isinstance(component, Mapping):
            continue
        kind = str(component.get("type", "")).upper()
        if kind == "HEADER":
            fmt = str(component.get("format", "")).upper()
            if fmt == "TEXT":
                header += _text_parameters("header", component.get("text"), named)
            elif fmt in MEDIA_HEADERS:
                header.append(Parameter("header", MEDIA_HEADERS[fmt]))
            elif fmt == "LOCATION":
                header.append(Parameter("header", "location"))
        elif kind == "BODY":
            body += _text_parameters("body", component.get("text"), named)
        elif kind == "BUTTONS":
            buttons += _button_parameters(component.get("buttons"))
    return header + body + buttons


def _text(value: Mapping[str, Any], key: str) -> str | None:
    found = value.get(key)
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    return found.strip() or None if isinstance(found, str) else None


def update_of(field_name: str, waba_id: str | None, value: Any) -> TemplateUpdate | None:
    """What a webhook change of ``field_name`` (one of ``TEMPLATE_FIELDS``) on account
    ``waba_id`` says of a template, or ``None`` when it names none (or nothing we keep: an
    ``UNARCHIVED`` event says no status; the next sync reads it). ``message_template_id`` is
    an integer in webhooks, a string in the API: both are read as the string."""
    if field_name not in TEMPLATE_FIELDS or not waba_id or not isinstance(value, Mapping):
        return None
    template_id = _text(value, "message_template_id")
    name = _text(value, "message_template_name")
    language = _text(value, "message_template_language")
    if template_id is None and (name is None or language is None):
        return None
    status = category = quality = None
    if field_name == STATUS_FIELD:
        event = (_text(value, "event") or "").upper()
        status = event if event in STATUSES else None
        category = (_text(value, "message_template_category") or "").upper() or None
    elif field_name == CATEGORY_FIELD:
        category = (_text(value, "new_category") or "").upper() or None
    else:
        score = (_text(value, "new_quality_score") or "").upper()
        quality = score if score in QUALITIES else None
    if status is None and category is None and quality is None:
        return None
    return TemplateUpdate(waba_id, template_id, name, language, status, category, quality)
