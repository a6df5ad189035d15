"""SSRF through a tenant's endpoint, tried as the tenant would (issue 10, item 2).

HTTP in through the real app (on the in-memory fakes), observable effect out: the status of
the answer, what was stored, what reached the fake upstream (or a real local server).

- A tenant's ``baseUrl`` / ``endpoint`` naming a loopback, private, link-local or metadata
  address (in any notation), ``localhost``, a user name, a query or a fragment is a 422 naming
  the field at save time, and nothing is stored.
- At connect time the name is resolved again and every address checked: a name that turned
  private since it was saved (DNS rebinding) fails closed with a classified error, and no
  request reaches the private address. A public one is reached at the address that was
  checked, with the ``Host`` header and the TLS name kept on the name.
- What a tenant's endpoint answers never comes back in our errors or the stored status.
- ``CHANGARRITO_ALLOW_PRIVATE_URLS=on`` lets a tenant use its LAN (loopback and metadata stay
  refused; ``loopback`` adds this host, metadata never); the platform's own URLs
  (``OPENAI_BASE_URL`` on 127.0.0.1) are not guarded.
"""

from __future__ import annotations

import httpx
import pytest
from ssrf_world import (
    INTERNAL_SECRET_TEXT,
    KEY,
    LLM,
    PUBLIC,
    Make,
    loopback_server,
    make,
    tenant_of,
)

from changarrito.domain.chat import ChatMessage
from changarrito.domain.errors import FinalProviderError
from changarrito.settings import Settings

__all__ = ["loopback_server", "make"]  # fixtures


REFUSED_AT_SAVE = {
    "postgres-on-loopback": ("http://127.0.0.1:5432/", "resolves to a non-public address"),
    "cloud-metadata": ("http://169.254.169.254/latest/", "resolves to a non-public address"),
    "ipv6-loopback": ("http://[::1]/", "resolves to a non-public address"),
    "rfc1918": ("http://10.0.0.5/", "resolves to a non-public address"),
    "decimal-ip": ("http://2130706433/", "resolves to a non-public address"),
    "hex-ip": ("http://0x7f.1/", "resolves to a non-public address"),
    "octal-ip": ("http://0177.0.0.1/", "resolves to a non-public address"),
    "localhost": ("http://localhost/", "resolves to a non-public address"),
    "under-localhost": ("http://db.localhost:5432/", "resolves to a non-public address"),
    "ipv4-mapped-ipv6": ("http://[::ffff:169.254.169.254]/", "resolves to a non-public address"),
    "6to4-of-loopback": ("http://[2002:7f00:1::]/", "resolves to a non-public address"),
    "nat64-of-metadata": ("http://[64:ff9b::a9fe:a9fe]/", "resolves to a non-public address"),
    "cgnat": ("http://100.64.0.1/", "resolves to a non-public address"),
    "unspecified": ("http://0.0.0.0:8080/", "resolves to a non-public address"),
    "multicast": ("http://224.0.0.251/", "resolves to a non-public address"),
    "fragment": ("http://example.com/#", "must not contain a query (?) or a fragment (#)"),
    "query": ("https://example.com/v1?x=/admin", "must not contain a query (?) or a fragment (#)"),
}


@pytest.mark.parametrize("case", REFUSED_AT_SAVE, ids=str)
async def test_a_tenant_cannot_save_a_base_url_that_points_inside(make: Make, case: str) -> None:
    world = await make()
    headers = await world.tenant()
    url, message = REFUSED_AT_SAVE[case]
    response = await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"field": "credentials.baseUrl", "message": message}]
    assert (await world.client.get(LLM, headers=headers)).status_code == 404
    assert world.requests == []


@pytest.mark.parametrize("url", ["http://user@host/", "http://u:p@example.com/", "gopher://x/"])
async def test_a_base_url_with_a_user_name_or_another_scheme_is_refused(
    make: Make, url: str
) -> None:
    world = await make()
    headers = await world.tenant()
    response = await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["credentials.baseUrl"]


@pytest.mark.parametrize(
    ("provider", "field", "credentials"),
    [
        ("azure-openai", "endpoint", {"apiKey": KEY, "endpoint": "http://169.254.169.254"}),
        ("ollama", "baseUrl", {"baseUrl": "http://127.0.0.1:11434"}),
    ],
)
async def test_every_provider_s_endpoint_field_is_checked(
    make: Make, provider: str, field: str, credentials: dict[str, str]
) -> None:
    world = await make()
    headers = await world.tenant()
    response = await world.put_llm(headers, provider, credentials)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [f"credentials.{field}"]


async def test_a_name_that_resolves_private_is_refused_at_save_time(make: Make) -> None:
    world = await make()
    world.names["db.shop.example"] = ["10.1.2.3"]
    headers = await world.tenant()
    url = "http://db.shop.example/v1"
    response = await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})
    assert response.status_code == 422, response.text


async def test_a_name_that_turned_private_after_saving_is_never_connected_to(make: Make) -> None:
    world = await make()
    world.names["db.shop.example"] = [PUBLIC]
    headers = await world.tenant()
    url = "http://db.shop.example/v1"
    assert (await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})).is_success
    world.names["db.shop.example"] = ["10.1.2.3"]
    result = await world.verify(headers)
    assert result["isVerified"] is False
    assert result["error"] == "openai: the endpoint resolves to a non-public address"
    assert world.requests == []


async def test_dns_rebinding_fails_closed_and_reaches_nothing(make: Make) -> None:
    world = await make()
    world.names["llm.shop.example"] = [PUBLIC]
    headers = await world.tenant()
    url = "https://llm.shop.example/v1"
    assert (await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})).is_success
    assert (await world.verify(headers))["isVerified"] is True
    assert len(world.requests) == 1

    # The name now answers with the metadata service (and a public address beside it).
    world.names["llm.shop.example"] = [PUBLIC, "169.254.169.254"]
    result = await world.verify(headers)
    assert result["isVerified"] is False
    assert result["errorCode"] == "provider-refused"
    assert result["error"] == "openai: the endpoint resolves to a non-public address"
    status = (await world.client.get(LLM, headers=headers)).json()
    assert status["verificationError"] == "openai: the endpoint resolves to a non-public address"

    # The worker's path too: the conversation is never posted there.
    world.names["llm.shop.example"] = ["fd12:3456::1"]
    tenant_id = tenant_of(headers)
    with pytest.raises(FinalProviderError, match="non-public address"):
        await world.service.pipeline.assistant.reply(
            tenant_id, [ChatMessage(role="user", content="hola")]
        )
    assert len(world.requests) == 1


async def test_a_public_endpoint_is_reached_at_the_checked_address_under_its_name(
    make: Make,
) -> None:
    world = await make()
    world.names["llm.shop.example"] = [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]
    headers = await world.tenant()
    url = "https://llm.shop.example/v1"
    assert (await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})).is_success
    assert (await world.verify(headers))["isVerified"] is True
    sent = world.requests[-1]
    assert sent.url.host == PUBLIC and sent.url.path == "/v1/models"
    assert sent.headers["host"] == "llm.shop.example"
    assert sent.extensions["sni_hostname"] == "llm.shop.example"
    assert sent.headers["authorization"] == f"Bearer {KEY}"


async def test_what_a_tenant_s_endpoint_says_is_never_echoed(make: Make) -> None:
    world = await make()
    world.names["llm.shop.example"] = [PUBLIC]
    world.answer = httpx.Response(404, json={"error": {"message": INTERNAL_SECRET_TEXT}})
    headers = await world.tenant()
    url = "https://llm.shop.example/v1"
    assert (await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})).is_success
    response = await world.client.post(f"{LLM}/verify", headers=headers)
    assert response.json()["error"] == "openai: the endpoint answered HTTP 404"
    assert "FATAL" not in response.text
    status = await world.client.get("/api/v1/integrations/status", headers=headers)
    assert status.json()["llm"]["verificationError"] == "openai: the endpoint answered HTTP 404"
    assert "FATAL" not in status.text


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError], ids=str
)
async def test_a_tenant_s_endpoint_cannot_be_used_as_a_port_scanner(
    make: Make, failure: type[httpx.TransportError]
) -> None:
    """A closed port, a database port (not HTTP) and a reset all read the same."""
    world = await make()
    world.names["scan.shop.example"] = [PUBLIC]
    world.failure = failure
    headers = await world.tenant()
    url = "http://scan.shop.example:5432/v1"
    assert (await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})).is_success
    result = await world.verify(headers)
    assert result["isVerified"] is False
    assert result["error"] == "openai could not be reached"


async def test_with_private_urls_allowed_a_lan_ollama_is_accepted_but_loopback_is_not(
    make: Make,
) -> None:
    world = await make(env={"CHANGARRITO_ALLOW_PRIVATE_URLS": "on"})
    world.answer = httpx.Response(200, json={"models": []})
    headers = await world.tenant()
    lan = await world.put_llm(headers, "ollama", {"baseUrl": "http://192.168.1.20:11434"})
    assert lan.is_success, lan.text
    assert (await world.verify(headers))["isVerified"] is True
    assert world.requests[-1].url.host == "192.168.1.20"
    for inside in ("http://127.0.0.1:11434", "http://169.254.169.254", "http://[fd00:ec2::254]"):
        response = await world.put_llm(headers, "ollama", {"baseUrl": inside})
        assert response.status_code == 422, inside


async def test_without_the_setting_a_lan_ollama_is_refused(make: Make) -> None:
    world = await make()
    headers = await world.tenant()
    response = await world.put_llm(headers, "ollama", {"baseUrl": "http://192.168.1.20:11434"})
    assert response.status_code == 422


async def test_the_platform_s_own_base_url_on_loopback_still_works(
    make: Make, loopback_server: tuple[int, list[str]]
) -> None:
    port, hits = loopback_server
    world = await make(env={"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1"}, transport=False)
    headers = await world.tenant()
    assert (await world.put_llm(headers, "openai", {"apiKey": KEY})).is_success
    assert (await world.verify(headers))["isVerified"] is True
    assert hits == ["/v1/models"]

    # A tenant's own name for that same server (public when saved) is refused on a real socket.
    world.names["rebind.shop.example"] = [PUBLIC]
    url = f"http://rebind.shop.example:{port}/v1"
    assert (await world.put_llm(headers, "openai", {"apiKey": KEY, "baseUrl": url})).is_success
    world.names["rebind.shop.example"] = ["127.0.0.1"]
    result = await world.verify(headers)
    assert result["error"] == "openai: the endpoint resolves to a non-public address"
    assert hits == ["/v1/models"]


def test_the_setting_is_off_unless_the_operator_turns_it_on() -> None:
    def read(value: str) -> str:
        env = {"CHANGARRITO_ALLOW_PRIVATE_URLS": value}
        return Settings.from_env(env).plugins.allow_private_urls

    assert Settings.from_env({}).plugins.allow_private_urls == "off"
    assert [read(v) for v in ("on", "1", "off", "no", "loopback")] == [
        "on",
        "on",
        "off",
        "off",
        "loopback",
    ]


async def test_loopback_is_for_one_host_setups_only_and_metadata_never(make: Make) -> None:
    world = await make(env={"CHANGARRITO_ALLOW_PRIVATE_URLS": "loopback"})
    world.answer = httpx.Response(200, json={"models": []})
    world.names["localhost"] = ["127.0.0.1", "::1"]
    headers = await world.tenant()
    local = await world.put_llm(headers, "ollama", {"baseUrl": "http://localhost:11434"})
    assert local.is_success, local.text
    for inside in ("http://169.254.169.254", "http://[fe80::1]", "http://[fd00:ec2::254]"):
        response = await world.put_llm(headers, "ollama", {"baseUrl": inside})
        assert response.status_code == 422, inside
