"""Outside records for `tapeflow reconcile`: a broker/clearing statement and the OMS's final
order state, CSV or Parquet, read into the core's values (docs/reconcile.md documents the
columns).

Statement columns: `account_id` (text, required); `symbol` (text; empty or null on an
account's cash row); `quantity` (decimal, signed: negative is short; position rows); `cash`
(decimal; cash rows); `currency` (text, ISO 4217; cash rows). OMS order columns: `order_id`
(text, required), `account_id` (text, optional), `cum_qty` (decimal), `status` (a FIX 4.4
OrdStatus name: NEW, PARTIALLY_FILLED, FILLED, CANCELED, ...).

Exactness as in the backfill (`sources.files.ticks`): CSV is read as text, never through a
float; Parquet decimals, integers (whole units), text and floats (their shortest repr) become
scale-8 units by `fixedpoint.to_units`, which refuses more than 8 decimals. A value that is not
exact, a missing required column or value, an unknown status: one line naming the file, the
row and the column (a `UserError`: exit code 2, no traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from tapeflow.core.fixedpoint import FixedPointError, to_units
from tapeflow.core.models import OrdStatus
from tapeflow.core.trading.reconcile_external import OmsOrder, StatementRow
from tapeflow.errors import UserError

STATEMENT_COLUMNS = ("account_id", "symbol", "quantity", "cash", "currency")
OMS_COLUMNS = ("order_id", "account_id", "cum_qty", "status")


class OutsideRecordError(UserError, ValueError):
    """A statement or OMS file that cannot be read exactly; the message says where."""


def _read(path: Path, required: tuple[str, ...]) -> list[dict[str, Any]]:
    try:
        if path.suffix.lower() == ".csv":
            frame = pl.read_csv(path, infer_schema_length=0)  # every column as text
        elif path.suffix.lower() in (".parquet", ".pq"):
            frame = pl.read_parquet(path)
        else:
            raise OutsideRecordError(f"{path}: not a .csv or .parquet file")
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OutsideRecordError(f"{path}: cannot read it: {first}") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise OutsideRecordError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame.to_dicts()


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _units(path: Path, row: int, column: str, value: Any, *, required: bool) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise OutsideRecordError(f"{path}: row {row + 1}: {column} is empty")
        return None
    try:
        return to_units(value.strip() if isinstance(value, str) else value)
    except (FixedPointError, TypeError, ValueError) as exc:
        raise OutsideRecordError(f"{path}: row {row + 1}: {column} = {value!r} is not an exact "
                                 f"decimal(18, 8): {exc}") from None


def read_statement(path: Path) -> list[StatementRow]:
    """The rows of a statement file (module doc)."""
    out = []
    for i, row in enumerate(_read(path, ("account_id", "symbol"))):
        account = _text(row.get("account_id"))
        if not account:
            raise OutsideRecordError(f"{path}: row {i + 1}: account_id is empty")
        symbol = _text(row.get("symbol"))
        quantity = _units(path, i, "quantity", row.get("quantity"), required=bool(symbol))
        cash = _units(path, i, "cash", row.get("cash"), required=not symbol)
        currency = _text(row.get("currency")) or None
        out.append(StatementRow(account, symbol, quantity, None if symbol else cash,
                                None if symbol else currency))
    return out


def read_oms_orders(path: Path) -> list[OmsOrder]:
    """The rows of an OMS order file (module doc)."""
    out = []
    for i, row in enumerate(_read(path, ("order_id", "cum_qty", "status"))):
        order_id = _text(row.get("order_id"))
        if not order_id:
            raise OutsideRecordError(f"{path}: row {i + 1}: order_id is empty")
        status = _text(row.get("status")).upper()
        try:
            ord_status = OrdStatus(status)
        except ValueError:
            known = ", ".join(s.value for s in OrdStatus)
            raise OutsideRecordError(f"{path}: row {i + 1}: status {status!r} is not one of "
                                     f"{known}") from None
        cum = _units(path, i, "cum_qty", row.get("cum_qty"), required=True)
        assert cum is not None
        out.append(OmsOrder(order_id, _text(row.get("account_id")) or None, cum, ord_status))
    return out
