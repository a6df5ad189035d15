"""The templates API: a shop reads the message templates of its WhatsApp Business Account
and syncs them from Meta now.

The same endpoints twice, over ``domain.template_sync.TemplateCatalog``:

- ``/api/v1/templates`` (tenant JWT): the templates of the tenant's own WhatsApp number's
  account; a tenant on the platform's number has none (an empty list; a sync is a 409
  ``no-own-whatsapp``);
- ``/api/v1/internal/templates`` (``X-Internal-Key``): the platform's own account's
  (``WHATSAPP_BUSINESS_ACCOUNT_ID``; unset, a sync is a 409 ``not-configured``).

Lists go by name, then language, ``limit`` 1..100 (20), and go on with ``cursor`` (the page's
opaque ``nextCursor``); a cursor that is not one is a 400 ``invalid-cursor``. Graph's refusal
of a sync is a 502 problem, as every provider failure is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from changarrito.adapters.internal_api import INTERNAL_PREFIX
from changarrito.adapters.jwt_auth import TenantPrincipal
from changarrito.domain import templates as model
from changarrito.domain.template_sync import TemplateCatalog
from changarrito.domain.templates import TemplateFilters, TemplateKey, TemplateStatus
from changarrito.entrypoints.http import cursors
from changarrito.entrypoints.http.auth import BEARER, INTERNAL, require_internal_key
from changarrito.entrypoints.http.cursors import InvalidCursor
from changarrito.entrypoints.http.schemas import Wire, problem_responses

PREFIX = "/api/v1/templates"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
#: A template's name is up to 512 characters, and the cursor carries the last one's.
MAX_CURSOR_CHARS = 1024

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size (1 to 100).")]
Cursor = Annotated[
    str | None,
    QueryParameter(
        max_length=MAX_CURSOR_CHARS, description="The previous page's `nextCursor`.", required=False
    ),
]
StatusFilter = Annotated[
    TemplateStatus | None,
    QueryParameter(name="status", description="Only templates of this status.", required=False),
]
NameFilter = Annotated[
    str | None,
    QueryParameter(
        max_length=512, description="Only templates of exactly this name.", required=False
    ),
]

LIST = problem_responses(400, 401, 503)
SYNC = problem_responses(401, 409, 502, 503)


class TemplateParameter(Wire, frozen=True, omit_defaults=True):
    """A value a send fills: ``component`` ``header``, ``body`` or ``button``; ``kind``
    ``text``, ``image``, ``video``, ``document``, ``location``, ``payload`` (a quick reply's,
    optional) or ``coupon_code``; ``index`` the number of a positional placeholder (``{{2}}``
    is 2), ``name`` a named one's; ``button`` the button's index and ``subType`` its type
    (``url``, ``quick_reply``, ``copy_code``)."""

    component: str
    kind: str
    required: bool
    name: str | None = None
    index: int | None = None
    button: int | None = None
    sub_type: str | None = None

    @classmethod
    def of(cls, p: model.Parameter) -> TemplateParameter:
        return cls(
            component=p.component,
            kind=p.kind,
            name=p.name,
            index=p.index,
            button=p.button,
            sub_type=p.sub_type,
            required=p.required,
        )


class Template(Wire, frozen=True):
    """A template as Meta approved (or not) it: ``id`` is Meta's; ``status``, ``category``
    (``AUTHENTICATION``, ``MARKETING``, ``UTILITY``) and ``quality`` (``GREEN``, ``YELLOW``,
    ``RED``, ``UNKNOWN``, or null) as Meta last said (a sync or a webhook); ``components``
    exactly as Graph gave them; ``parameters`` what a send must fill, in order."""

    id: str
    name: str
    language: str
    category: str | None
    status: str
    quality: str | None
    parameter_format: str
    business_account_id: str
    components: list[dict[str, Any]]
    parameters: list[TemplateParameter]
    synced_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, t: model.Template) -> Template:
        return cls(
            id=t.template_id,
            name=t.name,
            language=t.language,
            category=t.category,
            status=t.status,
            quality=t.quality,
            parameter_format=t.parameter_format,
            business_account_id=t.business_account_id,
            components=[dict(c) for c in t.components],
            parameters=[TemplateParameter.of(p) for p in t.parameters],
            synced_at=t.synced_at,
            updated_at=t.updated_at,
        )


class TemplatePage(Wire, frozen=True):
    """By name, then language; pass ``nextCursor`` as ``cursor`` for the next page
    (``null``: this is the last one)."""

    data: list[Template]
    next_cursor: str | None


class TemplateSync(Wire, frozen=True):
    """What a sync did: templates Graph listed (``synced``, each stored) and stored ones it
    no longer lists (``removed``); ``complete`` false when the listing was too long to read
    whole (then nothing was removed)."""

    business_account_id: str
    synced: int
    removed: int
    complete: bool


def template_cursor(key: TemplateKey | None) -> str | None:
    return cursors.encode("t", *key) if key else None


def template_key(cursor: str | None) -> TemplateKey | None:
    if not cursor:
        return None
    name, language, row = cursors.decode(cursor, "t", 3)
    valid = isinstance(name, str) and isinstance(language, str) and type(row) is int
    if not valid or not 0 < row < 2**63:
        raise InvalidCursor()
    return name, language, row


async def tenant_owner(principal: NamedDependency[TenantPrincipal]) -> UUID | None:
    return principal.tenant_id


def platform_owner() -> UUID | None:
    return None


class TemplateEndpoints(Controller):
    """The endpoints both APIs share; a subclass says whose templates (``owner``)."""

    @get("/", responses=LIST, summary="Message templates, by name and language")
    async def list_templates(
        self,
        owner: NamedDependency[UUID | None],
        templates: NamedDependency[TemplateCatalog],
        in_status: StatusFilter = None,
        name: NameFilter = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> TemplatePage:
        """The account's templates as last synced; filter by ``status`` or exact ``name``."""
        filters = TemplateFilters(status=in_status, name=(name or "").strip() or None)
        page, after = await templates.templates(owner, filters, template_key(cursor), limit)
        return TemplatePage(data=[Template.of(t) for t in page], next_cursor=template_cursor(after))

    @post("/sync", status_code=200, responses=SYNC, summary="Sync the templates from Meta now")
    async def sync_templates(
        self, owner: NamedDependency[UUID | None], templates: NamedDependency[TemplateCatalog]
    ) -> TemplateSync:
        """Reads every template of the account from Graph with the number's own token,
        stores them, and removes those Graph no longer lists."""
        result = await templates.sync(owner)
        return TemplateSync(
            business_account_id=result.business_account_id,
            synced=result.synced,
            removed=result.removed,
            complete=result.complete,
        )


class TenantTemplates(TemplateEndpoints):
    path = PREFIX
    tags = ["templates"]
    security = BEARER
    dependencies = {"owner": Provide(tenant_owner)}


class PlatformTemplates(TemplateEndpoints):
    """The platform's own WhatsApp Business Account's templates."""

    path = f"{INTERNAL_PREFIX}/templates"
    tags = ["internal"]
    guards = [require_internal_key]
    security = INTERNAL
    dependencies = {"owner": Provide(platform_owner, sync_to_thread=False)}


#: What the backend role registers (see ``app.handlers_for``).
TEMPLATE_HANDLERS: list[Any] = [TenantTemplates, PlatformTemplates]
