"""Entities: secrets stay hidden wherever an object is printed (``changarrito.domain.model``)."""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from changarrito.domain.model import (
    Credential,
    IntegrationType,
    PlatformCredential,
    PlatformDefaults,
    Resolved,
    Secrets,
    Source,
)

#: The built-in WhatsApp provider's id (Meta's Cloud API).
WHATSAPP_PROVIDER = "meta"
PROPERTY = settings(deadline=None, max_examples=60)
FINGERPRINT_KEY = b"unit-tests-fingerprint-key-00000"
TENANT = UUID(int=42)

secret_keys = st.text(string.ascii_letters, min_size=1, max_size=12)
secret_value = st.text(min_size=4, max_size=40)
secret_maps = st.dictionaries(secret_keys, secret_value, min_size=1, max_size=4)

WHEN = datetime(2026, 1, 1, tzinfo=UTC)

#: Every object that carries secrets, built around a given ``Secrets``.
HOLDERS: dict[str, Callable[[Secrets], object]] = {
    "Secrets": lambda s: s,
    "Credential": lambda s: Credential(
        UUID(int=7),
        IntegrationType.LLM,
        "openai",
        s,
        {"model": "gpt"},
        id=UUID(int=8),
        created_at=WHEN,
        updated_at=WHEN,
    ),
    "Resolved": lambda s: Resolved(
        UUID(int=7), IntegrationType.LLM, "openai", s, {"model": "gpt"}, Source.TENANT
    ),
    "PlatformCredential": lambda s: PlatformCredential(IntegrationType.LLM, "openai", s),
}
holders = st.sampled_from(sorted(HOLDERS))

PRINTERS: list[Callable[[Any], str]] = [repr, str, format, lambda o: f"{[o]}"]


def masked(data: dict[str, str]) -> Secrets:
    """The same keys with a value that cannot be mistaken for any generated secret."""
    return Secrets(dict.fromkeys(data, "\x00"))


@PROPERTY
@given(holders, secret_maps, st.data())
def test_what_an_object_prints_does_not_depend_on_its_secret_values(
    holder: str, data: dict[str, str], draw: st.DataObject
) -> None:
    other = {key: draw.draw(secret_value) for key in data}
    build = HOLDERS[holder]

    for show in PRINTERS:
        assert show(build(Secrets(data))) == show(build(Secrets(other)))


@PROPERTY
@given(holders, secret_maps)
def test_no_secret_value_appears_in_repr_or_str(holder: str, data: dict[str, str]) -> None:
    build = HOLDERS[holder]
    for show in PRINTERS:
        printed = show(build(Secrets(data)))
        for value in data.values():
            # Sound even for values like "Secr" or "openai": only a value the masked object
            # does not print already would betray a leak.
            assume(value not in show(build(masked(data))))
            assert value not in printed


@PROPERTY
@given(secret_maps)
def test_a_hint_reveals_at_most_the_last_four_characters(data: dict[str, str]) -> None:
    secrets = Secrets(data)
    for key, value in data.items():
        hint = secrets.hint(key)
        assert hint is not None
        assert hint.startswith("…")
        shown = hint.removeprefix("…")
        assert len(shown) <= 4
        assert value.endswith(shown)
        if len(value) < 12:  # too short to show any of it
            assert shown == ""


@PROPERTY
@given(secret_maps, secret_keys)
def test_an_absent_key_has_no_hint_and_no_fingerprint(data: dict[str, str], key: str) -> None:
    assume(key not in data)
    assert Secrets(data).hint(key) is None
    assert Secrets(data).fingerprint(key, server_key=FINGERPRINT_KEY, scope=TENANT) is None


@PROPERTY
@given(secret_maps)
def test_a_fingerprint_is_twelve_hex_digits_and_stable(data: dict[str, str]) -> None:
    for key in data:
        first = Secrets(data).fingerprint(key, server_key=FINGERPRINT_KEY, scope=TENANT)
        assert first == Secrets(dict(data)).fingerprint(
            key, server_key=FINGERPRINT_KEY, scope=TENANT
        )
        assert first is not None
        assert len(first) == 12
        assert set(first) <= set(string.hexdigits.lower())


@PROPERTY
@given(secret_maps)
def test_a_fingerprint_changes_with_the_server_key_and_with_the_tenant(
    data: dict[str, str],
) -> None:
    secrets = Secrets(data)
    for key in data:
        shown = secrets.fingerprint(key, server_key=FINGERPRINT_KEY, scope=TENANT)
        assert shown != secrets.fingerprint(key, server_key=b"another key", scope=TENANT)
        assert shown != secrets.fingerprint(key, server_key=FINGERPRINT_KEY, scope=UUID(int=43))


@PROPERTY
@given(secret_maps)
def test_secrets_compare_and_hash_by_content_and_reveal_a_copy(data: dict[str, str]) -> None:
    secrets = Secrets(data)
    assert secrets == Secrets(dict(data))
    assert hash(secrets) == hash(Secrets(dict(data)))
    revealed = secrets.reveal()
    assert revealed == data
    revealed.clear()
    assert secrets.reveal() == data


def test_whatsapp_always_defaults_to_meta_whatever_the_configured_defaults() -> None:
    platform = PlatformDefaults(default_providers={IntegrationType.WHATSAPP: "other"})
    assert platform.default_provider(IntegrationType.WHATSAPP) == WHATSAPP_PROVIDER
