"""Sending a synced template: the values a send gives, checked against what the template
needs, and turned into Graph's ``template.components`` before anything reaches Meta.

Pure. A send names a stored ``Template`` (``templates.py``) and gives its values as
``TemplateArguments``: one for the header, the body's (a list, ``{{1}}`` first, or by name
for a ``NAMED`` template) and the buttons' by button index. ``prepare`` checks them all (a
template Meta approved, of a category the caller allows, every parameter filled with a value
of the right kind, nothing extra, within Meta's limits) and gives a ``PreparedTemplate``:
the components exactly as Graph takes them and the text the customer reads. Every problem
with the values is collected into one ``TemplateParametersInvalid``, each as a field path
and what is wrong there, so a caller fixes them all at once.

The API's ``parameters`` JSON is read by ``arguments_from_json``; a shop's mapping of our
own messages (a payment received, failed, expired, a reply after a handoff) to templates by
``mapping_from_json``, filled by ``arguments_in_order``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from changarrito.domain.errors import Conflict, NotFound, ValidationFailed
from changarrito.domain.outgoing import check_filename, check_link, check_text
from changarrito.domain.templates import PLACEHOLDER, Parameter, Template

# --- errors --------------------------------------------------------------------------------


class TemplateNotFound(NotFound):
    """No synced template has this name and language: sync the templates (POST
    /api/v1/templates/sync) or check the name."""

    code = "template-not-found"


class TemplateNotSendable(Conflict):
    """Only an APPROVED template can be sent."""

    code = "template-not-sendable"


class TemplateCategoryNotAllowed(Conflict):
    """A template of this category cannot be sent here."""

    code = "template-category-not-allowed"


class TemplateParametersInvalid(ValidationFailed):
    """The parameters do not fit the template."""

    code = "template-parameters-invalid"


# --- the values a send gives ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextValue:
    """Text for a body or header placeholder, or a URL button's suffix."""

    text: str


@dataclass(frozen=True, slots=True)
class CurrencyValue:
    """An amount for a body placeholder: Meta shows ``fallback`` (``"$150.00"``); ``code``
    is the ISO 4217 currency and ``amount_1000`` the amount times 1,000 (150000)."""

    fallback: str
    code: str
    amount_1000: int


@dataclass(frozen=True, slots=True)
class DateTimeValue:
    """A date for a body placeholder, shown as ``fallback`` (``"3 de diciembre de 2026"``)."""

    fallback: str


@dataclass(frozen=True, slots=True)
class MediaValue:
    """A media header's file (``kind``: ``image``, ``video`` or ``document``): by ``link``
    (a public HTTPS URL Meta fetches) or ``media_id`` (an upload's id), exactly one; a
    document may say the ``filename`` the customer sees."""

    kind: str
    link: str | None = None
    media_id: str | None = None
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class LocationValue:
    """A location header's place."""

    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class PayloadValue:
    """What a quick reply button sends back to us when tapped (optional)."""

    payload: str


@dataclass(frozen=True, slots=True)
class CouponValue:
    """The code a copy-code button copies."""

    code: str


Value: TypeAlias = (
    TextValue
    | CurrencyValue
    | DateTimeValue
    | MediaValue
    | LocationValue
    | PayloadValue
    | CouponValue
)


@dataclass(frozen=True, slots=True)
class TemplateArguments:
    """The values of one send: the ``header``'s; the ``body``'s as a list (a positional
    template's ``{{1}}``, ``{{2}}``... in that order; a ``NAMED`` template's placeholders in
    the order they first appear) or by name (``NAMED`` templates only); the ``buttons``' by
    button index (0 is the first button Meta lists)."""

    header: Value | None = None
    body: Sequence[Value] | Mapping[str, Value] = ()
    buttons: Mapping[int, Value] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PreparedTemplate:
    """A send Graph takes: ``components`` is its ``template.components`` (empty ones left
    out); ``text`` is what the customer reads (the header's text, a new line, the body's,
    the values filled in, a currency or date as its fallback; no footer, no buttons), for
    the inbox."""

    name: str
    language: str
    category: str | None
    components: list[dict[str, Any]]
    text: str


#: Meta's limits on a template's header text and body once filled in.
MAX_HEADER_CHARS = 60
MAX_BODY_CHARS = 1024
#: What Meta refuses in a parameter's text: a new line or a tab, more than 4 spaces in a row.
_BREAKS = re.compile("[\n\r\t\v\f\x85\u2028\u2029]")
_SPACES = re.compile(" {5,}")
_CURRENCY_CODE = re.compile("[A-Z]{3}")
_DIGITS = re.compile("[0-9]+")

_Problems: TypeAlias = list[tuple[str, str]]
_Key: TypeAlias = str | int


def _named(template: Template) -> bool:
    return (template.parameter_format or "").upper() == "NAMED"


def _key(parameter: Parameter) -> _Key:
    return parameter.name if parameter.name is not None else (parameter.index or 0)


def _placeholder(parameter: Parameter) -> str:
    return "{{" + str(_key(parameter)) + "}}"


def _label(parameter: Parameter) -> str:
    """How a missing parameter is named: ``body {{2}}``, ``button 0: its URL's {{1}}``."""
    if parameter.component == "button":
        what = {
            "url": f"its URL's {_placeholder(parameter)}",
            "quick_reply": "its quick reply payload",
            "copy_code": "its coupon code",
        }.get(parameter.sub_type or "", "its value")
        return f"button {parameter.button}: {what}"
    if parameter.kind == "text":
        return f"{parameter.component} {_placeholder(parameter)}"
    return f"its {parameter.kind} header"


def _describe(value: object) -> str:
    """``an image value``, ``a currency value``: what was given, for a message."""
    if isinstance(value, MediaValue):
        return f"{_article(value.kind)} {value.kind} value"
    names = {
        TextValue: "a text value",
        CurrencyValue: "a currency value",
        DateTimeValue: "a dateTime value",
        LocationValue: "a location value",
        PayloadValue: "a payload value",
        CouponValue: "a couponCode value",
    }
    return names.get(type(value), "a value of no known kind")


def _body_parameters(template: Template) -> list[Parameter]:
    """The body's parameters in the order a list of values fills them: a positional
    template's by number (``{{1}}`` first), a named one's as they first appear."""
    body = [p for p in template.parameters if p.component == "body"]
    if not _named(template):
        body.sort(key=lambda p: (p.index is None, p.index or 0))
    return body


def _button_parameters(template: Template) -> dict[int, list[Parameter]]:
    found: dict[int, list[Parameter]] = {}
    for parameter in template.parameters:
        if parameter.component == "button" and parameter.button is not None:
            found.setdefault(parameter.button, []).append(parameter)
    return dict(sorted(found.items()))


def _component(template: Template, kind: str) -> Mapping[str, Any] | None:
    for component in template.components:
        if isinstance(component, Mapping) and str(component.get("type", "")).upper() == kind:
            return component
    return None


def _component_text(template: Template, kind: str) -> str:
    component = _component(template, kind)
    header_format = str(component.get("format", "")).upper() if component is not None else ""
    if component is None or (kind == "HEADER" and header_format != "TEXT"):
        return ""
    text = component.get("text")
    return text if isinstance(text, str) else ""


def _button_count(template: Template) -> int:
    component = _component(template, "BUTTONS")
    buttons = component.get("buttons") if component is not None else None
    return len(buttons) if isinstance(buttons, list) else 0


def _filled(text: str, values: Mapping[_Key, str], named: bool) -> str:
    """``text`` with each placeholder given a value replaced by it (in one pass, so a
    value that looks like a placeholder stays as it is)."""

    def value_of(match: re.Match[str]) -> str:
        found = match.group(1)
        key: _Key = found if named or not found.isdigit() else int(found)
        return values.get(key, match.group(0))

    return PLACEHOLDER.sub(value_of, text)


def _check_words(path: str, text: object, problems: _Problems, *, meta_rule: bool) -> bool:
    """Whether ``text`` is text we can store and send, not blank and (``meta_rule``) without
    what Meta refuses in a parameter; each problem is added to ``problems`` at ``path``."""
    if not isinstance(text, str):
        problems.append((path, "must be text"))
        return False
    try:
        check_text(path, text, blank=False)
    except ValidationFailed as exc:
        problems.extend((path, problem) for _, problem in exc.errors)
        return False
    if meta_rule and _BREAKS.search(text):
        problems.append((path, "must not contain a new line or a tab (Meta refuses them)"))
        return False
    if meta_rule and _SPACES.search(text):
        problems.append((path, "must not have more than 4 spaces in a row (Meta refuses it)"))
        return False
    return True


def _is_number(value: object) -> bool:
    """A JSON number: an ``int`` (not a ``bool``) or a finite ``float``."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


# --- filling each kind of parameter ----------------------------------------------------------


def _fill_text(
    parameter: Parameter,
    value: Value,
    path: str,
    problems: _Problems,
    *,
    named: bool,
    body: bool,
) -> tuple[dict[str, Any], str] | None:
    """The wire parameter and the shown text of a header or body placeholder's value."""
    wire: dict[str, Any]
    if isinstance(value, TextValue):
        if not _check_words(path, value.text, problems, meta_rule=True):
            return None
        wire, shown = {"type": "text", "text": value.text}, value.text
    elif body and isinstance(value, CurrencyValue):
        fine = _check_words(f"{path}.fallbackValue", value.fallback, problems, meta_rule=True)
        if not isinstance(value.code, str) or not _CURRENCY_CODE.fullmatch(value.code):
            problems.append((f"{path}.code", "must be an ISO 4217 currency code such as MXN"))
            fine = False
        if not isinstance(value.amount_1000, int) or isinstance(value.amount_1000, bool):
            problems.append((f"{path}.amount1000", "must be a whole number (the amount x 1000)"))
            fine = False
        if not fine:
            return None
        currency = {
            "fallback_value": value.fallback,
            "code": value.code,
            "amount_1000": value.amount_1000,
        }
        wire, shown = {"type": "currency", "currency": currency}, value.fallback
    elif body and isinstance(value, DateTimeValue):
        if not _check_words(f"{path}.fallbackValue", value.fallback, problems, meta_rule=True):
            return None
        date_time = {"fallback_value": value.fallback}
        wire, shown = {"type": "date_time", "date_time": date_time}, value.fallback
    else:
        expected = "text, currency or dateTime" if body else "text"
        problems.append((path, f"must be {expected}, not {_describe(value)}"))
        return None
    if named and parameter.name is not None:
        wire["parameter_name"] = parameter.name
    return wire, shown


def _fill_media(
    parameter: Parameter, value: Value, path: str, problems: _Problems
) -> dict[str, Any] | None:
    kind = parameter.kind
    if not isinstance(value, MediaValue) or value.kind != kind:
        problems.append((path, f"must be {_article(kind)} {kind}, not {_describe(value)}"))
        return None
    before = len(problems)
    media: dict[str, Any] = {}
    if (value.link is None) == (value.media_id is None):
        problems.append((path, "must give exactly one of link and id"))
    elif value.link is not None:
        try:
            media["link"] = check_link(value.link)
        except ValidationFailed as exc:
            problems.extend((f"{path}.link", problem) for _, problem in exc.errors)
    elif not isinstance(value.media_id, str) or not _DIGITS.fullmatch(value.media_id):
        problems.append((f"{path}.id", "must be the digits of a media id Meta gave an upload"))
    else:
        media["id"] = value.media_id
    if value.filename is not None:
        try:
            media["filename"] = check_filename(kind, value.filename)
        except ValidationFailed as exc:
            problems.extend((f"{path}.filename", problem) for _, problem in exc.errors)
    return {"type": kind, kind: media} if len(problems) == before else None


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _fill_location(value: Value, path: str, problems: _Problems) -> dict[str, Any] | None:
    if not isinstance(value, LocationValue):
        problems.append((path, f"must be a location, not {_describe(value)}"))
        return None
    before = len(problems)
    for name, number, limit in (
        ("latitude", value.latitude, 90),
        ("longitude", value.longitude, 180),
    ):
        if not _is_number(number) or not -limit <= number <= limit:
            problems.append((f"{path}.{name}", f"must be a number from -{limit} to {limit}"))
    location: dict[str, Any] = {"latitude": value.latitude, "longitude": value.longitude}
    for name, text in (("name", value.name), ("address", value.address)):
        if text is not None and _check_words(f"{path}.{name}", text, problems, meta_rule=False):
            location[name] = text
    return {"type": "location", "location": location} if len(problems) == before else None


def _fill_button(
    parameter: Parameter, value: Value, path: str, problems: _Problems
) -> dict[str, Any] | None:
    sub_type = parameter.sub_type or ""
    wire: dict[str, Any]
    if sub_type == "url" and isinstance(value, TextValue):
        if not _check_words(path, value.text, problems, meta_rule=True):
            return None
        wire = {"type": "text", "text": value.text}
    elif sub_type == "quick_reply" and isinstance(value, PayloadValue):
        if not _check_words(path, value.payload, problems, meta_rule=False):
            return None
        wire = {"type": "payload", "payload": value.payload}
    elif sub_type == "copy_code" and isinstance(value, CouponValue):
        if not _check_words(path, value.code, problems, meta_rule=True):
            return None
        wire = {"type": "coupon_code", "coupon_code": value.code}
    else:
        expected, kind = {
            "url": ("text", "a URL button"),
            "quick_reply": ("a payload", "a quick reply"),
            "copy_code": ("a couponCode", "a copy-code button"),
        }.get(sub_type, ("nothing", "a button"))
        number = parameter.button
        problems.append(
            (path, f"must be {expected}, not {_describe(value)} (button {number} is {kind})")
        )
        return None
    return {
        "type": "button",
        "sub_type": sub_type,
        "index": str(parameter.button),
        "parameters": [wire],
    }


def _shape_problems(template: Template) -> _Problems:
    """What no values can fill: a header or a URL with more than one placeholder (Meta
    allows one; a template synced from Meta never has more)."""
    problems: _Problems = []
    header = [p for p in template.parameters if p.component == "header"]
    if len(header) > 1:
        problems.append(
            (
                "parameters.header",
                f"cannot be filled: the template's header has {len(header)} placeholders "
                "and Meta allows one",
            )
        )
    for index, parameters in _button_parameters(template).items():
        if len(parameters) > 1:
            problems.append(
                (
                    f"parameters.buttons[{index}]",
                    f"cannot be filled: button {index}'s URL has {len(parameters)} "
                    "placeholders and Meta allows one",
                )
            )
    return problems


def _invalid(template: Template, problems: _Problems) -> TemplateParametersInvalid:
    listed = "; ".join(f"{path} {problem}" for path, problem in problems)
    message = f"the parameters do not fit the template {template.name} ({template.language})"
    return TemplateParametersInvalid(f"{message}: {listed}", errors=problems)


# --- prepare ---------------------------------------------------------------------------------


def prepare(
    template: Template,
    arguments: TemplateArguments,
    *,
    allowed_categories: frozenset[str] | None = None,
) -> PreparedTemplate:
    """The send of ``template`` with ``arguments``, checked before anything reaches Meta, in
    this order:

    - the template's status must be ``APPROVED`` (``TemplateNotSendable``, naming it);
    - with ``allowed_categories`` (upper case), its category must be one of them
      (``TemplateCategoryNotAllowed``);
    - the values (``TemplateParametersInvalid``, every problem at once): each parameter the
      template requires filled with a value of its kind (a body placeholder takes text, a
      currency or a date; a header placeholder and a URL button's suffix take text; a media
      header a file of its kind, by link or id; a location header a place; a copy-code
      button its coupon code; a quick reply's payload is optional), and nothing the template
      does not take. Text must be storable and not blank; a header's or body's value, a URL
      suffix and a coupon code must have no new line or tab and no more than 4 spaces in a
      row (Meta refuses them); a link must pass ``outgoing.check_link``, an id be digits, a
      document's name ``outgoing.check_filename``. The header filled in is at most 60
      characters, the body at most 1,024.

    Paths: ``parameters.header`` (``.link``, ``.id``, ``.filename``, ``.latitude``...),
    ``parameters.body[i]`` for a list's i-th value (``{{i+1}}`` of a positional template),
    ``parameters.body.<name>`` for a value by name (``.fallbackValue``, ``.code``,
    ``.amount1000`` within a currency), ``parameters.buttons[i]`` for the button of index i.
    """
    status = (template.status or "").upper()
    if status != "APPROVED":
        raise TemplateNotSendable(
            f"the template {template.name} ({template.language}) is {template.status}; "
            "only an APPROVED template can be sent"
        )
    category = (template.category or "").upper()
    if allowed_categories is not None and category not in allowed_categories:
        allowed = ", ".join(sorted(allowed_categories)) or "none"
        raise TemplateCategoryNotAllowed(
            f"the template {template.name} ({template.language}) is of category "
            f"{template.category or 'unknown'}; only these can be sent here: {allowed}"
        )

    named = _named(template)
    problems = _shape_problems(template)
    unfillable = {path for path, _ in problems}
    components: list[dict[str, Any]] = []

    # The header.
    header_text = _component_text(template, "HEADER")
    header = [p for p in template.parameters if p.component == "header"]
    before = len(problems)
    shown_header: dict[_Key, str] = {}
    if not header:
        if arguments.header is not None:
            problems.append(
                ("parameters.header", "is not taken: the template's header has no parameter")
            )
    elif "parameters.header" not in unfillable:
        parameter, value, path = header[0], arguments.header, "parameters.header"
        wire: dict[str, Any] | None = None
        if value is None:
            problems.append((path, f"is required by the template ({_label(parameter)})"))
        elif parameter.kind == "text":
            filled = _fill_text(parameter, value, path, problems, named=named, body=False)
            if filled is not None:
                wire, shown_header[_key(parameter)] = filled
        elif parameter.kind == "location":
            wire = _fill_location(value, path, problems)
        else:
            wire = _fill_media(parameter, value, path, problems)
        if wire is not None:
            components.append({"type": "header", "parameters": [wire]})
    header_shown = _filled(header_text, shown_header, named)
    fine = len(problems) == before and "parameters.header" not in unfillable
    if fine and len(header_shown) > MAX_HEADER_CHARS:
        problems.append(
            (
                "parameters.header",
                f"makes the header {len(header_shown)} characters long, over Meta's "
                f"{MAX_HEADER_CHARS}",
            )
        )

    # The body.
    body_text = _component_text(template, "BODY")
    body = _body_parameters(template)
    before = len(problems)
    shown_body: dict[_Key, str] = {}
    wires: list[dict[str, Any]] = []

    def fill(parameter: Parameter, value: Value | None, path: str) -> None:
        if value is None:
            problems.append((path, f"is required by the template ({_label(parameter)})"))
            return
        filled = _fill_text(parameter, value, path, problems, named=named, body=True)
        if filled is not None:
            wire, shown_body[_key(parameter)] = filled
            wires.append(wire)

    given = arguments.body
    if isinstance(given, Mapping) and not given:
        given = ()
    if isinstance(given, Mapping):
        names = [p.name for p in body if p.name is not None]
        if given and body and not named:
            problems.append(
                (
                    "parameters.body",
                    "must be a list: the template's placeholders are numbered ({{1}}, "
                    "{{2}}...), not named",
                )
            )
        else:
            for parameter in body:
                name = str(parameter.name)
                fill(parameter, given.get(name), f"parameters.body.{name}")
            listed = ", ".join("{{" + n + "}}" for n in names) or "none"
            problems.extend(
                (f"parameters.body.{name}", f"is not a placeholder of the body (it has {listed})")
                for name in given
                if name not in names
            )
    else:
        for number, parameter in enumerate(body):
            value = given[number] if number < len(given) else None
            fill(parameter, value, f"parameters.body[{number}]")
        problems.extend(
            (
                f"parameters.body[{number}]",
                f"is more than the template's body takes ({len(body)} value"
                f"{'' if len(body) == 1 else 's'})",
            )
            for number in range(len(body), len(given))
        )
    if wires:
        components.append({"type": "body", "parameters": wires})
    body_shown = _filled(body_text, shown_body, named)
    if len(problems) == before and len(body_shown) > MAX_BODY_CHARS:
        problems.append(
            (
                "parameters.body",
                f"makes the body {len(body_shown)} characters long, over Meta's {MAX_BODY_CHARS:,}",
            )
        )

    # The buttons.
    buttons = _button_parameters(template)
    for index, parameters in buttons.items():
        path = f"parameters.buttons[{index}]"
        parameter, value = parameters[0], arguments.buttons.get(index)
        if path in unfillable:
            continue
        if value is None:
            if parameter.required:
                problems.append((path, f"is required by the template ({_label(parameter)})"))
            continue
        wire = _fill_button(parameter, value, path, problems)
        if wire is not None:
            components.append(wire)
    count = _button_count(template)
    for index in sorted(arguments.buttons):
        if index not in buttons:
            why = (
                f"the template's button {index} takes no value"
                if isinstance(index, int) and 0 <= index < count
                else f"the template has no button {index}"
            )
            problems.append((f"parameters.buttons[{index}]", f"is not taken: {why}"))

    if problems:
        raise _invalid(template, problems)
    text = "\n".join(part for part in (header_shown, body_shown) if part)
    return PreparedTemplate(template.name, template.language, template.category, components, text)


def arguments_in_order(template: Template, values: Sequence[str]) -> TemplateArguments:
    """The arguments of a configured purpose: ``values`` fill the template's text
    parameters, each as text, in the order ``parameters_of`` lists them: the header's
    placeholder, the body's (a positional template's by number, ``{{1}}`` first), then each
    URL button's suffix. A quick reply's optional payload is left out. A template whose
    header is a file or a location, or with a copy-code button, cannot be filled this way;
    nor can it with fewer or more values than it has text parameters
    (``TemplateParametersInvalid``)."""
    problems = _shape_problems(template)
    header = [p for p in template.parameters if p.component == "header"]
    buttons = _button_parameters(template)
    for parameter in header:
        if parameter.kind != "text":
            problems.append(
                (
                    "parameters.header",
                    f"cannot be filled from a list of values: the template's header is "
                    f"{_article(parameter.kind)} {parameter.kind}",
                )
            )
    for index, parameters in buttons.items():
        if any(p.sub_type == "copy_code" for p in parameters):
            problems.append(
                (
                    f"parameters.buttons[{index}]",
                    f"cannot be filled from a list of values: the template's button {index} "
                    "copies a coupon code",
                )
            )
    if problems:
        raise _invalid(template, problems)
    slots = [
        *header,
        *_body_parameters(template),
        *(p for parameters in buttons.values() for p in parameters if p.sub_type == "url"),
    ]
    if len(values) != len(slots):
        wanted = ", ".join(_label(p) for p in slots) or "none"
        problems.append(
            (
                "parameters",
                f"gives {len(values)} value{'' if len(values) == 1 else 's'}; the template "
                f"takes {len(slots)} ({wanted})",
            )
        )
        raise _invalid(template, problems)
    filled = [TextValue(value) for value in values]
    in_header = [filled[n] for n, p in enumerate(slots) if p.component == "header"]
    return TemplateArguments(
        header=in_header[0] if in_header else None,
        body=tuple(filled[n] for n, p in enumerate(slots) if p.component == "body"),
        buttons={p.button: filled[n] for n, p in enumerate(slots) if p.button is not None},
    )


# --- the API's ``parameters`` JSON ------------------------------------------------------------


def _json_text(value: Any, path: str, problems: _Problems) -> str | None:
    """A JSON string, or a number taken as its text (``150`` is ``"150"``)."""
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    problems.append((path, "must be a string"))
    return None


def _json_string(value: Any, path: str, problems: _Problems, *, numbers: bool = False) -> Any:
    if isinstance(value, str) or (numbers and _is_number(value) and isinstance(value, int)):
        return str(value)
    problems.append((path, "must be a string"))
    return None


_MEMBERS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {
    # type: (required members, optional members), besides "type"
    "text": (frozenset({"text"}), frozenset()),
    "currency": (frozenset({"fallbackValue", "code", "amount1000"}), frozenset()),
    "dateTime": (frozenset({"fallbackValue"}), frozenset()),
    "image": (frozenset(), frozenset({"link", "id"})),
    "video": (frozenset(), frozenset({"link", "id"})),
    "document": (frozenset(), frozenset({"link", "id", "filename"})),
    "location": (frozenset({"latitude", "longitude"}), frozenset({"name", "address"})),
}
_BODY_TYPES = ("text", "currency", "dateTime")


def _json_value(value: Any, path: str, problems: _Problems, *, header: bool) -> Value | None:
    if not isinstance(value, Mapping):
        text = _json_text(value, path, problems)
        return TextValue(text) if text is not None else None
    types = tuple(_MEMBERS) if header else _BODY_TYPES
    kind = value.get("type")
    if kind not in types:
        where = "a header value" if header else "a body value"
        problems.append((f"{path}.type", f"must be one of {', '.join(types)} for {where}"))
        return None
    required, optional = _MEMBERS[kind]
    before = len(problems)
    for member in sorted(required - set(value)):
        problems.append((f"{path}.{member}", "is required"))
    for member in value:
        if member != "type" and member not in required | optional:
            known = ", ".join(["type", *sorted(required | optional)])
            problems.append(
                (f"{path}.{member}", f"is not a member of {_article(kind)} {kind} value ({known})")
            )
    if len(problems) > before:
        return None
    if kind == "text":
        text = _json_text(value["text"], f"{path}.text", problems)
        return TextValue(text) if text is not None else None
    if kind == "currency":
        fallback = _json_string(value["fallbackValue"], f"{path}.fallbackValue", problems)
        code = _json_string(value["code"], f"{path}.code", problems)
        amount = value["amount1000"]
        if not isinstance(amount, int) or isinstance(amount, bool):
            problems.append((f"{path}.amount1000", "must be a whole number (the amount x 1000)"))
        if len(problems) > before:
            return None
        return CurrencyValue(fallback, code, amount)
    if kind == "dateTime":
        fallback = _json_string(value["fallbackValue"], f"{path}.fallbackValue", problems)
        return DateTimeValue(fallback) if fallback is not None else None
    if kind == "location":
        for member in ("latitude", "longitude"):
            if not _is_number(value[member]):
                problems.append((f"{path}.{member}", "must be a number"))
        name, address = value.get("name"), value.get("address")
        if name is not None:
            name = _json_string(name, f"{path}.name", problems)
        if address is not None:
            address = _json_string(address, f"{path}.address", problems)
        if len(problems) > before:
            return None
        return LocationValue(value["latitude"], value["longitude"], name, address)
    link, media_id, filename = value.get("link"), value.get("id"), value.get("filename")
    if link is not None:
        link = _json_string(link, f"{path}.link", problems)
    if media_id is not None:
        media_id = _json_string(media_id, f"{path}.id", problems, numbers=True)
    if filename is not None:
        filename = _json_string(filename, f"{path}.filename", problems)
    if link is None and media_id is None and len(problems) == before:
        problems.append((path, "must give a link or an id"))
    if len(problems) > before:
        return None
    return MediaValue(kind, link, media_id, filename)


_BUTTON_MEMBERS = ("text", "payload", "couponCode")


def _json_button(
    button: Any, path: str, problems: _Problems, seen: dict[int, str]
) -> tuple[int, Value] | None:
    if not isinstance(button, Mapping):
        problems.append((path, 'must be an object: {"index": 0, "text": "..."}'))
        return None
    before = len(problems)
    index = button.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 9:
        problems.append((f"{path}.index", "must be a button's index, a whole number 0 to 9"))
    elif index in seen:
        problems.append((f"{path}.index", f"repeats the button of {seen[index]}"))
    else:
        seen[index] = path
    for member in button:
        if member != "index" and member not in _BUTTON_MEMBERS:
            problems.append(
                (f"{path}.{member}", "is not a member (index, text, payload, couponCode)")
            )
    given = [member for member in _BUTTON_MEMBERS if member in button]
    if len(given) != 1:
        problems.append((path, "must give exactly one of text, payload and couponCode"))
        return None
    member = given[0]
    value: Value | None = None
    if member == "text":
        text = _json_text(button[member], f"{path}.text", problems)
        value = TextValue(text) if text is not None else None
    else:
        found = _json_string(button[member], f"{path}.{member}", problems)
        if found is not None:
            value = PayloadValue(found) if member == "payload" else CouponValue(found)
    if value is None or len(problems) > before or not isinstance(index, int):
        return None
    return index, value


_SHAPE = 'must be a list (the body\'s values) or an object with "header", "body" and "buttons"'


def arguments_from_json(parameters: Any) -> TemplateArguments:
    """The arguments of the API's ``parameters`` JSON, read (not yet checked against the
    template: ``prepare`` does that). Its shapes:

    - absent, ``null`` or ``{}``: no values;
    - a list: the body's values, ``{{1}}`` first (errors name them ``parameters.body[i]``);
    - an object with any of ``"header"``: a value; ``"body"``: a list of values (a
      positional template's ``{{1}}`` first, a named one's in the order they appear) or an
      object of values by placeholder name (named templates); ``"buttons"``: a list of
      ``{"index": 0, "text": "A12"}`` (a URL button's suffix), ``{"index": 1, "payload":
      "ayuda"}`` (a quick reply's) or ``{"index": 2, "couponCode": "DESC10"}``, ``index``
      being the button's place among the template's buttons (0 to 9).

    A value is a string (text), a number (taken as its text: ``150`` is ``"150"``), or an
    object: ``{"type": "text", "text": "Ana"}``, ``{"type": "currency", "fallbackValue":
    "$150.00", "code": "MXN", "amount1000": 150000}``, ``{"type": "dateTime",
    "fallbackValue": "3 de diciembre de 2026"}``; and for the header only ``{"type":
    "image" | "video" | "document", "link": "https://..."}`` or ``"id": "<media id>"``
    (a document also ``"filename"``) and ``{"type": "location", "latitude": 19.43,
    "longitude": -99.13, "name"?, "address"?}``.

    ``TemplateParametersInvalid`` lists every bad field by its path
    (``parameters.body[1]``, ``parameters.header.link``, ``parameters.buttons[0].index``)."""
    if parameters is None:
        return TemplateArguments()
    problems: _Problems = []
    if isinstance(parameters, list):
        body = [
            _json_value(v, f"parameters.body[{i}]", problems, header=False)
            for i, v in enumerate(parameters)
        ]
        if problems:
            raise _json_invalid(problems)
        return TemplateArguments(body=tuple(v for v in body if v is not None))
    if not isinstance(parameters, Mapping):
        raise _json_invalid([("parameters", _SHAPE)])
    for member in parameters:
        if member not in ("header", "body", "buttons"):
            problems.append((f"parameters.{member}", "is not a member (header, body, buttons)"))
    header = None
    if parameters.get("header") is not None:
        header = _json_value(parameters["header"], "parameters.header", problems, header=True)
    given = parameters.get("body")
    body_values: tuple[Value, ...] | dict[str, Value] = ()
    if isinstance(given, list):
        found = [
            _json_value(v, f"parameters.body[{i}]", problems, header=False)
            for i, v in enumerate(given)
        ]
        body_values = tuple(v for v in found if v is not None)
    elif isinstance(given, Mapping):
        by_name = {
            str(name): _json_value(v, f"parameters.body.{name}", problems, header=False)
            for name, v in given.items()
        }
        body_values = {name: v for name, v in by_name.items() if v is not None}
    elif given is not None:
        problems.append(("parameters.body", "must be a list of values or an object by name"))
    buttons: dict[int, Value] = {}
    given = parameters.get("buttons")
    if isinstance(given, list):
        seen: dict[int, str] = {}
        for number, button in enumerate(given):
            read = _json_button(button, f"parameters.buttons[{number}]", problems, seen)
            if read is not None:
                buttons[read[0]] = read[1]
    elif given is not None:
        problems.append(("parameters.buttons", 'must be a list of {"index": 0, "text": "..."}'))
    if problems:
        raise _json_invalid(problems)
    return TemplateArguments(header=header, body=body_values, buttons=buttons)


def _json_invalid(problems: _Problems) -> TemplateParametersInvalid:
    listed = "; ".join(f"{path} {problem}" for path, problem in problems)
    return TemplateParametersInvalid(
        f"the template parameters are not valid: {listed}", errors=problems
    )


# --- the purposes mapping --------------------------------------------------------------------

#: Our own messages a shop may send with a template of its choosing (``templates`` of
#: PUT /api/v1/integrations/whatsapp), and what of ours can fill the template's text.
PURPOSES: tuple[str, ...] = ("paymentReceived", "paymentFailed", "paymentExpired", "handoffReply")
#: ``text``: the shop's own message (a reply after a handoff, outside the 24-hour window).
FIELDS: tuple[str, ...] = ("customerName", "amount", "reference", "description", "text")
#: What each purpose has to fill a template with (a payment notice has no shop message,
#: a person's reply no payment).
PURPOSE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "paymentReceived": ("customerName", "amount", "reference", "description"),
    "paymentFailed": ("customerName", "amount", "reference", "description"),
    "paymentExpired": ("customerName", "amount", "reference", "description"),
    "handoffReply": ("customerName", "text"),
}
_NAME = re.compile("[a-z0-9_]{1,512}")
_LANGUAGE = re.compile("[a-z]{2,3}(?:_[A-Z]{2})?")
_ENTRY_MEMBERS = ("name", "language", "parameters")


@dataclass(frozen=True, slots=True)
class MappedTemplate:
    """The template a purpose is sent with: its ``name`` and ``language`` and which of our
    ``FIELDS`` fill its text parameters, in ``arguments_in_order``'s order."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


def mapping_from_json(value: Any, *, field: str = "templates") -> dict[str, MappedTemplate]:
    """The purposes mapping of its JSON: ``null`` (or absent) is none; otherwise an object
    whose keys are ``PURPOSES``, each ``null`` (none for that purpose) or ``{"name":
    "pago_recibido", "language": "es_MX", "parameters": ["customerName", "amount"]}``:
    ``name`` a Meta template name (lower case letters, digits and ``_``, up to 512),
    ``language`` a Meta language code (``es``, ``es_MX``, ``pt_BR``, ``fil``, ``zh_CN``),
    ``parameters`` (default ``[]``) which of the purpose's ``PURPOSE_FIELDS`` fill the
    template's text parameters, in order. Every problem is listed in one ``ValidationFailed``
    by its path (``templates.paymentReceived.parameters[1]``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problem = f"must be an object keyed by purpose ({', '.join(PURPOSES)})"
        raise ValidationFailed(f"{field} {problem}", errors=[(field, problem)])
    problems: _Problems = []
    found: dict[str, MappedTemplate] = {}
    for purpose, entry in value.items():
        path = f"{field}.{purpose}"
        if purpose not in PURPOSES:
            problems.append((path, f"is not a purpose ({', '.join(PURPOSES)})"))
            continue
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            problems.append((path, 'must be an object: {"name", "language", "parameters"}'))
            continue
        before = len(problems)
        for member in entry:
            if member not in _ENTRY_MEMBERS:
                problems.append(
                    (f"{path}.{member}", "is not a member (name, language, parameters)")
                )
        name, language = entry.get("name"), entry.get("language")
        if name is None:
            problems.append((f"{path}.name", "is required"))
        elif not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(
                (f"{path}.name", "must be a template name: lower case letters, digits and _")
            )
        if language is None:
            problems.append((f"{path}.language", "is required"))
        elif not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            problems.append(
                (f"{path}.language", "must be a language code such as es, es_MX or pt_BR")
            )
        fields = entry.get("parameters")
        if fields is None:
            fields = []
        if not isinstance(fields, list):
            problems.append((f"{path}.parameters", f"must be a list of {', '.join(FIELDS)}"))
            fields = []
        usable = PURPOSE_FIELDS[purpose]
        for number, item in enumerate(fields):
            if item not in usable:
                problems.append(
                    (
                        f"{path}.parameters[{number}]",
                        f"must be one of {', '.join(usable)} (what {purpose} has)",
                    )
                )
        if len(problems) == before:
            found[purpose] = MappedTemplate(str(name), str(language), tuple(fields))
    if problems:
        listed = "; ".join(f"{path} {problem}" for path, problem in problems)
        raise ValidationFailed(f"the templates mapping is not valid: {listed}", errors=problems)
    return found


def mapping_to_json(mapping: Mapping[str, MappedTemplate]) -> dict[str, Any]:
    """The mapping's JSON, as ``mapping_from_json`` reads it (purposes in ``PURPOSES``'s
    order)."""
    order = {purpose: number for number, purpose in enumerate(PURPOSES)}
    return {
        purpose: {
            "name": mapped.name,
            "language": mapped.language,
            "parameters": list(mapped.parameters),
        }
        for purpose, mapped in sorted(mapping.items(), key=lambda i: order.get(i[0], len(order)))
    }
