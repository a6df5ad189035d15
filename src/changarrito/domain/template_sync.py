"""The templates use case: list an owner's synced templates, sync them from Graph, and keep
them current from the webhook.

Pure; its ports are ``TemplateStore`` and ``TemplateSource`` (``domain/ports.py``) and the
credential ``Resolver``. Whose templates:

- a tenant's (``tenant_id``): those of the WhatsApp Business Account of its *own* WhatsApp
  credential (config ``businessAccountId``), read with its ``accessToken``; a tenant on the
  platform's number has none of its own (``NoOwnWhatsApp``, a 409);
- the platform's (``None``): those of ``WHATSAPP_BUSINESS_ACCOUNT_ID`` with
  ``WHATSAPP_ACCESS_TOKEN`` (the ``meta`` provider's platform credential); unset, a 409
  ``not-configured``.

A sync stores every template Graph lists (its components as given, the parameters read from
them) and removes the owner's templates Graph no longer lists (or of another account, after
the tenant changed its number); a listing cut short by the page cap removes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from changarrito.domain.errors import Conflict, NotConfigured
from changarrito.domain.model import IntegrationType, Secrets, Source
from changarrito.domain.ports import Resolver, TemplateSource, TemplateStore
from changarrito.domain.templates import (
    TEMPLATE_FIELDS,
    SyncResult,
    Template,
    TemplateFilters,
    TemplateKey,
    TemplateUpdate,
    parameters_of,
    update_of,
)
from changarrito.domain.whatsapp import WebhookEvent

WHATSAPP_PROVIDER = "meta"


class NoOwnWhatsApp(Conflict):
    """This tenant has no WhatsApp number of its own (it uses the platform's), so it has no
    templates to sync: connect one with PUT /api/v1/integrations/whatsapp first."""

    code = "no-own-whatsapp"


async def own_whatsapp(
    resolver: Resolver, tenant_id: UUID | None
) -> tuple[Mapping[str, Any], Secrets]:
    """The WhatsApp credential an owner's templates and first messages use (config and
    secrets): a tenant's own (``NoOwnWhatsApp`` for a tenant on the platform's number), the
    platform's for ``None`` (``NotConfigured`` when unset)."""
    if tenant_id is None:
        credential = resolver.platform.credential(IntegrationType.WHATSAPP, WHATSAPP_PROVIDER)
        if credential is None:
            raise NotConfigured("the platform's WhatsApp number is not configured")
        return credential.config, credential.secrets
    try:
        resolved = await resolver.resolve(tenant_id, IntegrationType.WHATSAPP)
    except NotConfigured as exc:
        raise NoOwnWhatsApp() from exc
    if resolved.source is not Source.TENANT:
        raise NoOwnWhatsApp()
    return resolved.config, resolved.secrets


class TemplateCatalog:
    def __init__(self, store: TemplateStore, resolver: Resolver, graph: TemplateSource) -> None:
        self.store = store
        self.resolver = resolver
        self.graph = graph

    async def templates(
        self,
        tenant_id: UUID | None,
        filters: TemplateFilters,
        after: TemplateKey | None,
        limit: int,
    ) -> tuple[list[Template], TemplateKey | None]:
        """A page of the owner's templates and the key of the next (``None``: the last)."""
        found = await self.store.templates(tenant_id, filters, after, limit + 1)
        page = found[:limit]
        last = page[-1] if len(found) > limit and page else None
        return page, (last.name, last.language, last.id) if last else None

    async def account(self, tenant_id: UUID | None) -> tuple[str, str]:
        """The owner's business account id and the token that reads it."""
        config, secrets = await own_whatsapp(self.resolver, tenant_id)
        waba, token = config.get("businessAccountId"), secrets.get("accessToken")
        if not waba or not token:
            whose = "the tenant's WhatsApp credential names" if tenant_id else "the platform has"
            raise NotConfigured(
                f"{whose} no business account or access token (the platform's: "
                "WHATSAPP_BUSINESS_ACCOUNT_ID and WHATSAPP_ACCESS_TOKEN)"
            )
        return str(waba), token

    async def sync_due(self, tenant_id: UUID | None, fresh_for: float) -> SyncResult | None:
        """``sync``, unless a sync listed the owner's templates less than ``fresh_for``
        seconds ago (``None``): every worker process runs the schedule, and the first to
        reach an owner spares the others the Graph calls. (Two that check at the same
        instant both sync: harmless, only a repeat.)"""
        if await self.store.synced_within(tenant_id, fresh_for):
            return None
        return await self.sync(tenant_id)

    async def sync(self, tenant_id: UUID | None) -> SyncResult:
        """Reads the owner's templates from Graph now and stores them (see the module)."""
        waba, token = await self.account(tenant_id)
        listing = await self.graph.message_templates(waba, token)
        listed = [(t, parameters_of(t.components, t.parameter_format)) for t in listing.templates]
        stored, removed = await self.store.replace_templates(
            tenant_id, waba, listed, complete=listing.complete
        )
        return SyncResult(waba, stored, removed, listing.complete)

    async def owners(self) -> list[UUID | None]:
        """Every owner whose templates the schedule syncs: each tenant with its own WhatsApp
        credential, then the platform when its account is configured."""
        owners: list[UUID | None] = list(await self.store.template_owners())
        platform = self.resolver.platform.credential(IntegrationType.WHATSAPP, WHATSAPP_PROVIDER)
        if platform is not None and platform.config.get("businessAccountId"):
            owners.append(None)
        return owners

    async def apply_events(self, events: Sequence[WebhookEvent]) -> int:
        """Applies the template webhooks among ``events`` (stored as events already) to the
        stored templates; how many rows changed."""
        changed = 0
        for update in updates_in(events):
            changed += await self.store.apply_update(update)
        return changed


def updates_in(events: Sequence[WebhookEvent]) -> list[TemplateUpdate]:
    """The template news of a webhook's events (a value that is not JSON says nothing)."""
    found = []
    for event in events:
        if event.kind != "field" or event.field not in TEMPLATE_FIELDS:
            continue
        try:
            value = json.loads(event.payload)
        except ValueError:
            continue
        update = update_of(event.field, event.waba_id, value)
        if update is not None:
            found.append(update)
    return found
