"""One currency table, per ISO 4217: the domain's validation and the providers' minor units
agree on every currency, including the three the two old tables disagreed on (ISK, IQD, LYD)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.money import THREE_DECIMAL, ZERO_DECIMAL, minor_unit_decimals
from changarrito.domain.payments import PaymentLinkRequest, validated
from changarrito.plugins.payments._money import from_minor_units, to_minor_units


@pytest.mark.parametrize(
    ("currency", "decimals"),
    [
        ("MXN", 2),
        ("USD", 2),
        ("JPY", 0),
        ("CLP", 0),
        ("ISK", 0),
        ("KWD", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("MGA", 2),
        ("CLF", 4),
        ("mxn", 2),
    ],
)
def test_each_currency_has_its_iso_4217_minor_unit(currency: str, decimals: int) -> None:
    assert minor_unit_decimals(currency) == decimals


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        (Decimal(500), "ISK", 500),
        (Decimal("1.005"), "IQD", 1005),
        (Decimal("2.125"), "LYD", 2125),
        (Decimal("10.50"), "MXN", 1050),
    ],
)
def test_what_the_domain_accepts_a_provider_converts_exactly(
    amount: Decimal, currency: str, minor: int
) -> None:
    request = validated(PaymentLinkRequest(amount, currency, "Tacos", "order-1"))

    assert to_minor_units(request.amount, currency) == minor
    assert from_minor_units(minor, currency) == amount


@pytest.mark.parametrize(
    ("amount", "currency"), [(Decimal("1.5"), "ISK"), (Decimal("1.0005"), "LYD")]
)
def test_what_the_currency_cannot_express_is_refused_by_both(
    amount: Decimal, currency: str
) -> None:
    with pytest.raises(ValidationFailed):
        validated(PaymentLinkRequest(amount, currency, "Tacos", "order-1"))
    with pytest.raises(ValidationFailed):
        to_minor_units(amount, currency)


def test_the_tables_do_not_overlap() -> None:
    assert not ZERO_DECIMAL & THREE_DECIMAL
