"""Real WhatsApp webhook bodies, replayed signed as Meta signs them (issue 10, "What to keep").

``corpus/whatsapp/`` holds one body per file, gathered from other projects' test suites and
Meta's reference (``corpus/whatsapp/SOURCES.md`` says where each came from). Each body is
replayed for four business numbers, each signed with the app secret Meta would use for it:

- a tenant's own number, with the tenant's own app secret;
- the platform's number, with the platform's secret;
- a number nobody here has claimed, of an account nobody owns, with the platform's secret;
- a number nobody here has claimed of a tenant's account (its second branch), with that
  tenant's app secret.

Every body must be acknowledged (200), every update in it (message, status, value-level
error, change of another field) stored exactly once and attributed to the right tenant (or
``unrouted``), and the same delivery again (Meta redelivers) must be acknowledged and store no
message, status or event again (``test_a_redelivered_account_event_is_not_stored_again``).

The files are the bodies as published, except for three placeholders that this test fills
in: ``{{PHONE_NUMBER_ID}}`` (``metadata.phone_number_id``, and any other ``phone_number_id``),
``{{DISPLAY_PHONE_NUMBER}}`` and ``{{WABA_ID}}`` (``entry[].id``). Meta's wamids are unique,
but the published bodies reuse a handful (pywa's are all ``wamid.xyzxyz``), so every message
and status id gets a per-replay suffix, and every reference to it (a reply's ``context.id``,
a reaction's ``message_id``) the same one.

What is expected is read from the body itself (its ``messages``, ``statuses`` and ``errors``
arrays and its changes), never from the parser under test; what was stored is read back from
PostgreSQL: the rows that appeared while the body was posted.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.whatsapp_webhook_fixtures import *  # noqa: F403
from integration.whatsapp_webhook_fixtures import PLATFORM_SECRET, new_number, platform_env

CORPUS = Path(__file__).parent / "corpus" / "whatsapp"
BODIES = sorted(CORPUS.glob("*.json"))
TENANT_SECRET = "corpus-tenant-own-app-secret-0123"

Rows = Callable[..., Awaitable[list[dict[str, Any]]]]
Post = Callable[..., Awaitable[Any]]
Stored = tuple[Counter[tuple[Any, ...]], Counter[tuple[Any, ...]], Counter[tuple[Any, ...]]]


@dataclass(frozen=True)
class Number:
    """A business number the corpus is replayed for, and where its updates must go."""

    phone_number_id: str
    display: str
    waba_id: str
    secret: str
    route: str
    #: The tenant of the number's updates.
    tenant_id: uuid.UUID | None
    #: The tenant of the account's updates that name no number.
    account_tenant_id: uuid.UUID | None


@pytest.fixture
def wa_env() -> dict[str, str]:
    return platform_env(WHATSAPP_BUSINESS_ACCOUNT_ID=new_number())


def test_the_corpus_covers_every_kind_of_update() -> None:
    fields, types, statuses = set(), set(), set()
    for path in BODIES:
        for change in _changes(json.loads(path.read_text())):
            fields.add(change["field"])
            value = change.get("value") or {}
            if change["field"] == "messages":
                types.update(m.get("type") for m in value.get("messages", []))
                statuses.update(s.get("status") for s in value.get("statuses", []))
    assert len(BODIES) >= 40
    assert {"messages", "account_update", "message_template_status_update"} <= fields
    assert {"phone_number_quality_update", "calls", "user_preferences"} <= fields
    assert {"text", "image", "audio", "video", "document", "sticker", "location"} <= types
    assert {"contacts", "interactive", "button", "reaction", "order", "system"} <= types
    assert {"unsupported"} <= types
    assert {"sent", "delivered", "read", "failed"} <= statuses
    sources = (CORPUS / "SOURCES.md").read_text()
    assert all(f"`{path.name}`" in sources for path in BODIES)


async def test_every_real_body_for_a_tenants_own_number_is_stored_once_as_the_tenants(
    post_webhook: Post, rows: Rows, tenant_number: Callable[..., Awaitable[Any]]
) -> None:
    waba = new_number()
    tenant_id, pnid = await tenant_number(app_secret=TENANT_SECRET, waba=waba)
    own = Number(pnid, "15550783881", waba, TENANT_SECRET, "tenant", tenant_id, tenant_id)

    await replay_corpus(own, post_webhook, rows)


async def test_every_real_body_for_the_platforms_number_is_stored_once_as_the_platforms(
    post_webhook: Post, rows: Rows, wa_env: dict[str, str]
) -> None:
    platform = Number(
        wa_env["WHATSAPP_PHONE_NUMBER_ID"],
        "15550001111",
        wa_env["WHATSAPP_BUSINESS_ACCOUNT_ID"],
        PLATFORM_SECRET,
        "platform",
        None,
        None,
    )

    await replay_corpus(platform, post_webhook, rows)


async def test_every_real_body_for_an_unknown_number_is_stored_once_unrouted(
    post_webhook: Post, rows: Rows
) -> None:
    unknown = Number(
        new_number(), "15559990000", new_number(), PLATFORM_SECRET, "unrouted", None, None
    )

    await replay_corpus(unknown, post_webhook, rows)


async def test_every_real_body_for_an_unclaimed_number_of_a_tenants_account_is_stored_once(
    post_webhook: Post, rows: Rows, tenant_number: Callable[..., Awaitable[Any]]
) -> None:
    waba = new_number()
    tenant_id, _ = await tenant_number(app_secret=TENANT_SECRET, waba=waba)
    branch = Number(new_number(), "15552223333", waba, TENANT_SECRET, "unrouted", None, tenant_id)

    await replay_corpus(branch, post_webhook, rows)


async def test_a_redelivered_account_event_is_not_stored_again(
    post_webhook: Post, rows: Rows, wa_env: dict[str, str]
) -> None:
    account = wa_env["WHATSAPP_BUSINESS_ACCOUNT_ID"]
    platform = Number("", "", account, PLATFORM_SECRET, "platform", None, None)
    body = fill(
        (CORPUS / "meta-message-template-status-update-approved.json").read_text(), platform
    )
    before = await watermark(rows)

    codes = [(await post_webhook(body, secret=platform.secret)).status_code for _ in range(2)]

    if codes != [200, 200]:
        pytest.fail(f"refused: {codes}")  # not the failure this marker expects
    _, _, events = await stored_since(rows, before)
    assert sum(events.values()) == 1


# --- replaying ---------------------------------------------------------------------------


async def replay_corpus(where: Number, post: Post, rows: Rows) -> None:
    """Posts every body for ``where`` twice; fails listing every body that was refused,
    mis-stored or stored again, with what differed."""
    problems: list[str] = []
    for path in BODIES:
        body = fill(path.read_text(), where)
        want = expected(json.loads(body), where)
        before = await watermark(rows)
        response = await post(body, secret=where.secret)
        if response.status_code != 200:
            problems.append(f"{path.name}: {response.status_code} {response.text[:300]}")
            continue
        got = await stored_since(rows, before)
        if got != want:
            problems.append(f"{path.name}: stored {_show(got)}, expected {_show(want)}")
            continue
        again = await watermark(rows)
        response = await post(body, secret=where.secret)
        if response.status_code != 200:
            problems.append(f"{path.name} again: {response.status_code} {response.text[:300]}")
            continue
        stored_again = await stored_since(rows, again)
        if any(stored_again):
            problems.append(f"{path.name} again: stored {_show(stored_again)}")
    assert not problems, f"{len(problems)} of {len(BODIES)} bodies:\n" + "\n".join(problems)


def fill(template: str, where: Number) -> bytes:
    """The body for ``where``: placeholders filled in, message and status ids made unique."""
    text = (
        template.replace("{{PHONE_NUMBER_ID}}", where.phone_number_id)
        .replace("{{DISPLAY_PHONE_NUMBER}}", where.display)
        .replace("{{WABA_ID}}", where.waba_id)
    )
    data = json.loads(text)
    suffix = "." + uuid.uuid4().hex[:12]
    ids = set()
    for change in _changes(data):
        value = change.get("value") or {}
        if change["field"] == "messages":
            ids.update(u["id"] for u in value.get("messages", []) + value.get("statuses", []))
    for wamid in sorted(ids, key=len, reverse=True):
        text = text.replace(json.dumps(wamid), json.dumps(wamid + suffix))
    return text.encode()


def expected(data: dict[str, Any], where: Number) -> Stored:
    """The rows the body must add: inbound ``(wamid, type, route, tenant, number, raw)``,
    statuses ``(wamid, status, number, tenant, error code, raw)`` and events ``(kind, field,
    account, number, tenant, payload)``; ``raw`` and ``payload`` as canonical JSON."""
    inbound: Counter[tuple[Any, ...]] = Counter()
    statuses: Counter[tuple[Any, ...]] = Counter()
    events: Counter[tuple[Any, ...]] = Counter()
    for entry in data["entry"]:
        for change in entry.get("changes", []):
            value = change.get("value")
            metadata = value.get("metadata") if isinstance(value, dict) else None
            number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            tenant = where.tenant_id if number is not None else where.account_tenant_id
            if change["field"] != "messages":
                events[("field", change["field"], entry.get("id"), number, tenant, _j(value))] += 1
                continue
            for m in value.get("messages", []):
                kind = m.get("type", "unknown")
                inbound[(m["id"], kind, where.route, where.tenant_id, number, _j(m))] += 1
            for s in value.get("statuses", []):
                code = (s.get("errors") or [{}])[0].get("code")
                statuses[(s["id"], s["status"], number, where.tenant_id, code, _j(s))] += 1
            for error in value.get("errors", []):
                events[("error", "messages", entry.get("id"), number, tenant, _j(error))] += 1
    return inbound, statuses, events


async def watermark(rows: Rows) -> tuple[int, int, int]:
    [row] = await rows(
        "SELECT (SELECT coalesce(max(id), 0) FROM whatsapp_inbound_messages) AS inbound, "
        "(SELECT coalesce(max(id), 0) FROM whatsapp_message_statuses) AS statuses, "
        "(SELECT coalesce(max(id), 0) FROM whatsapp_webhook_events) AS events"
    )
    return row["inbound"], row["statuses"], row["events"]


async def stored_since(rows: Rows, before: tuple[int, int, int]) -> Stored:
    inbound = await rows(
        "SELECT wamid, type, route, tenant_id, phone_number_id, raw "
        "FROM whatsapp_inbound_messages "
        "WHERE id > %s",
        (before[0],),
    )
    statuses = await rows(
        "SELECT wamid, status, phone_number_id, tenant_id, error_code, raw "
        "FROM whatsapp_message_statuses "
        "WHERE id > %s",
        (before[1],),
    )
    events = await rows(
        "SELECT kind, field, waba_id, phone_number_id, tenant_id, payload "
        "FROM whatsapp_webhook_events "
        "WHERE id > %s",
        (before[2],),
    )
    return (
        Counter(_row(r, "raw") for r in inbound),
        Counter(_row(r, "raw") for r in statuses),
        Counter(_row(r, "payload") for r in events),
    )


def _row(row: dict[str, Any], json_column: str) -> tuple[Any, ...]:
    return tuple(_j(v) if k == json_column else v for k, v in row.items())


def _j(data: Any) -> str:
    """Canonical JSON, to compare what was sent with what ``jsonb`` gives back."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def _changes(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for e in data.get("entry", []) for c in e.get("changes", [])]


def _show(stored: Stored) -> str:
    names = ("inbound", "statuses", "events")
    return (
        "; ".join(
            f"{n} {sorted(map(str, c.elements()))}" for n, c in zip(names, stored, strict=True) if c
        )
        or "nothing"
    )
