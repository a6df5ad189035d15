"""The bad-input sweep: thousands of hostile requests, and not one 5xx or unhandled exception.

- Webhook bodies from hypothesis, each *correctly signed* with the platform's app secret so it
  passes the door and reaches the parser: JSON of the wrong shape, wrong types in every member
  of a real webhook, huge arrays, deep nesting, unicode edge cases (lone surrogates escaped in
  JSON, NULs, emoji, right-to-left marks), very long strings, non-JSON and non-UTF-8 bytes.
- schemathesis on every REST operation (tenant, internal and payment APIs and the payment
  webhooks) with a valid tenant JWT and internal key, so requests get past authentication.

One app (role ``all``) on the test database, driven in-process through ``httpx.ASGITransport``
on a private event loop. Every structlog line and stdlib log record of the sweep is kept: none
may be an error (a 5xx, ``request.crashed``, a crashed intake writer) or carry a traceback.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import structlog
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from changarrito.adapters.crypto.keyring import KeyRing
from changarrito.adapters.http import HttpClients
from changarrito.adapters.logs import redact_secrets
from changarrito.bootstrap import Database, Service, bootstrap
from changarrito.entrypoints.http.app import MAX_BODY_BYTES, create_app
from changarrito.settings import Settings
from conftest import _LEDGER, INTERNAL_HEADERS, TEST_ENV, bearer, token_for
from whatsapp_payloads import sign

SECRET = TEST_ENV["WHATSAPP_APP_SECRET"]
PNID = TEST_ENV["WHATSAPP_PHONE_NUMBER_ID"]
SWEEP = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
#: Log events that mean something went wrong inside the service.
CRASHES = ("request.crashed", "whatsapp.intake.writer_crashed", "message.crashed")


def upstreams(request: httpx.Request) -> httpx.Response:
    """Providers that work: Stripe's balance and Checkout Sessions, Graph and LLM lookups."""
    if "stripe" in request.url.host:
        session = {"id": f"cs_test_{uuid.uuid4().hex}", "url": "https://checkout.stripe.test/x"}
        return httpx.Response(200, json={"object": "balance", **session})
    if request.url.host == "graph.test":
        # A node, a send's answer and an (empty) template listing in one.
        body = {"id": "1", "messages": [{"id": "wamid.OUT"}], "data": []}
        return httpx.Response(200, json=body)
    return httpx.Response(200, json={"object": "list", "data": []})


class SweptApp:
    """The app on a private loop: ``post``/``request`` block until the response is read."""

    def __init__(self, portal: BlockingPortal, service: Service, client: Any) -> None:
        self.portal, self.service, self.client = portal, service, client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.portal.call(
            lambda: self.client.request(method, url, **kwargs)
        )
        return response

    def webhook(self, body: bytes) -> httpx.Response:
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, SECRET)}
        return self.request("POST", "/webhooks/whatsapp", content=body, headers=headers)


@pytest.fixture(scope="module")
def service(database_url: str) -> Iterator[SweptApp]:
    test_settings = Settings.from_env(TEST_ENV)

    async def build() -> tuple[Service, httpx.AsyncClient]:
        http = HttpClients(transport=httpx.MockTransport(upstreams))
        database = Database(database_url, KeyRing.generate("sweep"))
        service = await bootstrap(
            test_settings, database, listen=False, check_keys=False, http=http
        )
        app = create_app(test_settings, service=service, role="all")
        app.state.service = service
        transport = httpx.ASGITransport(app=app)
        return service, httpx.AsyncClient(transport=transport, base_url="http://sweep")

    with start_blocking_portal() as portal:
        service, client = portal.call(build)
        try:
            yield SweptApp(portal, service, client)
        finally:
            portal.call(client.aclose)
            portal.call(service.aclose)


@pytest.fixture
def no_crash_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test when the service logged an error or a traceback (structlog or stdlib)."""
    processors = [structlog.contextvars.merge_contextvars, redact_secrets]
    caplog.set_level(logging.WARNING)
    with structlog.testing.capture_logs(processors=processors) as captured:
        yield
    _LEDGER.log_lines.extend(json.dumps(e, default=str) for e in captured)
    bad = [
        e
        for e in captured
        if e.get("event") in CRASHES
        or e.get("log_level") in ("error", "critical", "exception")
        or "exc_info" in e
    ]
    assert not bad, f"{len(bad)} error log lines, first: {bad[0]}"
    stdlib = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not stdlib, f"stdlib logged: {stdlib[0].getMessage()}"
    assert "Traceback" not in caplog.text


def assert_handled(response: httpx.Response) -> None:
    """A 2xx, or a 4xx problem+json with a stable type: never a 5xx."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].startswith("https://changarrito.dev/problems/")


# --- webhook bodies -----------------------------------------------------------------------

#: Text with every kind of edge: lone surrogates, NUL and other controls, emoji, RTL marks,
#: combining characters, non-characters and the BOM.
EDGY = st.text(
    alphabet=st.characters(codec=None)
    | st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "\uffff", "\u0301", "🧁"]),
    max_size=24,
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | EDGY
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(EDGY, inner, max_size=4),
    max_leaves=8,
)


def encode(value: Any, ascii_only: bool) -> bytes:
    """JSON text; lone surrogates can only travel escaped (``\\ud800``), so they force
    ``ascii_only``."""
    try:
        if not ascii_only:
            return json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        pass
    return json.dumps(value, ensure_ascii=True).encode()


MESSAGE_FIELDS = ["id", "from", "from_user_id", "timestamp", "type", "text", "context", "errors"]
VALUE_FIELDS = ["messaging_product", "metadata", "contacts", "messages", "statuses", "errors"]


@st.composite
def real_webhook(draw: st.DrawFn) -> dict[str, Any]:
    """A real webhook shape with a number the platform owns or nobody owns."""
    pnid = draw(st.sampled_from([PNID, "123456789012345", PNID + "0"]))
    message = {
        "from": "16505551234",
        "id": f"wamid.SWEEP{uuid.uuid4().hex}",
        "timestamp": "1700000000",
        "type": "text",
        "text": {"body": "hola"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": pnid},
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "16505551234"}],
        "messages": [message],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


@st.composite
def wrong_types(draw: st.DrawFn) -> bytes:
    """A real webhook with members replaced by any JSON (wrong types, unicode, nesting)."""
    hook = draw(real_webhook())
    entry = hook["entry"][0]
    value = entry["changes"][0]["value"]
    message = value["messages"][0]
    for target, fields in (
        (message, MESSAGE_FIELDS),
        (value, VALUE_FIELDS),
        (entry["changes"][0], ["field", "value"]),
        (entry, ["id", "changes"]),
        (hook, ["object", "entry"]),
    ):
        for name in draw(st.lists(st.sampled_from(fields), max_size=2, unique=True)):
            target[name] = draw(JSON)
    if draw(st.booleans()):
        message["text"] = {"body": draw(EDGY)}
    return encode(hook, draw(st.booleans()))


@st.composite
def huge(draw: st.DrawFn) -> bytes:
    """Huge arrays, deep nesting and very long strings, where Meta puts small things."""
    hook = draw(real_webhook())
    value = hook["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    n = draw(st.integers(min_value=1, max_value=20_000))
    kind = draw(st.sampled_from(["messages", "entries", "contacts", "statuses", "nest", "long"]))
    if kind == "messages":
        value["messages"] = [{**message, "id": f"{message['id']}.{i}"} for i in range(n % 1500)]
    elif kind == "entries":
        hook["entry"] = hook["entry"] * (n % 3000)
    elif kind == "contacts":
        value["contacts"] = [{"wa_id": str(i)} for i in range(n)]
    elif kind == "statuses":
        value["statuses"] = [{"id": str(i), "status": "sent"} for i in range(n % 1200)]
    elif kind == "long":
        message["text"] = {"body": draw(st.sampled_from(["a", "ñ", "🧁", "\\u0000"])) * n * 40}
    body = encode(hook, True)
    if kind == "nest":  # in the message itself, whose raw JSON is stored as it came
        nested = b"[" * (n % 5000) + b"0" + b"]" * (n % 5000)
        where = draw(st.sampled_from(NESTABLE))
        body = body.replace(where, where[: where.index(b":") + 1] + nested, 1)
    return body[: MAX_BODY_BYTES + 10]


NESTABLE = [b'"body": "hola"', b'"timestamp": "1700000000"', b'"messaging_product": "whatsapp"']
RAW = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda v: encode(v, False)),
    st.integers(0, 20_000).map(lambda d: b"[" * d + b"]" * d),
    st.integers(0, 20_000).map(
        lambda d: b'{"object":"whatsapp_business_account","entry":' + b"[" * d
    ),
)


@settings(SWEEP, max_examples=1200)
@given(body=wrong_types())
# Found by this sweep: a value-level error sent as null, and a change of another field without
# a value, were a 503 (the event's payload reached a NOT NULL column as SQL NULL).
@example(
    body=b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",'
    b'"value":{"metadata":{"phone_number_id":"1"},"errors":[null]}}]}]}'
)
@example(body=b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"x"}]}]}')
@example(
    body=b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",'
    b'"value":{"metadata":{"phone_number_id":"1"},"messages":[{"id":"\\ud800","type":"text"}]}}]}]}'
)
def test_a_signed_webhook_with_wrong_types_anywhere_is_stored_or_refused_never_a_5xx(
    service: SweptApp, no_crash_logged: None, body: bytes
) -> None:
    response = service.webhook(body)

    assert_handled(response)
    assert response.status_code in (200, 400, 413)


@settings(SWEEP, max_examples=150)
@given(body=huge())
def test_huge_arrays_deep_nesting_and_long_strings_are_stored_or_refused_never_a_5xx(
    service: SweptApp, no_crash_logged: None, body: bytes
) -> None:
    response = service.webhook(body)

    assert_handled(response)
    assert response.status_code in (200, 400, 413)


@settings(SWEEP, max_examples=1200)
@given(body=RAW)
def test_any_signed_bytes_at_all_are_refused_as_a_bad_request_never_a_5xx(
    service: SweptApp, no_crash_logged: None, body: bytes
) -> None:
    response = service.webhook(body)

    assert_handled(response)
    assert response.status_code in (200, 400)


# --- the REST API -------------------------------------------------------------------------

#: Operations of the APIs with a body or parameters worth sweeping (the WhatsApp webhook has
#: its own tests above: without a signature it only ever answers 401).
SWEPT = ("/api/v1/", "/webhooks/payments/")
EXAMPLES_PER_OPERATION = 90
PROVIDERS = ("stripe", "mercadopago", "clip")


def test_schemathesis_with_valid_credentials_finds_no_server_error_on_any_operation(
    service: SweptApp, no_crash_logged: None
) -> None:
    openapi = service.request("GET", "/schema/openapi.json").json()
    created = service.request(
        "POST", "/api/v1/internal/tenants", json={"name": "sweep"}, headers=INTERNAL_HEADERS
    )
    tenant_id = created.json()["id"]
    auth = {**bearer(token_for(tenant_id)), **INTERNAL_HEADERS}
    schema = schemathesis.openapi.from_dict(openapi)
    operations = [op.ok() for op in schema.get_all_operations() if op.ok().path.startswith(SWEPT)]
    assert len(operations) >= 18
    failures: list[str] = []
    for operation in operations:

        @settings(SWEEP, max_examples=EXAMPLES_PER_OPERATION)
        @given(case=operation.as_strategy())
        def exercise(case: schemathesis.Case) -> None:
            params = case.path_parameters or {}
            if "tenant_id" in params:
                params["tenant_id"] = tenant_id  # a real tenant: deeper than a 404
            if "provider" in params:  # mostly an installed provider, sometimes anything
                params["provider"] = (*PROVIDERS, params["provider"])[len(str(params)) % 4]
            kwargs = case.as_transport_kwargs(base_url="http://sweep", headers=auth)
            response = service.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                headers=kwargs.get("headers"),
                json=kwargs.get("json"),
                content=kwargs.get("data"),
            )
            if not response.request.url.path.startswith("/api/v1/internal/"):
                _LEDGER.saw_body(f"{case.method} {case.formatted_path}", response.text)
            case.validate_response(response, checks=[not_a_server_error])
            assert_handled(response)

        try:
            exercise()
        except Exception as exc:  # every operation's failure, then all of them at once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
