"""Reading a template's parameters from its components, and a template webhook's news
(``domain/templates.py``); the placeholder reading as properties."""

from __future__ import annotations

import json
import string

from hypothesis import given
from hypothesis import strategies as st

from changarrito.domain.template_sync import updates_in
from changarrito.domain.templates import (
    CATEGORY_FIELD,
    QUALITY_FIELD,
    STATUS_FIELD,
    Parameter,
    TemplateUpdate,
    parameters_of,
    placeholders,
    update_of,
)
from changarrito.domain.whatsapp import WebhookEvent

WABA = "102290129340398"

# --- placeholders, as properties ---------------------------------------------------------------

names = st.one_of(
    st.integers(min_value=1, max_value=40).map(str),
    st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12),
)
#: Text between placeholders: anything without braces (which could make one).
filler = st.text(st.characters(blacklist_characters="{}"), max_size=20)


@given(st.lists(st.tuples(filler, names), max_size=12), filler)
def test_any_text_gives_exactly_its_placeholders_in_order_each_once(parts, tail) -> None:
    text = "".join(f"{before}{{{{{name}}}}}" for before, name in parts) + tail

    expected = list(dict.fromkeys(name for _, name in parts))
    assert placeholders(text) == expected


@given(filler)
def test_text_without_placeholders_has_none(text) -> None:
    assert placeholders(text) == []


@given(st.lists(names, min_size=1, max_size=8, unique=True), st.integers(1, 4))
def test_a_placeholder_repeated_is_counted_once(found, times) -> None:
    text = " ".join(f"{{{{{name}}}}}" for name in found * times)

    assert placeholders(text) == found


@given(st.lists(st.integers(1, 20), max_size=10))
def test_positional_body_parameters_are_numbered_by_their_placeholders(numbers) -> None:
    text = " y ".join(f"{{{{{n}}}}}" for n in numbers)

    found = parameters_of([{"type": "BODY", "text": text}])

    assert [p.index for p in found] == list(dict.fromkeys(numbers))
    assert all(p.component == "body" and p.kind == "text" and p.name is None for p in found)


def test_spaces_inside_the_braces_are_allowed_and_broken_braces_are_not_placeholders() -> None:
    assert placeholders("Hola {{ 1 }}, {{nombre}} {1} {{}} {{ a b }}") == ["1", "nombre"]


# --- parameters of components --------------------------------------------------------------


def test_a_full_template_gives_the_header_body_and_button_parameters_in_order() -> None:
    components = [
        {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
        {"type": "BODY", "text": "Hola {{1}}, tu total es {{2}}. Gracias, {{1}}."},
        {"type": "FOOTER", "text": "Tienda {{x}} no cuenta"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "URL", "text": "Ver", "url": "https://tienda.mx/p/{{1}}"},
                {"type": "URL", "text": "Sitio", "url": "https://tienda.mx"},
                {"type": "QUICK_REPLY", "text": "Ayuda"},
                {"type": "COPY_CODE", "example": "DESC10"},
                {"type": "PHONE_NUMBER", "text": "Llamar", "phone_number": "+525500000000"},
            ],
        },
    ]

    assert parameters_of(components) == [
        Parameter("header", "text", index=1),
        Parameter("body", "text", index=1),
        Parameter("body", "text", index=2),
        Parameter("button", "text", index=1, button=0, sub_type="url"),
        Parameter("button", "payload", button=2, sub_type="quick_reply", required=False),
        Parameter("button", "coupon_code", button=3, sub_type="copy_code"),
    ]


def test_named_placeholders_are_parameters_by_name() -> None:
    components = [{"type": "body", "text": "Hola {{first_name}}, pedido {{order_id}}"}]

    assert parameters_of(components, "NAMED") == [
        Parameter("body", "text", name="first_name"),
        Parameter("body", "text", name="order_id"),
    ]


def test_a_media_header_is_one_parameter_of_its_kind() -> None:
    for fmt, kind in [("IMAGE", "image"), ("VIDEO", "video"), ("DOCUMENT", "document")]:
        found = parameters_of([{"type": "HEADER", "format": fmt}, {"type": "BODY", "text": "x"}])
        assert found == [Parameter("header", kind)]
    location = parameters_of([{"type": "HEADER", "format": "LOCATION"}])
    assert location == [Parameter("header", "location")]


def test_components_meta_may_add_or_garble_are_skipped() -> None:
    components = [
        {"type": "CAROUSEL", "cards": []},
        {"type": "BODY"},
        {"type": "BUTTONS", "buttons": "not a list"},
        "not a component",
    ]

    assert parameters_of(components) == []  # type: ignore[list-item]


# --- webhook news ----------------------------------------------------------------------------


def test_a_status_webhook_says_the_new_status_by_meta_id() -> None:
    value = {
        "event": "PAUSED",
        "message_template_id": 1409876543210,
        "message_template_name": "pago_recibido",
        "message_template_language": "es_MX",
        "reason": None,
        "message_template_category": "UTILITY",
        "other_info": {"title": "FIRST_PAUSE", "description": "low quality"},
    }

    update = update_of(STATUS_FIELD, WABA, value)

    assert update == TemplateUpdate(
        WABA, "1409876543210", "pago_recibido", "es_MX", status="PAUSED", category="UTILITY"
    )


def test_category_and_quality_webhooks_say_the_new_category_and_quality() -> None:
    ids = {
        "message_template_id": 7,
        "message_template_name": "a",
        "message_template_language": "es",
    }
    category = update_of(
        CATEGORY_FIELD, WABA, {**ids, "previous_category": "UTILITY", "new_category": "MARKETING"}
    )
    quality = update_of(
        QUALITY_FIELD, WABA, {**ids, "previous_quality_score": "GREEN", "new_quality_score": "RED"}
    )

    assert category is not None and (category.category, category.status) == ("MARKETING", None)
    assert quality is not None and (quality.quality, quality.category) == ("RED", None)


def test_a_webhook_that_names_no_template_or_says_nothing_kept_is_no_update() -> None:
    assert update_of(STATUS_FIELD, WABA, {"event": "APPROVED"}) is None
    assert update_of(STATUS_FIELD, None, {"event": "APPROVED", "message_template_id": 1}) is None
    assert update_of(STATUS_FIELD, WABA, {"event": "UNARCHIVED", "message_template_id": 1}) is None
    assert update_of("account_update", WABA, {"message_template_id": 1}) is None
    assert update_of(QUALITY_FIELD, WABA, ["not", "an", "object"]) is None


def test_only_template_fields_among_a_deliverys_events_are_read() -> None:
    status = {"event": "REJECTED", "message_template_id": 5, "reason": "INVALID_FORMAT"}
    events = [
        WebhookEvent("field", STATUS_FIELD, json.dumps(status).encode(), WABA),
        WebhookEvent("field", "account_update", b'{"event": "PARTNER_ADDED"}', WABA),
        WebhookEvent("field", QUALITY_FIELD, b"not json", WABA),
        WebhookEvent("error", STATUS_FIELD, json.dumps(status).encode(), WABA),
    ]

    assert updates_in(events) == [TemplateUpdate(WABA, "5", status="REJECTED")]
