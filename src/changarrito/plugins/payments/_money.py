"""Amounts in major units (``Decimal("10.50")``) to and from a currency's minor units."""

from __future__ import annotations

from decimal import Decimal

from changarrito.domain.errors import ValidationFailed

#: ISO 4217 currencies without a minor unit (as Stripe lists its zero-decimal currencies).
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
#: ISO 4217 currencies with three decimals.
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])


def currency_code(currency: str) -> str:
    """``currency`` upper-cased, or ``ValidationFailed`` when it is not three letters."""
    code = currency.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise ValidationFailed(f"currency must be a three-letter ISO 4217 code, not {currency!r}")
    return code


def exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (JPY 0, MXN 2, KWD 3)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def checked_amount(amount: Decimal, currency: str, *, decimals: int | None = None) -> Decimal:
    """``amount`` when it is positive and has no more decimals than allowed.

    ``decimals`` defaults to the currency's exponent. Rounding silently would charge the buyer
    something other than what the shop asked for, so extra precision is a validation error.
    """
    allowed = exponent(currency) if decimals is None else decimals
    if not amount.is_finite() or amount <= 0:
        raise ValidationFailed("amount must be a positive number")
    scaled = amount.scaleb(allowed)
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(
            f"amount {amount} has more than {allowed} decimals, which {currency} does not allow"
        )
    return amount


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``Decimal("10.50")`` MXN → ``1050``; ``Decimal("500")`` JPY → ``500``."""
    return int(checked_amount(amount, currency).scaleb(exponent(currency)))


def from_minor_units(value: int, currency: str) -> Decimal:
    """``1050`` MXN → ``Decimal("10.50")``."""
    return Decimal(value).scaleb(-exponent(currency))
