import io
import json
from collections.abc import Iterator, Mapping

import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from changarrito.adapters.logs import configure_logging
from changarrito.domain.model import Secrets

SECRET_ALPHABET = st.characters(min_codepoint=48, max_codepoint=122).filter(str.isalnum)


def _emit(**fields: object) -> str:
    out = io.StringIO()
    configure_logging("DEBUG", json=True, stream=out, cache=False)
    structlog.get_logger("test").info("something.happened", **fields)
    return out.getvalue()


@settings(max_examples=50, deadline=None)
@given(secret=st.text(SECRET_ALPHABET, min_size=16, max_size=40))
def test_a_secret_passed_to_a_log_call_never_reaches_the_output(secret: str) -> None:
    output = _emit(
        api_key=secret,
        headers={"Authorization": f"Bearer {secret}", "accept": "json"},
        credentials={"accessToken": secret},
        nested=[{"appSecret": secret}],
        secrets=Secrets({"apiKey": secret}),
        password=secret,
    )
    assert secret not in output
    line = json.loads(output)
    assert line["event"] == "something.happened"
    assert line["headers"]["accept"] == "json"


def test_token_shaped_values_are_masked_whatever_their_key() -> None:
    output = _emit(detail="upstream said: Incorrect API key provided: sk-proj-abcdefghijklmnop")
    assert "sk-proj-abcdefghijklmnop" not in output
    assert "[redacted]" in output


def test_ordinary_fields_are_logged_as_they_are() -> None:
    line = json.loads(_emit(tenant_id="t-1", attempts=3, phone_number_id="106540352242922"))
    assert line["tenant_id"] == "t-1"
    assert line["attempts"] == 3
    assert line["phone_number_id"] == "106540352242922"


def test_stdlib_log_records_are_redacted_too() -> None:
    import logging

    out = io.StringIO()
    configure_logging("INFO", json=True, stream=out, cache=False)
    logging.getLogger("uvicorn.error").info("token is whsec_abcdefghijklmnop")
    assert "whsec_abcdefghijklmnop" not in out.getvalue()


class _Holder:
    def __repr__(self) -> str:
        return "Holder(sk-proj-abcdefghijklmnop)"


def test_nested_objects_and_odd_keys_render_as_json_with_tokens_masked() -> None:
    line = json.loads(_emit(nested={"h": _Holder()}, by_code={429: "throttled"}))
    assert line["nested"]["h"] == "Holder([redacted])"
    assert line["by_code"] == {"429": "throttled"}


class _Frozen(Mapping[str, object]):
    """A mapping that is not a dict (the slow path of the redaction)."""

    def __init__(self, data: dict[str, object]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


TOKEN = "sk-proj-abcdefghijklmnop0123"


def _in_set(value: object, kind: type[set[object]] | type[frozenset[object]]) -> object:
    try:
        return kind({value})
    except TypeError:  # a list or a mapping cannot be a member: hold it in a tuple first
        return kind({(repr(value),)})


HOLDERS = [
    lambda v: [v],
    lambda v: (v,),
    lambda v: _in_set(v, set),
    lambda v: _in_set(v, frozenset),
    lambda v: {"note": v},
    lambda v: _Frozen({"note": v}),
]


@settings(max_examples=60, deadline=None)
@given(
    path=st.lists(st.integers(0, len(HOLDERS) - 1), max_size=4),
    key=st.sampled_from(["detail", "tenant_ids", "apiKey", "payload", "event_data"]),
)
def test_a_token_is_masked_in_any_nesting_of_lists_tuples_sets_and_mappings(
    path: list[int], key: str
) -> None:
    value: object = f"upstream said {TOKEN}"
    for i in path:
        value = HOLDERS[i](value)

    output = _emit(**{key: value})

    assert TOKEN not in output
    assert json.loads(output)["event"] == "something.happened"
