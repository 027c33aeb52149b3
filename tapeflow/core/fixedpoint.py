"""Exact fixed-point numbers: prices, quantities and money as integers at scale 8.

Why integers and not `Decimal` everywhere: the wire carries Avro `decimal(18, 8)`, whose body is
already the unscaled integer, and integer arithmetic is several times cheaper than `Decimal` on
the hot path (every tick). An integer `u` means `u / 10**8`. A product of two scale-8 numbers
(price x size = notional) is exact at scale 16; helpers below name which scale they return.
Rounding, where a division makes it unavoidable (vwap, average cost), is half-even and
documented at the call site.
"""

from __future__ import annotations

from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    InvalidOperation,
    localcontext,
)

from tapeflow.core.errors import UserError

SCALE = 8
ONE = 10**SCALE
"""1.0 in scale-8 units."""
NOTIONAL_SCALE = 2 * SCALE
NOTIONAL_ONE = 10**NOTIONAL_SCALE
PRECISION = 18
MAX_UNITS = 10**PRECISION - 1
"""Largest magnitude Avro decimal(18, 8) can carry: 9999999999.99999999."""

_QUANTUM = Decimal(1).scaleb(-SCALE)
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""A context that never rounds: `scaleb` rounds to the context precision (28 digits by default),
which would silently cut a scale-16 notional of 29 digits or more."""


class FixedPointError(UserError, ValueError):
    """A value that cannot be represented exactly at scale 8 within precision 18."""


def to_units(value: Decimal | str | int | float, *, exact: bool = True) -> int:
    """Convert a decimal-like value to scale-8 units.

    Floats are converted through their shortest repr (``0.1`` -> ``0.1``, not
    ``0.1000000000000000055...``), which is what a person who typed the number meant.
    With ``exact=True`` a value with more than 8 decimals is refused rather than rounded.
    """
    if isinstance(value, bool):
        raise FixedPointError(f"not a number: {value!r}")
    units: int
    if isinstance(value, int):
        units = value * ONE
    else:
        try:
            dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation as exc:
            raise FixedPointError(f"not a decimal number: {value!r}") from exc
        if not dec.is_finite():
            raise FixedPointError(f"not a finite number: {value!r}")
        with localcontext() as ctx:
            ctx.prec = 60
            scaled = dec.scaleb(SCALE)
            rounded = scaled.to_integral_value(rounding=ROUND_HALF_EVEN)
        if exact and rounded != scaled:
            raise FixedPointError(f"{value!r} has more than {SCALE} decimal places")
        units = int(rounded)
    if abs(units) > MAX_UNITS:
        raise FixedPointError(f"{value!r} exceeds decimal({PRECISION}, {SCALE})")
    return units


def to_decimal(units: int, scale: int = SCALE) -> Decimal:
    """Scale-`scale` units as an exact `Decimal` (for display and for the stores), whatever the
    number of digits and whatever the caller's decimal context."""
    return Decimal(units).scaleb(-scale, _EXACT)


def div_round(numerator: int, denominator: int) -> int:
    """Integer division rounded half-even: the one rounding rule of the core."""
    if denominator == 0:
        raise ZeroDivisionError("division by zero in fixed-point arithmetic")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def mul(a_units: int, b_units: int) -> int:
    """Product of two scale-8 numbers, rounded half-even back to scale 8."""
    return div_round(a_units * b_units, ONE)


def fmt(units: int, scale: int = SCALE) -> str:
    """Plain decimal string without exponent, trailing zeros kept to the scale."""
    return f"{to_decimal(units, scale):f}"
