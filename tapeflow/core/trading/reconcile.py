"""End-of-day reconciliation: positions and cash recomputed from the execution audit trail,
compared exactly with what the operational store holds. Pure: the job reads and writes.

Why it is independent: the expected state is rebuilt from nothing but the execution reports
(ClickHouse `executions`, the immutable audit trail), with the same core functions the flow
uses (`order_book.apply_execution` for the FIX state machine and duplicates,
`positions.apply_fill` for average cost, realised P&L and cash). It never reads Postgres
state, so a wrong, lost or hand-edited row there shows up as a break.

As of when: the end of the UTC date (`cutoff_us`, exclusive: reports with
ts_event < next midnight). Postgres holds only the *current* state, so a position (or an
account) with a fill after the cutoff cannot be compared with its end-of-day value; it is
left out and counted as `skipped` rather than reported as a false break. Reconciling the
latest date compares everything.

What is compared (the values the reports alone decide; marks decide the rest):
- positions: qty, avg_px, realised_pnl, commissions;
- accounts: cash, realised_pnl, commissions.
Unrealised P&L, equity, mark and peak equity depend on market marks and are not reconciled.
Values are scale-8 integers, compared exactly. A row missing on either side is a break per
field with `None` on the missing side.

Replay order: the flow applied each account's reports in their arrival order on the
partition; the audit trail keeps event time, not arrival. Reports are replayed by
(ts_event, order_id, cum_qty, lifecycle step, exec_id), which is arrival order whenever the OMS
stamps reports in the order it sends them. Quantities and cash are sums and do not depend on
the order; realised P&L can, for fills of one symbol stamped with the same microsecond.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from tapeflow.core.fixedpoint import MAX_UNITS, fmt
from tapeflow.core.models import ExecType, ExecutionReport, RiskAlert, Severity
from tapeflow.core.trading.order_book import OrderBook, OrderRetention, apply_execution
from tapeflow.core.trading.orders import Applied
from tapeflow.core.trading.positions import AccountState, apply_fill, new_account

RULE = "reconciliation_break"
POSITION_FIELDS = ("qty", "avg_px", "realised_pnl", "commissions")
ACCOUNT_FIELDS = ("cash", "realised_pnl", "commissions")
ACCOUNT_LEVEL = ""
"""The `symbol` of an account-level value (cash, account P&L) in keys and break records."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEP = {ExecType.NEW: 0, ExecType.REPLACED: 1, ExecType.PARTIAL_FILL: 2, ExecType.FILL: 3}

Key = tuple[str, str]
"""(account_id, symbol); symbol `ACCOUNT_LEVEL` for the account row."""
Values = Mapping[str, int | None]


class Break(NamedTuple):
    """One value that differs: `expected` from the audit trail, `actual` from the store."""

    account_id: str
    symbol: str
    field: str
    expected: int | None
    actual: int | None


@dataclass(frozen=True, slots=True)
class Expected:
    """The recomputed state at the cutoff, and what cannot be compared."""

    values: Mapping[Key, Values]
    skipped: frozenset[Key]
    reports: int


def cutoff_us(day: date) -> int:
    """The end of `day` in UTC (next midnight), microseconds: reports before it count."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (midnight + timedelta(days=1) - _EPOCH) // timedelta(microseconds=1)


def replay_order(report: ExecutionReport) -> tuple[int, str, int, int, str]:
    """The order in which the audit trail is replayed (see the module doc)."""
    return (report.ts_event, report.order_id, report.cum_qty,
            _STEP.get(report.exec_type, 4), report.exec_id)


def replay(reports: Iterable[ExecutionReport], *, initial_cash: int,
           retention: OrderRetention | None = None) -> dict[str, AccountState]:
    """Accounts after applying `reports` in `replay_order`, as the trading flow does: one
    order book per account (duplicates and invalid reports change nothing), every applied
    fill booked at average cost. Every account starts with `initial_cash` (scale 8)."""
    books: dict[str, OrderBook] = {}
    accounts: dict[str, AccountState] = {}
    for report in sorted(reports, key=replay_order):
        acct = report.account_id
        book = books.get(acct) or OrderBook(retention=retention or OrderRetention())
        books[acct], outcome = apply_execution(book, report)
        if isinstance(outcome, Applied) and outcome.fill is not None:
            account = accounts.get(acct) or new_account(acct, initial_cash)
            accounts[acct], _ = apply_fill(account, outcome.fill)
    return accounts


def expected_values(accounts: Mapping[str, AccountState]) -> dict[Key, Values]:
    """The compared fields of every position and account, scale 8 as the stores show them."""
    out: dict[Key, Values] = {}
    for acct, account in accounts.items():
        out[(acct, ACCOUNT_LEVEL)] = {"cash": account.cash, "realised_pnl": account.realised_pnl,
                                      "commissions": account.commissions}
        for symbol, pos in account.positions.items():
            out[(acct, symbol)] = {"qty": pos.qty, "avg_px": pos.avg_cost,
                                   "realised_pnl": pos.realised_pnl,
                                   "commissions": pos.commissions}
    return out


def expected_at(reports: Iterable[ExecutionReport], cutoff: int, *, initial_cash: int,
                retention: OrderRetention | None = None) -> Expected:
    """Recompute the state at `cutoff` from the whole audit trail; keys with a fill after
    the cutoff (a position, and its account's cash) are skipped: the store has moved on."""
    before: list[ExecutionReport] = []
    later: set[Key] = set()
    for report in reports:
        if report.ts_event < cutoff:
            before.append(report)
        elif report.last_qty > 0:
            later.add((report.account_id, report.symbol))
            later.add((report.account_id, ACCOUNT_LEVEL))
    values = expected_values(replay(before, initial_cash=initial_cash, retention=retention))
    return Expected(values, frozenset(later), len(before))


def fields_of(key: Key) -> tuple[str, ...]:
    return ACCOUNT_FIELDS if key[1] == ACCOUNT_LEVEL else POSITION_FIELDS


def compare(expected: Expected, actual: Mapping[Key, Values]) -> tuple[list[Break], int]:
    """Breaks, sorted, and the number of rows compared. Skipped keys are not compared."""
    breaks: list[Break] = []
    keys = (set(expected.values) | set(actual)) - expected.skipped
    for key in sorted(keys):
        want, have = expected.values.get(key), actual.get(key)
        for name in fields_of(key):
            e = None if want is None else want.get(name)
            a = None if have is None else have.get(name)
            if e != a or (want is None) != (have is None):
                breaks.append(Break(key[0], key[1], name, e, a))
    return breaks, len(keys)


def _wire(units: int | None) -> int | None:
    """A value the alert's decimal(18, 8) fields can carry; larger ones only in the text."""
    return units if units is not None and abs(units) <= MAX_UNITS else None


def _show(units: int | None) -> str:
    return "missing" if units is None else fmt(units)


def break_alert(brk: Break, day: date) -> RiskAlert:
    """The alert for one break. Its id is a function of the date and the break itself, so
    re-running the reconciliation over unchanged stores raises the same alert, not another;
    a break whose actual value changes is a new alert."""
    where = "account" if brk.symbol == ACCOUNT_LEVEL else "position"
    subject = brk.account_id if brk.symbol == ACCOUNT_LEVEL else f"{brk.account_id}/{brk.symbol}"
    source = f"reconcile:{day.isoformat()}:{where}:{subject}:{brk.field}"
    ident = "\x1f".join([RULE, brk.account_id, brk.symbol, brk.field, day.isoformat(),
                         _show(brk.expected), _show(brk.actual)])
    return RiskAlert(
        alert_id=hashlib.sha256(ident.encode()).hexdigest()[:32],
        rule=RULE,
        severity=Severity.CRITICAL,
        account_id=brk.account_id,
        symbol=None if brk.symbol == ACCOUNT_LEVEL else brk.symbol,
        ts_event=cutoff_us(day) - 1,
        observed=_wire(brk.actual),
        limit=_wire(brk.expected),
        message=f"reconciliation {day.isoformat()}: {where} {subject} {brk.field} expected "
                f"{_show(brk.expected)}, store has {_show(brk.actual)}",
        source_event_id=source,
    )


def run_id(day: date, breaks: Iterable[Break], compared: int, reports: int) -> str:
    """A run's identity: the date and what it found. Re-running over unchanged stores is the
    same run (its records are rewritten identically); a different result is a new run."""
    text = "\x1e".join([day.isoformat(), str(compared), str(reports),
                        *("\x1f".join(map(str, b)) for b in sorted(breaks,
                                                                   key=lambda b: b[:3]))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
