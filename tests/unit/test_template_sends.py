"""Sending a synced template (``domain/template_send.py``): the values checked against what
the template needs before anything reaches Meta, the components exactly as Graph takes them,
the text the customer reads, the API's ``parameters`` JSON and the purposes mapping; the
rules as properties."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from changarrito.domain.errors import Conflict, NotFound, ValidationFailed
from changarrito.domain.template_send import (
    FIELDS,
    PURPOSE_FIELDS,
    PURPOSES,
    CouponValue,
    CurrencyValue,
    DateTimeValue,
    LocationValue,
    MappedTemplate,
    MediaValue,
    PayloadValue,
    PreparedTemplate,
    TemplateArguments,
    TemplateCategoryNotAllowed,
    TemplateNotFound,
    TemplateNotSendable,
    TemplateParametersInvalid,
    TextValue,
    arguments_from_json,
    arguments_in_order,
    mapping_from_json,
    mapping_to_json,
    prepare,
)
from changarrito.domain.templates import Template, parameters_of

WABA = "102290129340398"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def template(
    components: Sequence[Mapping[str, Any]],
    parameter_format: str = "POSITIONAL",
    *,
    status: str = "APPROVED",
    category: str | None = "UTILITY",
    name: str = "pago_recibido",
    language: str = "es_MX",
) -> Template:
    return Template(
        id=1,
        tenant_id=None,
        business_account_id=WABA,
        template_id="1409876543210",
        name=name,
        language=language,
        category=category,
        status=status,
        quality="GREEN",
        parameter_format=parameter_format,
        components=components,
        parameters=parameters_of(components, parameter_format),
        synced_at=NOW,
        updated_at=NOW,
    )


def body(text: str) -> list[dict[str, Any]]:
    return [{"type": "BODY", "text": text}]


def refusal(tpl: Template, arguments: TemplateArguments) -> list[tuple[str, str]]:
    with pytest.raises(TemplateParametersInvalid) as raised:
        prepare(tpl, arguments)
    return raised.value.errors


#: The template of the provider notes' example: an image header, a body with a name, an
#: amount and a date, a footer, a URL button with a suffix and a quick reply.
PAGO = template(
    [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW..."]}},
        {"type": "BODY", "text": "Hola {{1}}, recibimos tu pago de {{2}} el {{3}}."},
        {"type": "FOOTER", "text": "Changarrito"},
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "URL", "text": "Ver recibo", "url": "https://tienda.mx/r/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Ayuda"},
            ],
        },
    ]
)
PAGO_ARGUMENTS = TemplateArguments(
    header=MediaValue("image", media_id="1013859600285441"),
    body=(
        TextValue("Ana"),
        CurrencyValue("$150.00", "MXN", 150000),
        DateTimeValue("3 de diciembre de 2026"),
    ),
    buttons={0: TextValue("A12"), 1: PayloadValue("ayuda")},
)
#: Graph's ``template.components`` of that send, as the provider notes give it.
PAGO_WIRE = [
    {"type": "header", "parameters": [{"type": "image", "image": {"id": "1013859600285441"}}]},
    {
        "type": "body",
        "parameters": [
            {"type": "text", "text": "Ana"},
            {
                "type": "currency",
                "currency": {"fallback_value": "$150.00", "code": "MXN", "amount_1000": 150000},
            },
            {"type": "date_time", "date_time": {"fallback_value": "3 de diciembre de 2026"}},
        ],
    },
    {
        "type": "button",
        "sub_type": "url",
        "index": "0",
        "parameters": [{"type": "text", "text": "A12"}],
    },
    {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "1",
        "parameters": [{"type": "payload", "payload": "ayuda"}],
    },
]

NAMED = template(
    [
        {"type": "HEADER", "format": "TEXT", "text": "Pedido {{order_id}}"},
        {"type": "BODY", "text": "Hola {{first_name}}, tu pedido {{order_id}} está listo."},
        {"type": "FOOTER", "text": "Gracias"},
    ],
    "NAMED",
    name="pedido_listo",
)

# --- the wire Graph takes --------------------------------------------------------------------


def test_a_positional_send_is_exactly_the_components_graph_takes() -> None:
    prepared = prepare(PAGO, PAGO_ARGUMENTS)

    assert prepared == PreparedTemplate(
        name="pago_recibido",
        language="es_MX",
        category="UTILITY",
        components=PAGO_WIRE,
        text="Hola Ana, recibimos tu pago de $150.00 el 3 de diciembre de 2026.",
    )


def test_the_apis_json_of_that_send_prepares_the_same_components() -> None:
    parameters = {
        "header": {"type": "image", "id": "1013859600285441"},
        "body": [
            "Ana",
            {"type": "currency", "fallbackValue": "$150.00", "code": "MXN", "amount1000": 150000},
            {"type": "dateTime", "fallbackValue": "3 de diciembre de 2026"},
        ],
        "buttons": [{"index": 1, "payload": "ayuda"}, {"index": 0, "text": "A12"}],
    }

    arguments = arguments_from_json(json.loads(json.dumps(parameters)))

    assert arguments == PAGO_ARGUMENTS
    assert prepare(PAGO, arguments).components == PAGO_WIRE


def test_a_named_body_by_name_or_in_order_carries_each_placeholders_name() -> None:
    by_name = TemplateArguments(
        header=TextValue("A12"),
        body={"order_id": TextValue("A12"), "first_name": TextValue("Ana")},
    )
    in_order = TemplateArguments(header=TextValue("A12"), body=[TextValue("Ana"), TextValue("A12")])

    for arguments in (by_name, in_order):
        prepared = prepare(NAMED, arguments)
        assert prepared.components == [
            {
                "type": "header",
                "parameters": [{"type": "text", "parameter_name": "order_id", "text": "A12"}],
            },
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "Ana"},
                    {"type": "text", "parameter_name": "order_id", "text": "A12"},
                ],
            },
        ]
        assert prepared.text == "Pedido A12\nHola Ana, tu pedido A12 está listo."


def test_a_named_currency_also_carries_its_placeholders_name() -> None:
    tpl = template(body("Total: {{total}}"), "NAMED")

    prepared = prepare(tpl, TemplateArguments(body={"total": CurrencyValue("$9.50", "MXN", 9500)}))

    assert prepared.components[0]["parameters"] == [
        {
            "type": "currency",
            "parameter_name": "total",
            "currency": {"fallback_value": "$9.50", "code": "MXN", "amount_1000": 9500},
        }
    ]


def test_a_positional_list_fills_the_placeholders_by_number_whatever_their_order() -> None:
    tpl = template(body("El {{2}} llega a {{1}}."))

    prepared = prepare(tpl, TemplateArguments(body=[TextValue("Ana"), TextValue("pedido")]))

    assert prepared.components[0]["parameters"] == [
        {"type": "text", "text": "Ana"},
        {"type": "text", "text": "pedido"},
    ]
    assert prepared.text == "El pedido llega a Ana."


def with_header(fmt: str) -> Template:
    return template([{"type": "HEADER", "format": fmt}, *body("Tu recibo.")])


def test_a_header_image_is_sent_by_link_or_by_id() -> None:
    link = "https://tienda.mx/recibo.jpg"

    by_link = prepare(with_header("IMAGE"), TemplateArguments(header=MediaValue("image", link)))
    by_id = prepare(
        with_header("IMAGE"), TemplateArguments(header=MediaValue("image", media_id="42"))
    )

    assert by_link.components == [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": link}}]}
    ]
    assert by_id.components == [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": "42"}}]}
    ]
    assert by_link.text == by_id.text == "Tu recibo."


def test_a_header_document_carries_the_filename_the_customer_sees() -> None:
    value = MediaValue("document", "https://tienda.mx/r/A12.pdf", filename="recibo A12.pdf")

    prepared = prepare(with_header("DOCUMENT"), TemplateArguments(header=value))

    assert prepared.components == [
        {
            "type": "header",
            "parameters": [
                {
                    "type": "document",
                    "document": {
                        "link": "https://tienda.mx/r/A12.pdf",
                        "filename": "recibo A12.pdf",
                    },
                }
            ],
        }
    ]


def test_a_header_video_and_a_gif_header_take_a_video() -> None:
    for fmt in ("VIDEO", "GIF"):
        prepared = prepare(
            with_header(fmt), TemplateArguments(header=MediaValue("video", None, "7"))
        )
        assert prepared.components[0]["parameters"] == [{"type": "video", "video": {"id": "7"}}]


def test_a_header_location_is_sent_with_its_place_and_only_the_names_given() -> None:
    full = LocationValue(19.4326, -99.1332, "Changarrito Centro", "Madero 1, CDMX")
    bare = LocationValue(19.4326, -99.1332)

    sent_full = prepare(with_header("LOCATION"), TemplateArguments(header=full))
    sent_bare = prepare(with_header("LOCATION"), TemplateArguments(header=bare))

    assert sent_full.components[0]["parameters"] == [
        {
            "type": "location",
            "location": {
                "latitude": 19.4326,
                "longitude": -99.1332,
                "name": "Changarrito Centro",
                "address": "Madero 1, CDMX",
            },
        }
    ]
    assert sent_bare.components[0]["parameters"] == [
        {"type": "location", "location": {"latitude": 19.4326, "longitude": -99.1332}}
    ]


BUTTONS = template(
    [
        *body("Tu pedido está listo."),
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "PHONE_NUMBER", "text": "Llamar", "phone_number": "+525500000000"},
                {"type": "URL", "text": "Rastrear", "url": "https://tienda.mx/p/{{1}}"},
                {"type": "QUICK_REPLY", "text": "Ayuda"},
                {"type": "COPY_CODE", "example": "DESC10"},
            ],
        },
    ]
)


def test_buttons_are_sent_by_index_and_a_quick_reply_payload_only_when_given() -> None:
    without_reply = TemplateArguments(buttons={1: TextValue("A12"), 3: CouponValue("DESC10")})
    with_reply = TemplateArguments(buttons={**without_reply.buttons, 2: PayloadValue("ayuda")})

    url = {
        "type": "button",
        "sub_type": "url",
        "index": "1",
        "parameters": [{"type": "text", "text": "A12"}],
    }
    reply = {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "2",
        "parameters": [{"type": "payload", "payload": "ayuda"}],
    }
    coupon = {
        "type": "button",
        "sub_type": "copy_code",
        "index": "3",
        "parameters": [{"type": "coupon_code", "coupon_code": "DESC10"}],
    }
    assert prepare(BUTTONS, without_reply).components == [url, coupon]
    assert prepare(BUTTONS, with_reply).components == [url, reply, coupon]
    assert prepare(BUTTONS, with_reply).text == "Tu pedido está listo."


def test_a_template_without_parameters_sends_no_components() -> None:
    tpl = template(
        [{"type": "HEADER", "format": "TEXT", "text": "Hola"}, *body("Gracias por tu compra.")]
    )

    prepared = prepare(tpl, TemplateArguments())

    assert prepared.components == []
    assert prepared.text == "Hola\nGracias por tu compra."


def test_the_text_fills_every_occurrence_and_leaves_a_value_that_looks_like_a_placeholder() -> None:
    tpl = template(
        [
            {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"},
            *body("{{1}}: {{2}}. Otra vez, {{1}}."),
            {"type": "FOOTER", "text": "no se muestra"},
        ]
    )

    prepared = prepare(
        tpl,
        TemplateArguments(header=TextValue("A12"), body=[TextValue("Ana"), TextValue("{{1}}")]),
    )

    assert prepared.text == "Pedido A12\nAna: {{1}}. Otra vez, Ana."


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["PAUSED", "REJECTED", "PENDING", "DISABLED"])
def test_a_template_not_approved_is_not_sendable_and_its_status_is_named(status: str) -> None:
    tpl = template(body("Hola"), status=status)

    with pytest.raises(TemplateNotSendable) as raised:
        prepare(tpl, TemplateArguments(body=[TextValue("de más")]))

    assert raised.value.message == (
        f"the template pago_recibido (es_MX) is {status}; only an APPROVED template can be sent"
    )
    assert isinstance(raised.value, Conflict) and raised.value.code == "template-not-sendable"


def test_a_category_not_allowed_is_refused_after_the_status_and_before_the_parameters() -> None:
    marketing = template(body("Hola {{1}}"), category="MARKETING")
    allowed = frozenset({"UTILITY", "AUTHENTICATION"})

    with pytest.raises(TemplateCategoryNotAllowed) as raised:
        prepare(marketing, TemplateArguments(), allowed_categories=allowed)
    with pytest.raises(TemplateNotSendable):
        prepare(
            template(body("Hola"), category="MARKETING", status="PAUSED"),
            TemplateArguments(),
            allowed_categories=allowed,
        )

    assert raised.value.code == "template-category-not-allowed"
    assert "MARKETING" in raised.value.message and "AUTHENTICATION, UTILITY" in raised.value.message
    unknown = template(body("Hola"), category=None)
    with pytest.raises(TemplateCategoryNotAllowed):
        prepare(unknown, TemplateArguments(), allowed_categories=allowed)
    assert prepare(marketing, TemplateArguments(body=[TextValue("Ana")])).text == "Hola Ana"


def test_a_missing_body_parameter_is_refused_before_graph() -> None:
    tpl = template(body("Hola {{1}}, tu total es {{2}}."))

    errors = refusal(tpl, TemplateArguments(body=[TextValue("Ana")]))

    assert errors == [("parameters.body[1]", "is required by the template (body {{2}})")]


def test_a_missing_named_parameter_is_named() -> None:
    errors = refusal(NAMED, TemplateArguments(body={"first_name": TextValue("Ana")}))

    assert errors == [
        ("parameters.header", "is required by the template (header {{order_id}})"),
        ("parameters.body.order_id", "is required by the template (body {{order_id}})"),
    ]


def test_a_missing_header_file_and_coupon_are_refused_but_not_a_quick_reply() -> None:
    assert refusal(with_header("IMAGE"), TemplateArguments()) == [
        ("parameters.header", "is required by the template (its image header)")
    ]
    assert refusal(BUTTONS, TemplateArguments()) == [
        ("parameters.buttons[1]", "is required by the template (button 1: its URL's {{1}})"),
        ("parameters.buttons[3]", "is required by the template (button 3: its coupon code)"),
    ]


def test_values_the_template_does_not_take_are_refused() -> None:
    tpl = template(body("Hola {{1}}"))

    errors = refusal(
        tpl,
        TemplateArguments(header=TextValue("Pedido"), body=[TextValue("Ana"), TextValue("otra")]),
    )
    button_errors = refusal(
        BUTTONS,
        TemplateArguments(
            buttons={0: TextValue("x"), 1: TextValue("A12"), 3: CouponValue("D"), 7: TextValue("y")}
        ),
    )

    assert errors == [
        ("parameters.header", "is not taken: the template's header has no parameter"),
        ("parameters.body[1]", "is more than the template's body takes (1 value)"),
    ]
    assert button_errors == [
        ("parameters.buttons[0]", "is not taken: the template's button 0 takes no value"),
        ("parameters.buttons[7]", "is not taken: the template has no button 7"),
    ]


def test_a_named_value_the_template_does_not_name_is_refused() -> None:
    errors = refusal(
        NAMED,
        TemplateArguments(
            header=TextValue("A12"),
            body={
                "first_name": TextValue("Ana"),
                "order_id": TextValue("A12"),
                "x": TextValue("1"),
            },
        ),
    )

    assert errors == [
        (
            "parameters.body.x",
            "is not a placeholder of the body (it has {{first_name}}, {{order_id}})",
        )
    ]


def test_values_by_name_for_a_positional_template_are_refused_as_such() -> None:
    errors = refusal(template(body("Hola {{1}}")), TemplateArguments(body={"1": TextValue("Ana")}))

    assert errors == [
        (
            "parameters.body",
            "must be a list: the template's placeholders are numbered ({{1}}, {{2}}...), not named",
        )
    ]


TEXT_HEADER = template([{"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"}, *body("x")])


@pytest.mark.parametrize(
    ("tpl", "arguments", "expected"),
    [
        (
            TEXT_HEADER,
            TemplateArguments(header=CurrencyValue("$1", "MXN", 1000)),
            ("parameters.header", "must be text, not a currency value"),
        ),
        (
            template(body("Hola {{1}}")),
            TemplateArguments(body=[MediaValue("image", "https://tienda.mx/a.jpg")]),
            ("parameters.body[0]", "must be text, currency or dateTime, not an image value"),
        ),
        (
            with_header("IMAGE"),
            TemplateArguments(header=MediaValue("video", media_id="1")),
            ("parameters.header", "must be an image, not a video value"),
        ),
        (
            with_header("LOCATION"),
            TemplateArguments(header=TextValue("Madero 1")),
            ("parameters.header", "must be a location, not a text value"),
        ),
        (
            BUTTONS,
            TemplateArguments(buttons={1: PayloadValue("A12"), 3: TextValue("DESC10")}),
            (
                "parameters.buttons[1]",
                "must be text, not a payload value (button 1 is a URL button)",
            ),
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused(
    tpl: Template, arguments: TemplateArguments, expected: tuple[str, str]
) -> None:
    assert refusal(tpl, arguments)[0] == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Ana\nLópez", "must not contain a new line or a tab (Meta refuses them)"),
        ("Ana\tLópez", "must not contain a new line or a tab (Meta refuses them)"),
        ("Ana     López", "must not have more than 4 spaces in a row (Meta refuses it)"),
        ("   ", "must not be blank"),
        ("", "must not be blank"),
        ("Ana\x00", "must not contain NUL characters"),
        ("Ana\ud800", "must be valid Unicode text (no lone surrogates)"),
    ],
)
def test_parameter_text_meta_or_postgresql_would_refuse_is_refused(text: str, problem: str) -> None:
    tpl = template([{"type": "HEADER", "format": "TEXT", "text": "Hola {{1}}"}, *body("{{1}}")])

    errors = refusal(tpl, TemplateArguments(header=TextValue(text), body=[TextValue(text)]))

    assert errors == [("parameters.header", problem), ("parameters.body[0]", problem)]


def test_four_spaces_in_a_row_are_allowed() -> None:
    tpl = template(body("{{1}}"))

    assert prepare(tpl, TemplateArguments(body=[TextValue("Ana    López")])).text == "Ana    López"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            MediaValue("image", "http://tienda.mx/a.jpg"),
            ("parameters.header.link", "must be an https:// URL"),
        ),
        (
            MediaValue("image", "https://127.0.0.1/a.jpg"),
            (
                "parameters.header.link",
                "must name a public host by its name (not an IP address or a local name)",
            ),
        ),
        (
            MediaValue("image", "https://tienda.mx/a.jpg", "42"),
            ("parameters.header", "must give exactly one of link and id"),
        ),
        (MediaValue("image"), ("parameters.header", "must give exactly one of link and id")),
        (
            MediaValue("image", media_id="abc"),
            ("parameters.header.id", "must be the digits of a media id Meta gave an upload"),
        ),
        (
            MediaValue("image", media_id="42", filename="foto.jpg"),
            ("parameters.header.filename", "is only for documents"),
        ),
    ],
)
def test_a_media_header_must_be_a_public_link_or_an_upload_id(
    value: MediaValue, expected: tuple[str, str]
) -> None:
    assert refusal(with_header("IMAGE"), TemplateArguments(header=value)) == [expected]


def test_a_documents_filename_must_be_a_plain_file_name() -> None:
    value = MediaValue("document", media_id="42", filename="../etc/passwd")

    assert refusal(with_header("DOCUMENT"), TemplateArguments(header=value)) == [
        ("parameters.header.filename", "must be a plain file name, without folders")
    ]


def test_a_location_must_be_on_the_globe() -> None:
    value = LocationValue(91.0, float("nan"), name=" ")

    assert refusal(with_header("LOCATION"), TemplateArguments(header=value)) == [
        ("parameters.header.latitude", "must be a number from -90 to 90"),
        ("parameters.header.longitude", "must be a number from -180 to 180"),
        ("parameters.header.name", "must not be blank"),
    ]


def test_a_currency_needs_an_iso_code_a_whole_amount_and_a_fallback() -> None:
    value = CurrencyValue("", "pesos", 1.5)  # type: ignore[arg-type]

    assert refusal(template(body("{{1}}")), TemplateArguments(body=[value])) == [
        ("parameters.body[0].fallbackValue", "must not be blank"),
        ("parameters.body[0].code", "must be an ISO 4217 currency code such as MXN"),
        ("parameters.body[0].amount1000", "must be a whole number (the amount x 1000)"),
    ]


def test_the_filled_header_is_at_most_60_characters_and_the_body_1024() -> None:
    tpl = template([{"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}"}, *body("{{1}}!")])
    fits = TemplateArguments(header=TextValue("x" * 53), body=[TextValue("y" * 1023)])
    over = TemplateArguments(header=TextValue("x" * 54), body=[TextValue("y" * 1024)])

    assert len(prepare(tpl, fits).text) == 60 + 1 + 1024
    assert refusal(tpl, over) == [
        ("parameters.header", "makes the header 61 characters long, over Meta's 60"),
        ("parameters.body", "makes the body 1025 characters long, over Meta's 1,024"),
    ]


def test_every_problem_is_listed_in_one_error_with_a_message_naming_the_template() -> None:
    arguments = TemplateArguments(
        header=MediaValue("image", "http://x.mx/a.jpg"),
        body=[TextValue("Ana\n"), DateTimeValue("hoy")],
        buttons={0: TextValue(" "), 5: PayloadValue("x")},
    )

    with pytest.raises(TemplateParametersInvalid) as raised:
        prepare(PAGO, arguments)

    assert raised.value.errors == [
        ("parameters.header.link", "must be an https:// URL"),
        ("parameters.body[0]", "must not contain a new line or a tab (Meta refuses them)"),
        ("parameters.body[2]", "is required by the template (body {{3}})"),
        ("parameters.buttons[0]", "must not be blank"),
        ("parameters.buttons[5]", "is not taken: the template has no button 5"),
    ]
    assert raised.value.message.startswith(
        "the parameters do not fit the template pago_recibido (es_MX): "
        "parameters.header.link must be an https:// URL; "
    )
    assert raised.value.code == "template-parameters-invalid"
    assert isinstance(raised.value, ValidationFailed)


def test_a_header_or_url_with_two_placeholders_cannot_be_filled() -> None:
    tpl = template(
        [
            {"type": "HEADER", "format": "TEXT", "text": "{{1}} {{2}}"},
            *body("x"),
            {"type": "BUTTONS", "buttons": [{"type": "URL", "url": "https://a.mx/{{1}}/{{2}}"}]},
        ]
    )

    assert [path for path, _ in refusal(tpl, TemplateArguments(header=TextValue("a")))] == [
        "parameters.header",
        "parameters.buttons[0]",
    ]


def test_the_error_classes_have_their_codes_and_the_not_found_its_advice() -> None:
    assert issubclass(TemplateNotFound, NotFound) and TemplateNotFound.code == "template-not-found"
    assert " ".join(TemplateNotFound().message.split()) == (
        "No synced template has this name and language: sync the templates "
        "(POST /api/v1/templates/sync) or check the name."
    )
    assert issubclass(TemplateCategoryNotAllowed, Conflict)
    assert issubclass(TemplateParametersInvalid, ValidationFailed)


# --- the API's parameters JSON ---------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, {}, [], {"header": None, "body": None, "buttons": None}])
def test_no_parameters_are_no_values(empty: Any) -> None:
    assert arguments_from_json(empty) == TemplateArguments()


def test_a_list_is_the_body_and_numbers_are_taken_as_text() -> None:
    arguments = arguments_from_json(["Ana", 150, 2.5, {"type": "text", "text": "ok"}])

    assert arguments == TemplateArguments(
        body=(TextValue("Ana"), TextValue("150"), TextValue("2.5"), TextValue("ok"))
    )


def test_every_shape_of_the_object_is_read() -> None:
    read = arguments_from_json(
        {
            "header": {
                "type": "document",
                "link": "https://tienda.mx/r.pdf",
                "filename": "recibo.pdf",
            },
            "body": {"first_name": "Ana", "total": {"type": "text", "text": "$1"}},
            "buttons": [
                {"index": 0, "text": "A12"},
                {"index": 1, "payload": "ayuda"},
                {"index": 2, "couponCode": "DESC10"},
            ],
        }
    )
    location = arguments_from_json(
        {"header": {"type": "location", "latitude": 19, "longitude": -99.1, "name": "Centro"}}
    )
    by_id = arguments_from_json({"header": {"type": "video", "id": 1013859600285441}})

    assert read == TemplateArguments(
        header=MediaValue("document", "https://tienda.mx/r.pdf", None, "recibo.pdf"),
        body={"first_name": TextValue("Ana"), "total": TextValue("$1")},
        buttons={0: TextValue("A12"), 1: PayloadValue("ayuda"), 2: CouponValue("DESC10")},
    )
    assert location.header == LocationValue(19, -99.1, "Centro", None)
    assert by_id.header == MediaValue("video", media_id="1013859600285441")


@pytest.mark.parametrize(
    ("parameters", "errors"),
    [
        (
            "Ana",
            [
                (
                    "parameters",
                    'must be a list (the body\'s values) or an object with "header", "body" '
                    'and "buttons"',
                )
            ],
        ),
        (
            ["Ana", True, None],
            [
                ("parameters.body[1]", "must be a string"),
                ("parameters.body[2]", "must be a string"),
            ],
        ),
        (
            [{"type": "image", "link": "https://a.mx/a.jpg"}],
            [
                (
                    "parameters.body[0].type",
                    "must be one of text, currency, dateTime for a body value",
                )
            ],
        ),
        (
            {"header": {"type": "image"}},
            [("parameters.header", "must give a link or an id")],
        ),
        (
            {"header": {"type": "image", "link": 5, "url": "x"}},
            [
                (
                    "parameters.header.url",
                    "is not a member of an image value (type, id, link)",
                )
            ],
        ),
        (
            {"header": {"type": "location", "latitude": "19.4"}},
            [("parameters.header.longitude", "is required")],
        ),
        (
            {"header": {"type": "location", "latitude": "19.4", "longitude": True}},
            [
                ("parameters.header.latitude", "must be a number"),
                ("parameters.header.longitude", "must be a number"),
            ],
        ),
        (
            {
                "body": [
                    {"type": "currency", "fallback_value": "$1", "code": "MXN", "amount1000": 1.5}
                ]
            },
            [
                ("parameters.body[0].fallbackValue", "is required"),
                (
                    "parameters.body[0].fallback_value",
                    "is not a member of a currency value (type, amount1000, code, fallbackValue)",
                ),
            ],
        ),
        (
            {
                "body": [
                    {"type": "currency", "fallbackValue": "$1", "code": "MXN", "amount1000": 1.5}
                ]
            },
            [("parameters.body[0].amount1000", "must be a whole number (the amount x 1000)")],
        ),
        ({"body": "Ana"}, [("parameters.body", "must be a list of values or an object by name")]),
        (
            {"body": {"first_name": ["Ana"]}},
            [("parameters.body.first_name", "must be a string")],
        ),
        (
            {"buttons": [{"index": "0", "text": "A12"}]},
            [("parameters.buttons[0].index", "must be a button's index, a whole number 0 to 9")],
        ),
        (
            {"buttons": [{"index": 0, "text": "A"}, {"index": 0, "payload": "B"}]},
            [("parameters.buttons[1].index", "repeats the button of parameters.buttons[0]")],
        ),
        (
            {"buttons": [{"index": 0}, {"index": 1, "text": "a", "payload": "b"}]},
            [
                ("parameters.buttons[0]", "must give exactly one of text, payload and couponCode"),
                ("parameters.buttons[1]", "must give exactly one of text, payload and couponCode"),
            ],
        ),
        (
            {"buttons": [{"index": 0, "coupon_code": "X", "couponCode": 5}]},
            [
                (
                    "parameters.buttons[0].coupon_code",
                    "is not a member (index, text, payload, couponCode)",
                ),
                ("parameters.buttons[0].couponCode", "must be a string"),
            ],
        ),
        (
            {"buttons": {"0": "A12"}},
            [("parameters.buttons", 'must be a list of {"index": 0, "text": "..."}')],
        ),
        ({"footer": "x"}, [("parameters.footer", "is not a member (header, body, buttons)")]),
    ],
)
def test_each_bad_field_of_the_json_is_named_by_its_path(
    parameters: Any, errors: list[tuple[str, str]]
) -> None:
    with pytest.raises(TemplateParametersInvalid) as raised:
        arguments_from_json(parameters)

    assert raised.value.errors == errors


def test_every_bad_field_of_the_json_is_listed_at_once() -> None:
    with pytest.raises(TemplateParametersInvalid) as raised:
        arguments_from_json(
            {
                "header": {"type": "gif", "link": "x"},
                "body": ["ok", False],
                "buttons": [{"index": -1, "text": "a"}],
            }
        )

    assert [path for path, _ in raised.value.errors] == [
        "parameters.header.type",
        "parameters.body[1]",
        "parameters.buttons[0].index",
    ]


# --- a purpose's template, filled in order -----------------------------------------------------


def test_a_purposes_values_fill_header_body_and_url_suffixes_in_order() -> None:
    tpl = template(
        [
            {"type": "HEADER", "format": "TEXT", "text": "Pago {{1}}"},
            *body("Hola {{1}}, recibimos {{2}}."),
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Ayuda"},
                    {"type": "URL", "text": "Recibo", "url": "https://tienda.mx/r/{{1}}"},
                ],
            },
        ]
    )

    arguments = arguments_in_order(tpl, ["A12", "Ana", "$150.00", "A12"])

    assert arguments == TemplateArguments(
        header=TextValue("A12"),
        body=(TextValue("Ana"), TextValue("$150.00")),
        buttons={1: TextValue("A12")},
    )
    assert prepare(tpl, arguments).text == "Pago A12\nHola Ana, recibimos $150.00."


def test_a_purpose_with_too_few_or_too_many_values_is_refused() -> None:
    tpl = template(body("Hola {{1}}, recibimos {{2}}."))

    for values in (["Ana"], ["Ana", "$1", "de más"]):
        with pytest.raises(TemplateParametersInvalid) as raised:
            arguments_in_order(tpl, values)
        assert raised.value.errors == [
            (
                "parameters",
                f"gives {len(values)} value{'' if len(values) == 1 else 's'}; the template "
                "takes 2 (body {{1}}, body {{2}})",
            )
        ]


def test_a_template_with_a_file_header_or_a_coupon_cannot_be_a_purposes() -> None:
    with pytest.raises(TemplateParametersInvalid) as header:
        arguments_in_order(with_header("IMAGE"), [])
    with pytest.raises(TemplateParametersInvalid) as coupon:
        arguments_in_order(BUTTONS, ["A12"])

    assert header.value.errors == [
        (
            "parameters.header",
            "cannot be filled from a list of values: the template's header is an image",
        )
    ]
    assert coupon.value.errors == [
        (
            "parameters.buttons[3]",
            "cannot be filled from a list of values: the template's button 3 copies a coupon code",
        )
    ]


# --- the purposes mapping ----------------------------------------------------------------------


def test_the_purposes_mapping_is_read_and_written_back() -> None:
    given = {
        "paymentReceived": {
            "name": "pago_recibido",
            "language": "es_MX",
            "parameters": ["customerName", "amount"],
        },
        "handoffReply": {"name": "respuesta", "language": "zh_CN", "parameters": ["text"]},
        "paymentFailed": {"name": "pago_fallido", "language": "fil"},
        "paymentExpired": None,
    }

    mapping = mapping_from_json(given)

    assert mapping == {
        "paymentReceived": MappedTemplate("pago_recibido", "es_MX", ("customerName", "amount")),
        "handoffReply": MappedTemplate("respuesta", "zh_CN", ("text",)),
        "paymentFailed": MappedTemplate("pago_fallido", "fil"),
    }
    assert mapping_to_json(mapping) == {
        "paymentReceived": {
            "name": "pago_recibido",
            "language": "es_MX",
            "parameters": ["customerName", "amount"],
        },
        "paymentFailed": {"name": "pago_fallido", "language": "fil", "parameters": []},
        "handoffReply": {"name": "respuesta", "language": "zh_CN", "parameters": ["text"]},
    }
    assert mapping_from_json(None) == {} == mapping_from_json({})


def test_every_problem_of_the_mapping_is_listed_by_its_path() -> None:
    with pytest.raises(ValidationFailed) as raised:
        mapping_from_json(
            {
                "paymentRefunded": {"name": "x", "language": "es"},
                "paymentReceived": {
                    "name": "Pago Recibido",
                    "language": "español",
                    "parameters": ["customerName", "total"],
                },
                "paymentFailed": ["pago_fallido"],
                "paymentExpired": {"language": "es", "parameters": "amount", "extra": 1},
            }
        )

    purposes = ", ".join(PURPOSES)
    fields = ", ".join(FIELDS)
    payment = ", ".join(PURPOSE_FIELDS["paymentReceived"])
    assert type(raised.value) is ValidationFailed
    assert raised.value.errors == [
        ("templates.paymentRefunded", f"is not a purpose ({purposes})"),
        (
            "templates.paymentReceived.name",
            "must be a template name: lower case letters, digits and _",
        ),
        (
            "templates.paymentReceived.language",
            "must be a language code such as es, es_MX or pt_BR",
        ),
        (
            "templates.paymentReceived.parameters[1]",
            f"must be one of {payment} (what paymentReceived has)",
        ),
        ("templates.paymentFailed", 'must be an object: {"name", "language", "parameters"}'),
        ("templates.paymentExpired.extra", "is not a member (name, language, parameters)"),
        ("templates.paymentExpired.name", "is required"),
        ("templates.paymentExpired.parameters", f"must be a list of {fields}"),
    ]


def test_a_purpose_can_only_be_filled_with_what_it_has() -> None:
    with pytest.raises(ValidationFailed) as raised:
        mapping_from_json(
            {
                "handoffReply": {"name": "r", "language": "es", "parameters": ["amount"]},
                "paymentReceived": {"name": "p", "language": "es", "parameters": ["text"]},
            }
        )

    assert [path for path, _ in raised.value.errors] == [
        "templates.handoffReply.parameters[0]",
        "templates.paymentReceived.parameters[0]",
    ]


def test_the_mapping_field_names_its_paths_and_must_be_an_object() -> None:
    with pytest.raises(ValidationFailed) as raised:
        mapping_from_json(["paymentReceived"], field="config.templates")
    with pytest.raises(ValidationFailed) as nested:
        mapping_from_json({"handoffReply": {"name": "a" * 513, "language": "es"}}, field="t")

    assert raised.value.errors[0][0] == "config.templates"
    assert nested.value.errors == [
        ("t.handoffReply.name", "must be a template name: lower case letters, digits and _")
    ]


# --- the rules, as properties ------------------------------------------------------------------


def texts_sent(prepared: PreparedTemplate) -> list[str]:
    """The text parameters of a send, in the order of its components."""
    return [
        parameter["text"]
        for component in prepared.components
        for parameter in component["parameters"]
        if parameter["type"] == "text"
    ]


#: Text Meta and PostgreSQL take as a parameter: no control characters, line or paragraph
#: separators, lone surrogates; not blank; at most 4 spaces in a row.
words = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=15
).filter(lambda s: bool(s.strip()) and "     " not in s)


@settings(max_examples=60)
@given(st.integers(0, 5), st.lists(words, max_size=7))
def test_a_positional_body_prepares_iff_given_exactly_its_values_and_shows_them_all(
    n: int, values: list[str]
) -> None:
    tpl = template(body("Hola " + ", ".join(f"{{{{{i}}}}}" for i in range(1, n + 1))))
    arguments = TemplateArguments(body=[TextValue(v) for v in values])

    if len(values) == n:
        prepared = prepare(tpl, arguments)
        assert all(v in prepared.text for v in values)
        assert texts_sent(prepared) == values
    else:
        with pytest.raises(TemplateParametersInvalid):
            prepare(tpl, arguments)


def mapped(purpose: str) -> st.SearchStrategy[MappedTemplate]:
    return st.builds(
        MappedTemplate,
        name=st.from_regex(r"[a-z0-9_]{1,40}", fullmatch=True),
        language=st.from_regex(r"[a-z]{2,3}(_[A-Z]{2})?", fullmatch=True),
        parameters=st.lists(st.sampled_from(PURPOSE_FIELDS[purpose]), max_size=5).map(tuple),
    )


mappings = st.lists(st.sampled_from(PURPOSES), unique=True).flatmap(
    lambda purposes: st.fixed_dictionaries({p: mapped(p) for p in purposes})
)


@settings(max_examples=60)
@given(mappings)
def test_a_mapping_written_and_read_back_is_the_same(mapping: dict[str, MappedTemplate]) -> None:
    written = json.loads(json.dumps(mapping_to_json(mapping)))

    assert mapping_from_json(written) == mapping


placeholder_names = st.sampled_from(["first_name", "order_id", "total", "fecha", "tienda"])


@st.composite
def purpose_templates(draw: st.DrawFn) -> Template:
    named = draw(st.booleans())
    count = draw(st.integers(0, 4))
    if named:
        keys = draw(st.lists(placeholder_names, max_size=count, unique=True))
    else:
        keys = [str(i) for i in range(1, count + 1)]
    components: list[dict[str, Any]] = []
    if draw(st.booleans()):
        key = keys[0] if named and keys else "1" if not named else draw(placeholder_names)
        components.append({"type": "HEADER", "format": "TEXT", "text": f"Aviso {{{{{key}}}}}"})
    components.append({"type": "BODY", "text": " ".join(f"[{{{{{k}}}}}]" for k in keys) or "Hola"})
    kinds = draw(st.lists(st.sampled_from(["URL", "QUICK_REPLY", "STATIC_URL"]), max_size=3))
    buttons = [
        {"type": "QUICK_REPLY", "text": "Ayuda"}
        if kind == "QUICK_REPLY"
        else {"type": "URL", "text": "Ver", "url": "https://tienda.mx/"}
        if kind == "STATIC_URL"
        else {"type": "URL", "text": "Ver", "url": "https://tienda.mx/{{1}}"}
        for kind in kinds
    ]
    if buttons:
        components.append({"type": "BUTTONS", "buttons": buttons})
    return template(components, "NAMED" if named else "POSITIONAL")


@settings(max_examples=60)
@given(purpose_templates(), st.data())
def test_a_purposes_values_of_the_right_count_always_prepare(
    tpl: Template, data: st.DataObject
) -> None:
    count = sum(1 for p in tpl.parameters if p.kind == "text")
    values = data.draw(st.lists(words, min_size=count, max_size=count))

    prepared = prepare(tpl, arguments_in_order(tpl, values))

    assert texts_sent(prepared) == values
    shown = [p for p in tpl.parameters if p.component != "button"]
    assert all(values[n] in prepared.text for n in range(len(shown)))
