"""The one decoder (and encoder) of change notifications' payloads."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from changarrito.adapters.postgres.notify import encode_change, parse_change
from changarrito.domain.changes import EVERYTHING, Change

TENANT = UUID("11111111-1111-1111-1111-111111111111")


def test_a_tenant_payload_names_the_tenant() -> None:
    assert parse_change(f"tenant:{TENANT}") == Change(tenant_id=TENANT)


def test_a_number_payload_names_the_number() -> None:
    assert parse_change("number:106540352242922") == Change(phone_number_id="106540352242922")


@pytest.mark.parametrize(
    "payload", ["all", "", "tenant:not-a-uuid", "tenant:", "number:", "shop:1", "tenant"]
)
def test_anything_unreadable_means_everything_may_have_changed(payload: str) -> None:
    assert parse_change(payload) == EVERYTHING
    assert parse_change(payload).everything


@given(
    st.one_of(
        st.builds(lambda: Change(tenant_id=uuid4())),
        st.text(min_size=1).map(lambda n: Change(phone_number_id=n)),
        st.just(EVERYTHING),
    )
)
def test_what_is_encoded_is_decoded_back(change: Change) -> None:
    assert parse_change(encode_change(change)) == change


def test_a_change_names_a_tenant_or_a_number_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        Change(tenant_id=TENANT, phone_number_id="1")
