"""Meta's webhook, past HTTP: the verification handshake, the signature policy, durable intake.

Which app secret signs a body: each business number in it is routed (cached); a tenant's
number uses that tenant's own ``appSecret`` when it has one, the platform's number (or a
tenant's without one) the platform's ``WHATSAPP_APP_SECRET``. A number nobody here has
claimed (a claim Graph has not confirmed is none: it is not routed and its tenant's app
secret signs nothing), and a change that names no number, use the app of their business
account (``entry[].id``): the app of the tenant Graph confirmed on that account
(``WhatsAppAppIndex.tenant_of_account``) when it has one, else the platform's. The unclaimed
number's updates are stored ``unrouted``; an unnumbered change is stored with the tenant
owning its account.
The body must verify under *every* distinct secret so selected, and no secret configured for
a number is a refusal (never an open door). A body that is not JSON cannot name its numbers,
so it is an ``InvalidWebhook`` whoever signed it (nothing of it is stored).

``receive`` returns only once every update of the body is committed (``IntakeStore``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

import structlog
from cachetools import TTLCache

from changarrito.adapters.whatsapp.webhook_parser import (
    Destination,
    ParsedWebhook,
    parse,
    to_intake,
)
from changarrito.domain.changes import Change
from changarrito.domain.errors import (
    ChangarritoError,
    InvalidSignature,
    NotConfigured,
    UnknownPhoneNumber,
)
from changarrito.domain.model import utcnow
from changarrito.domain.ports import IntakeStore, Resolver, WhatsAppAppIndex
from changarrito.domain.whatsapp import Intake, RouteKind, WebhookEvent

log = structlog.get_logger(__name__)

#: Tenants whose quiet period the intake keeps, and for how long (seconds).
QUIET_CACHE = 10_000
QUIET_TTL = 60.0

_PREFIX = "sha256="
#: Numbers looked up for a body the platform's secret does not sign: a tenant's app signs
#: bodies about its own few numbers, and a forged body must not cost a lookup per number.
MAX_NUMBERS_UNSIGNED = 20


@dataclass(frozen=True, slots=True)
class Received:
    """What one delivery stored: its updates, and the wamids of the messages that were new."""

    intake: Intake
    new: set[str]


class WebhookIntake:
    """The webhook use cases over the resolver (routes and tenants' app secrets), the index of
    tenants' Meta apps (verify tokens, accounts) and the intake store."""

    def __init__(
        self,
        resolver: Resolver,
        apps: WhatsAppAppIndex,
        store: IntakeStore,
        *,
        verify_token: str | None,
        app_secret: str | None,
        quiet_period: Callable[[UUID | None], Awaitable[float]] | None = None,
        on_events: Callable[[Sequence[WebhookEvent]], Awaitable[int]] | None = None,
    ) -> None:
        self.resolver = resolver
        #: Told of the events of every delivery once they are stored (the templates'
        #: status, category and quality webhooks update the synced templates); its failure
        #: is logged, never the delivery's (the events are stored and the next sync catches up).
        self.on_events = on_events
        #: A tenant's quiet period (``None`` the platform's): its messages are first due
        #: that long after they arrived. Kept a minute per tenant (a tenant without an LLM
        #: credential of its own would otherwise cost a credential read per webhook), and
        #: forgotten when the tenant's credentials change (``on_change``).
        self.quiet_period = quiet_period
        self._quiet: TTLCache[UUID | None, float] = TTLCache(maxsize=QUIET_CACHE, ttl=QUIET_TTL)
        self.apps = apps
        self.store = store
        self._verify_token = verify_token
        self._app_secret = app_secret

    def __repr__(self) -> str:
        return "WebhookIntake()"

    def on_change(self, change: Change) -> None:
        if change.everything:
            self._quiet.clear()
        elif change.tenant_id is not None:
            self._quiet.pop(change.tenant_id, None)

    async def _quiet_period(self, tenant_id: UUID | None) -> float:
        if self.quiet_period is None:
            return 0.0
        try:
            return self._quiet[tenant_id]
        except KeyError:
            pass
        quiet = self._quiet[tenant_id] = await self.quiet_period(tenant_id)
        return quiet

    async def handshake(self, mode: str | None, token: str) -> bool:
        """True when ``mode`` is ``subscribe`` and ``token`` is the platform's or an active
        tenant's verify token (compared in constant time)."""
        if mode != "subscribe" or not token:
            return False
        platform = self._verify_token
        if platform and hmac.compare_digest(token.encode(), platform.encode()):
            return True
        return await self.apps.verify_token_matches(token)

    async def receive(self, body: bytes, signature_header: str | None) -> Received:
        """Checks the signature, routes every update and stores them; ``InvalidSignature``,
        ``InvalidWebhook`` (a body that is not a webhook) or a ``StorageError``."""
        signature = signature_of(signature_header)
        hook = parse(body)
        routes = await self._verify(hook, body, signature)
        intake = to_intake(hook, routes.destinations, utcnow(), routes.accounts)
        new = await self.store.submit(intake)
        if self.on_events is not None and intake.events:
            try:
                await self.on_events(intake.events)
            except ChangarritoError as exc:
                log.warning("whatsapp.events_not_applied", error=exc.message)
        return Received(intake, new)

    async def _verify(self, hook: ParsedWebhook, body: bytes, signature: bytes) -> _Routes:
        """Routes the body's numbers and checks the signature under each distinct app secret;
        returns where each number's updates go, and who owns each unnumbered change's account."""
        platform = self._app_secret
        by_platform = platform is not None and signed(platform, body, signature)
        numbers = hook.phone_number_ids
        if not by_platform and len(numbers) > MAX_NUMBERS_UNSIGNED:
            raise InvalidSignature("the signature does not match")
        routes = _Routes({}, {})
        secrets: set[str | None] = set()
        for pnid in numbers:
            # The number's sender credential (one cached lookup, or one round trip) carries the
            # owning tenant's app secret, fresh from the same read as its route; in the whatsapp
            # role it comes through the backend like every other credential.
            own: str | None = None
            try:
                sender = await self.resolver.sender(pnid)
                tenant_id = sender.tenant_id
                own = sender.secrets.get("appSecret") if tenant_id is not None else None
            except UnknownPhoneNumber:
                # Nobody's here (a tenant's second branch it never connected, say): the app of
                # the business account that names it signs, and its updates stay unrouted.
                routes.destinations[pnid] = Destination(RouteKind.UNROUTED, None)
                for waba in hook.accounts_of(pnid):
                    secrets.add(await self._account_secret(waba, routes) or platform)
                continue
            except NotConfigured:  # routed, but no sending credential: the platform's app signs
                tenant_id = (await self.resolver.route(pnid)).tenant_id
            quiet = await self._quiet_period(tenant_id)
            if tenant_id is None:
                routes.destinations[pnid] = Destination(RouteKind.PLATFORM, None, quiet)
            else:
                routes.destinations[pnid] = Destination(RouteKind.TENANT, tenant_id, quiet)
            secrets.add(own or platform)
        for waba in hook.unnumbered_wabas if hook.changes else {None}:
            secrets.add(await self._account_secret(waba, routes) or platform)
        if None in secrets:
            raise InvalidSignature(
                "no app secret is configured for this webhook: set WHATSAPP_APP_SECRET or the "
                "tenant's appSecret"
            )
        for secret in secrets:
            assert secret is not None
            if not (by_platform and secret == platform) and not signed(secret, body, signature):
                raise InvalidSignature("the signature does not match")
        return routes

    async def _account_secret(self, waba: str | None, routes: _Routes) -> str | None:
        """The own app secret of the tenant owning ``waba`` (``None``: the platform's app
        signs); notes the owner in ``routes`` (both cached in the index of apps)."""
        owner = await self.apps.tenant_of_account(waba) if waba else None
        if owner is None:
            return None
        assert waba is not None
        routes.accounts[waba] = owner
        return await self.apps.app_secret(owner)


@dataclass(frozen=True, slots=True)
class _Routes:
    #: Where each business number's updates go.
    destinations: dict[str, Destination]
    #: The tenant owning each business account the body names (for its unnumbered changes).
    accounts: dict[str, UUID]


def signature_of(header: str | None) -> bytes:
    """The hex digest of ``X-Hub-Signature-256``, or ``InvalidSignature``."""
    value = (header or "").strip()
    if not value.startswith(_PREFIX) or not value.isascii():
        raise InvalidSignature("X-Hub-Signature-256 is missing or not sha256=<hex>")
    return value[len(_PREFIX) :].strip().lower().encode("ascii")


def signed(secret: str, body: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the HMAC-SHA256 of ``body`` under ``secret`` (constant time)."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, signature)
