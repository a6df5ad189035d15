"""Currencies: the one table of how many decimals each ISO 4217 currency's minor unit has.

The domain validates amounts against it and payment providers convert to minor units with it.
A provider whose API departs from ISO 4217 for a currency (Stripe sends ISK in hundredths and
MGA in whole units) states that exception in its own module, citing where it comes from.
"""

from __future__ import annotations

#: ISO 4217 currencies whose minor unit has no decimals (ISO 4217 list one, "Minor unit" 0).
ZERO_DECIMAL = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
#: ISO 4217 currencies with three decimals.
THREE_DECIMAL = frozenset("BHD IQD JOD KWD LYD OMR TND".split())  # noqa: SIM905
#: ISO 4217 units of account with four decimals (Chile's UF, Uruguay's wage index unit).
FOUR_DECIMAL = frozenset(["CLF", "UYW"])


def minor_unit_decimals(currency: str) -> int:
    """Decimals of the currency's minor unit: JPY 0, MXN 2, KWD 3 (two when not listed).

    Not a validity check: ``"XYZ"`` gets 2. A payment provider refuses the currencies its
    gateway does not take itself (``ValidationFailed``).
    """
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    if code in FOUR_DECIMAL:
        return 4
    return 2
