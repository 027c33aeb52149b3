"""Reference data from Postgres: risk limits and instruments, as core values.

Why here and not in the core: the core does no I/O (import-linter contract); it takes a
`RiskLimitBook` and `SessionHours` as configuration. This module is the one place that turns
the `risk_limits`, `risk_symbol_limits` and `instruments` tables into them.

`risk_limits` has one column per `RiskLimits` field, same name and unit (DDL in
schemas/postgres/0001_init.sql): NUMERIC columns are units and become scale-8 integers
exactly; *_bps and *_us columns are integers already. NULL turns a rule off. The row '*' is
the book's default; every other row is a whole-record override for its account, as
`RiskLimitBook` defines overrides (a column is not inherited from '*').
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import time
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any, NamedTuple

from tapeflow.core.fixedpoint import SCALE
from tapeflow.core.models import Severity
from tapeflow.core.risk.limits import RiskLimitBook, RiskLimits, SessionHours
from tapeflow.errors import UserError
from tapeflow.services.postgres_sql import statement

DEFAULT_ACCOUNT = "*"
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
"""Never rounds: NUMERIC(38, 8) has more digits than the default context's 28."""
_SEVERITY_FIELDS = frozenset({"session_order_severity", "session_fill_severity"})
LIMIT_COLUMNS = tuple(f.name for f in dataclasses.fields(RiskLimits)
                      if f.name != "symbol_position_qty")
"""The `risk_limits` columns besides account_id: every RiskLimits field but the per-symbol
pairs, which live in `risk_symbol_limits`."""
NULLABLE_FIELDS = frozenset(f.name for f in dataclasses.fields(RiskLimits) if "None" in str(f.type))
"""Fields that may be None: rules that can be turned off (their columns allow NULL)."""


class ReferenceDataError(UserError, ValueError):
    """Reference data the core cannot use; the message names the table, row and column."""


class Instrument(NamedTuple):
    """One row of `instruments`. Prices and sizes scale-8 units; session times microseconds
    after midnight UTC; `price_band_pct` percent in scale-8 units (10 % = 10 * ONE)."""

    symbol: str
    tick_size: int
    lot_size: int
    session_open: int
    session_close: int
    price_band_pct: int

    def session_hours(self) -> SessionHours:
        """The session as the risk rules take it (UTC, Monday to Friday)."""
        return SessionHours(self.session_open, self.session_close, tz="UTC")


def decimal_units(value: Decimal, where: str) -> int:
    """A NUMERIC as scale-8 units, exactly; more than 8 decimals is refused, never rounded."""
    if not value.is_finite():
        raise ReferenceDataError(f"{where} = {value} is not a finite number")
    scaled = value.scaleb(SCALE, _EXACT)
    units = int(scaled)
    if units != scaled:
        raise ReferenceDataError(f"{where} = {value} has more than {SCALE} decimal places")
    return units


def _limits_of(row: Mapping[str, Any], symbols: tuple[tuple[str, int], ...]) -> RiskLimits:
    account = row["account_id"]
    values: dict[str, Any] = {"symbol_position_qty": symbols}
    for column in LIMIT_COLUMNS:
        value = row[column]
        if column in _SEVERITY_FIELDS:
            value = Severity(value)
        elif isinstance(value, Decimal):
            value = decimal_units(value, f"risk_limits[{account}].{column}")
        elif value is None and column not in NULLABLE_FIELDS:
            raise ReferenceDataError(f"risk_limits[{account}].{column} is NULL")
        values[column] = value
    return RiskLimits(**values)


def load_risk_limits(conn: Any) -> RiskLimitBook:
    """The book of `risk_limits` (+ `risk_symbol_limits`); raises `ReferenceDataError` when
    the default row '*' is missing, because guessing limits would be worse than stopping."""
    cur = conn.cursor()
    symbols: dict[str, list[tuple[str, int]]] = {}
    for account, symbol, qty in cur.execute(statement("select_risk_symbol_limits")):
        where = f"risk_symbol_limits[{account}, {symbol}].max_position_qty"
        symbols.setdefault(account, []).append((symbol, decimal_units(qty, where)))
    columns = ("account_id", *LIMIT_COLUMNS)
    book: dict[str, RiskLimits] = {}
    for record in cur.execute(statement("select_risk_limits")):
        row = dict(zip(columns, record, strict=True))
        book[row["account_id"]] = _limits_of(row, tuple(symbols.get(row["account_id"], ())))
    if DEFAULT_ACCOUNT not in book:
        raise ReferenceDataError(
            f"risk_limits has no default row (account_id '{DEFAULT_ACCOUNT}'); "
            "`tapeflow init` creates it"
        )
    default = book.pop(DEFAULT_ACCOUNT)
    return RiskLimitBook(default, book)


def load_account_currencies(conn: Any) -> dict[str, str]:
    """`account_currencies`: the accounts whose currency is not the deployment's default."""
    return {account: currency for account, currency
            in conn.execute(statement("select_account_currencies"))}


def _micros(value: time) -> int:
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def load_instruments(conn: Any) -> dict[str, Instrument]:
    """Every row of `instruments`, by symbol."""
    found: dict[str, Instrument] = {}
    for symbol, tick, lot, opens, closes, band in conn.execute(statement("select_instruments")):
        found[symbol] = Instrument(
            symbol=symbol,
            tick_size=decimal_units(tick, f"instruments[{symbol}].tick_size"),
            lot_size=decimal_units(lot, f"instruments[{symbol}].lot_size"),
            session_open=_micros(opens),
            session_close=_micros(closes),
            price_band_pct=decimal_units(band, f"instruments[{symbol}].price_band_pct"),
        )
    return found
