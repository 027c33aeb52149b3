"""Reconciliation against outside records: statement and OMS order files read exactly, and
compared with Tapeflow's replayed accounts and stored orders."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from sources.files.statements import OutsideRecordError, read_oms_orders, read_statement
from tapeflow.core.models import OrdStatus, Side
from tapeflow.core.trading.positions import apply_fill, new_account
from tapeflow.core.trading.reconcile import ACCOUNT_LEVEL, OMS, STATEMENT, Break, break_alert
from tapeflow.core.trading.reconcile_external import (
    OmsOrder,
    StatementRow,
    StoredOrder,
    compare_orders,
    compare_statement,
)
from tests.support.trading_builders import T0, fill, u

T0_DAY = date(2026, 1, 5)
STATEMENT_CSV = """account_id,symbol,quantity,cash,currency
ACC,XYZ,100,,
ACC,ABC,-5.5,,
ACC,,,990000.12345678,USD
"""


def test_a_statement_csv_is_read_as_exact_decimals(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(STATEMENT_CSV)
    assert read_statement(path) == [
        StatementRow("ACC", "XYZ", u(100), None, None),
        StatementRow("ACC", "ABC", -u("5.5"), None, None),
        StatementRow("ACC", "", None, u("990000.12345678"), "USD"),
    ]


def test_parquet_files_with_decimals_and_an_oms_file(tmp_path: Path) -> None:
    path = tmp_path / "o.parquet"
    pl.DataFrame({"order_id": ["o1", "o2"], "account_id": ["ACC", None],
                  "cum_qty": ["1500", "0.00000001"], "status": ["canceled", "FILLED"]}
                 ).write_parquet(path)
    assert read_oms_orders(path) == [OmsOrder("o1", "ACC", u(1500), OrdStatus.CANCELED),
                                     OmsOrder("o2", None, 1, OrdStatus.FILLED)]


@pytest.mark.parametrize(("text", "message"), [
    ("account_id,symbol,quantity\nACC,XYZ,1.000000001\n", "row 1: quantity = '1.000000001'"),
    ("account_id,symbol,quantity\nACC,XYZ,\n", "row 1: quantity is empty"),
    ("account_id,quantity\nACC,1\n", "missing column(s) symbol"),
    ("account_id,symbol,cash\n,,1\n", "row 1: account_id is empty"),
])
def test_a_bad_statement_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(OutsideRecordError) as info:
        read_statement(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_an_unknown_order_status_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("order_id,cum_qty,status\no1,5,DONE\n")
    with pytest.raises(OutsideRecordError, match=r"status 'DONE' is not one of"):
        read_oms_orders(path)


def test_the_statement_finds_a_lost_fill_and_a_wrong_cash() -> None:
    account, _ = apply_fill(new_account("ACC", u(1000)), fill(Side.BUY, u(10), u(10)))
    account, _ = apply_fill(account, fill(Side.BUY, u(1), u(5), symbol="ABC", ts=T0 + 1))
    accounts = {"ACC": account, "OTHER": new_account("OTHER", 5)}
    rows = [StatementRow("ACC", "XYZ", u(15), None, None),  # a fill of 5 never reached us
            StatementRow("ACC", "NEW", u(3), None, None),  # a symbol we do not hold
            StatementRow("ACC", "", None, u(845), "USD")]
    breaks, compared = compare_statement(rows, accounts)
    assert breaks == [
        Break("ACC", "ABC", "qty", None, u(1), STATEMENT),
        Break("ACC", "NEW", "qty", u(3), None, STATEMENT),
        Break("ACC", "XYZ", "qty", u(15), u(10), STATEMENT),
        Break("ACC", ACCOUNT_LEVEL, "cash", u(845), u(895), STATEMENT),
    ]
    assert compared == 4  # OTHER is not on the statement: not compared
    alert = break_alert(breaks[2], T0_DAY)
    assert alert.message.endswith("qty expected 15.00000000 (statement), Tapeflow has "
                                  "10.00000000") and alert.unit is not None


def test_the_oms_order_state_finds_a_lost_report_and_a_wrong_status() -> None:
    cutoff = T0 + 10**9
    stored = {"o1": StoredOrder("o1", "ACC", "XYZ", u(10), OrdStatus.PARTIALLY_FILLED, T0),
              "o2": StoredOrder("o2", "ACC", "XYZ", u(5), OrdStatus.NEW, T0),
              "late": StoredOrder("late", "ACC", "XYZ", 0, OrdStatus.NEW, cutoff)}
    oms = [OmsOrder("o1", "ACC", u(15), OrdStatus.FILLED),
           OmsOrder("o2", None, u(5), OrdStatus.NEW),
           OmsOrder("late", "ACC", u(1), OrdStatus.FILLED),
           OmsOrder("ghost", "ACC", u(2), OrdStatus.FILLED)]
    breaks, compared, skipped = compare_orders(oms, stored, cutoff)
    assert (compared, skipped) == (3, 1)
    assert breaks == [
        Break("ACC", "", "order:ghost:cum_qty", u(2), None, OMS),
        Break("ACC", "", "order:ghost:status", "FILLED", None, OMS),
        Break("ACC", "XYZ", "order:o1:cum_qty", u(15), u(10), OMS),
        Break("ACC", "XYZ", "order:o1:status", "FILLED", "PARTIALLY_FILLED", OMS),
    ]
    text = break_alert(breaks[3], T0_DAY)
    assert text.observed is None and text.limit is None and text.unit is None
    assert "expected FILLED (OMS), Tapeflow has PARTIALLY_FILLED" in text.message
