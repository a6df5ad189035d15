"""Stripe, Mercado Pago and Clip as far as links and notifications go, at the HTTP level
(``handler`` goes under an ``httpx.MockTransport``), speaking each provider's documented wire
format (``/work/shared/PROVIDERS.md`` §3).

Each provider remembers what it was asked to create, and what it later answers echoes it, as
the real ones do: a Mercado Pago payment made through a preference carries the preference's
``external_reference`` and ``metadata``; a Clip checkout its ``metadata``, amount and currency;
a Stripe session's form is kept so a test can build the events Stripe would send about it.
Payments and checkouts live per account (the ``Authorization`` header that created them): an
account's token cannot read another account's payment (404), as at the real providers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl
from uuid import uuid4

import httpx


@dataclass
class FakeGateways:
    requests: list[httpx.Request] = field(default_factory=list)
    #: Mercado Pago payments and Clip checkouts: (account, id) → what a GET answers.
    payments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    checkouts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: What each link creation sent: provider link id → (account, the request's fields).
    created: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    count: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        host, path, method = request.url.host, request.url.path, request.method
        account = request.headers.get("authorization", "")
        if host == "api.stripe.com" and method == "POST" and path == "/v1/checkout/sessions":
            sid = self._new("cs_test")
            self.created[sid] = (account, dict(parse_qsl(request.content.decode())))
            url = f"https://checkout.stripe.test/c/pay/{sid}"
            return httpx.Response(200, json={"id": sid, "object": "checkout.session", "url": url})
        if host == "api.mercadopago.com" and method == "POST" and path == "/checkout/preferences":
            pid = self._new("123-pref")
            self.created[pid] = (account, json.loads(request.content))
            url = f"https://mp.test/checkout?pref_id={pid}"
            return httpx.Response(201, json={"id": pid, "init_point": url})
        if host == "api.mercadopago.com" and method == "GET" and path.startswith("/v1/payments/"):
            payment = self.payments.get((account, path.rsplit("/", 1)[1]))
            if payment is None:
                return httpx.Response(404, json={"message": "Payment not found"})
            return httpx.Response(200, json=payment)
        if host == "api.payclip.com" and method == "POST" and path == "/v2/checkout":
            rid = self._new("clip")
            sent = json.loads(request.content)
            self.created[rid] = (account, sent)
            self.checkouts[(account, rid)] = {
                "payment_request_id": rid,
                "status": "CHECKOUT_CREATED",
                "amount": sent["amount"],
                "currency": sent["currency"],
                "metadata": sent.get("metadata", {}),
            }
            url = f"https://clip.test/{rid}"
            return httpx.Response(200, json={"payment_request_id": rid, "payment_request_url": url})
        if host == "api.payclip.com" and method == "GET" and path.startswith("/v2/checkout/"):
            checkout = self.checkouts.get((account, path.rsplit("/", 1)[1]))
            if checkout is None:
                return httpx.Response(404, json={"message": "not found"})
            return httpx.Response(200, json=checkout)
        return httpx.Response(599, json={"error": f"unexpected {method} {request.url}"})

    def _new(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}_{uuid4().hex[:8]}"

    def last_to(self, host: str) -> httpx.Request:
        return [r for r in self.requests if r.url.host == host][-1]

    def sent(self, provider_link_id: str) -> dict[str, Any]:
        """The fields the link creation sent (Stripe's form, Mercado Pago's preference...)."""
        return self.created[provider_link_id][1]

    def pay_mercadopago(
        self, preference_id: str, *, amount: float | None = None, status: str = "approved"
    ) -> str:
        """A buyer pays through the preference (``amount``: its price unless given): the
        payment's id, readable with the account's token that created the preference."""
        account, preference = self.created[preference_id]
        item = preference["items"][0]
        payment_id = str(10**9 + self.count)
        self.count += 1
        self.payments[(account, payment_id)] = {
            "id": int(payment_id),
            "status": status,
            "status_detail": "accredited" if status == "approved" else "cc_rejected_other_reason",
            "external_reference": preference.get("external_reference"),
            "metadata": preference.get("metadata", {}),
            "transaction_amount": item["unit_price"] if amount is None else amount,
            "currency_id": item["currency_id"],
        }
        return payment_id

    def set_mercadopago_status(self, preference_id: str, payment_id: str, status: str) -> None:
        account, _ = self.created[preference_id]
        self.payments[(account, payment_id)]["status"] = status

    def set_clip_status(self, request_id: str, status: str) -> None:
        account, _ = self.created[request_id]
        self.checkouts[(account, request_id)]["status"] = status
