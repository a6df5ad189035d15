"""Amounts in major units (``Decimal("10.50")``) to and from a currency's minor units.

The decimals of each currency come from the domain's one table
(``changarrito.domain.money``); a provider whose API departs from it passes ``decimals``.
"""

from __future__ import annotations

from decimal import Decimal

from changarrito.domain.errors import ValidationFailed
from changarrito.domain.money import minor_unit_decimals


def currency_code(currency: str) -> str:
    """``currency`` upper-cased, or ``ValidationFailed`` when it is not three letters."""
    code = currency.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValidationFailed(f"currency must be a three-letter ISO 4217 code, not {currency!r}")
    return code


def checked_amount(amount: Decimal, currency: str, *, decimals: int | None = None) -> Decimal:
    """``amount`` when it is positive and has no more decimals than allowed.

    ``decimals`` defaults to the currency's ISO 4217 minor unit. Rounding silently would charge
    the buyer something other than what the shop asked for, so extra precision is a validation
    error.
    """
    allowed = minor_unit_decimals(currency) if decimals is None else decimals
    if not amount.is_finite() or amount <= 0:
        raise ValidationFailed("amount must be a positive number")
    scaled = amount.scaleb(allowed)
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(
            f"amount {amount} has more than {allowed} decimals, which {currency} does not allow"
        )
    return amount


def to_minor_units(amount: Decimal, currency: str, *, decimals: int | None = None) -> int:
    """``Decimal("10.50")`` MXN → ``1050``; ``Decimal("500")`` JPY → ``500``. ``decimals``
    overrides the ISO 4217 exponent for a provider whose API counts differently."""
    exponent = minor_unit_decimals(currency) if decimals is None else decimals
    return int(checked_amount(amount, currency, decimals=exponent).scaleb(exponent))


def from_minor_units(value: int, currency: str, *, decimals: int | None = None) -> Decimal:
    """``1050`` MXN → ``Decimal("10.50")``."""
    exponent = minor_unit_decimals(currency) if decimals is None else decimals
    return Decimal(value).scaleb(-exponent)
