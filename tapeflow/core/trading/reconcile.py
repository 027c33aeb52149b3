"""End-of-day reconciliation: positions and cash recomputed from the execution audit trail,
compared exactly with what the operational store holds. Pure: the job reads and writes.

Why it is independent: the expected state is rebuilt from nothing but the execution reports
and cash movements (ClickHouse `executions` and `cash_movements`, the immutable audit trail),
with the same core functions the flow books with (`account_step.book_report`: the FIX state
machine and duplicates, average cost, busts and corrections, cash; `cash.apply_cash`). It
never reads Postgres state, so a wrong, lost or hand-edited row there shows up as a break.
What the audit trail itself cannot see (a report Tapeflow never received, a core bug both
sides share) is for the comparison with outside records (`reconcile_external`).

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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from tapeflow.core.fixedpoint import MAX_UNITS, fmt
from tapeflow.core.models import (
    CashMovement,
    ExecType,
    ExecutionReport,
    RiskAlert,
    Severity,
    Unit,
)
from tapeflow.core.trading.account_step import book_report
from tapeflow.core.trading.cash import apply_cash
from tapeflow.core.trading.order_book import OrderBook, OrderRetention
from tapeflow.core.trading.orders import CORRECTION_TYPES, FILL_TYPES
from tapeflow.core.trading.positions import DEFAULT_CURRENCY, AccountState, new_account

RULE = "reconciliation_break"
POSITION_FIELDS = ("qty", "avg_px", "realised_pnl", "commissions")
ACCOUNT_FIELDS = ("cash", "realised_pnl", "commissions")
ACCOUNT_LEVEL = ""
"""The `symbol` of an account-level value (cash, account P&L) in keys and break records."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STEP = {ExecType.PENDING_NEW: 0, ExecType.NEW: 1, ExecType.PENDING_CANCEL: 2,
         ExecType.PENDING_REPLACE: 2, ExecType.REPLACED: 3, ExecType.RESTATED: 3,
         ExecType.PARTIAL_FILL: 4, ExecType.TRADE: 4, ExecType.FILL: 5}
MOVES = FILL_TYPES | CORRECTION_TYPES
"""Reports that move positions and cash."""

Key = tuple[str, str]
"""(account_id, symbol); symbol `ACCOUNT_LEVEL` for the account row."""
Values = Mapping[str, int | None]


STORE, STATEMENT, OMS = "store", "statement", "oms"
"""What a break compares: the audit trail's replay with the store (Postgres); a broker or
clearing statement with the replay; the OMS's final order state with the store's orders."""


class Break(NamedTuple):
    """One value that differs: `expected` from the reference (the audit trail; the statement;
    the OMS), `actual` from Tapeflow. Numbers are scale-8 units; order statuses and currencies
    are text; None is a row missing on that side."""

    account_id: str
    symbol: str
    field: str
    expected: int | str | None
    actual: int | str | None
    against: str = STORE


@dataclass(frozen=True, slots=True)
class Expected:
    """The recomputed state at the cutoff, and what cannot be compared."""

    values: Mapping[Key, Values]
    skipped: frozenset[Key]
    reports: int
    """Reports and cash movements replayed."""
    accounts: Mapping[str, AccountState] = field(default_factory=dict)
    """The replayed accounts themselves (for the comparison with outside records)."""


def cutoff_us(day: date) -> int:
    """The end of `day` in UTC (next midnight), microseconds: reports before it count."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (midnight + timedelta(days=1) - _EPOCH) // timedelta(microseconds=1)


def replay_order(report: ExecutionReport) -> tuple[int, str, int, int, str]:
    """The order in which the audit trail is replayed (see the module doc)."""
    return (report.ts_event, report.order_id, report.cum_qty,
            _STEP.get(report.exec_type, 4), report.exec_id)


@dataclass(frozen=True, slots=True)
class Opening:
    """How an account the replay meets first is opened: as the trading flow opens it."""

    initial_cash: int
    currency: str = DEFAULT_CURRENCY
    currencies: Mapping[str, str] | None = None
    retention: OrderRetention | None = None

    def account(self, account_id: str) -> AccountState:
        currency = (self.currencies or {}).get(account_id, self.currency)
        return new_account(account_id, self.initial_cash, currency)


def _events(reports: Iterable[ExecutionReport], movements: Iterable[CashMovement]
            ) -> list[ExecutionReport | CashMovement]:
    """Reports in `replay_order` and movements by (ts_event, movement_id), merged by event
    time, a movement before a report of the same microsecond (sums: the order never changes
    a compared value)."""
    keyed: list[tuple[tuple[int | str, ...], ExecutionReport | CashMovement]] = [
        ((r.ts_event, 1, *replay_order(r)[1:]), r) for r in reports]
    keyed += [((m.ts_event, 0, m.movement_id), m) for m in movements]
    return [event for _, event in sorted(keyed, key=lambda kv: kv[0])]


def replay(reports: Iterable[ExecutionReport], *, initial_cash: int,
           retention: OrderRetention | None = None, movements: Iterable[CashMovement] = (),
           opening: Opening | None = None) -> dict[str, AccountState]:
    """Accounts after applying `reports` and cash `movements` in order, as the trading flow
    does: one order book per account (duplicates and invalid reports change nothing), every
    applied execution, bust or correction booked at average cost, every movement applied.
    Accounts open with `initial_cash` (scale 8), or as `opening` says."""
    opening = opening or Opening(initial_cash, retention=retention)
    books: dict[str, OrderBook] = {}
    accounts: dict[str, AccountState] = {}
    for event in _events(reports, movements):
        acct = event.account_id
        account = accounts.get(acct) or opening.account(acct)
        if isinstance(event, CashMovement):
            account, _ = apply_cash(account, event)
        else:
            book = books.get(acct) or OrderBook(retention=opening.retention or OrderRetention())
            books[acct], account, _, _ = book_report(book, account, event, {})
        if account.version or acct in accounts:
            accounts[acct] = account
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
                retention: OrderRetention | None = None, movements: Iterable[CashMovement] = (),
                opening: Opening | None = None) -> Expected:
    """Recompute the state at `cutoff` from the whole audit trail; keys with an execution,
    bust or correction after the cutoff (a position, and its account's cash), or a cash
    movement (the account's cash) are skipped: the store has moved on."""
    before: list[ExecutionReport] = []
    cash_before: list[CashMovement] = []
    later: set[Key] = set()
    for report in reports:
        if report.ts_event < cutoff:
            before.append(report)
        elif report.exec_type in MOVES:
            later.add((report.account_id, report.symbol))
            later.add((report.account_id, ACCOUNT_LEVEL))
    for movement in movements:
        if movement.ts_event < cutoff:
            cash_before.append(movement)
        else:
            later.add((movement.account_id, ACCOUNT_LEVEL))
    accounts = replay(before, initial_cash=initial_cash, retention=retention,
                      movements=cash_before, opening=opening)
    return Expected(expected_values(accounts), frozenset(later), len(before) + len(cash_before),
                    accounts)


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


def _wire(units: int | str | None) -> int | None:
    """A value the alert's decimal(18, 8) fields can carry; larger ones and text only in the
    message."""
    return units if isinstance(units, int) and abs(units) <= MAX_UNITS else None


def show(value: int | str | None) -> str:
    if value is None:
        return "missing"
    return value if isinstance(value, str) else fmt(value)


_show = show
_QUANTITIES = frozenset({"qty", "cum_qty"})
_REFERENCE = {STORE: "", STATEMENT: " (statement)", OMS: " (OMS)"}


def break_alert(brk: Break, day: date) -> RiskAlert:
    """The alert for one break. Its id is a function of the date and the break itself, so
    re-running the reconciliation over unchanged stores raises the same alert, not another;
    a break whose actual value changes is a new alert."""
    where = "account" if brk.symbol == ACCOUNT_LEVEL else "position"
    if brk.against == OMS:
        where = "order"
    subject = brk.account_id if brk.symbol == ACCOUNT_LEVEL else f"{brk.account_id}/{brk.symbol}"
    prefix = "" if brk.against == STORE else f"{brk.against}:"
    source = f"reconcile:{day.isoformat()}:{prefix}{where}:{subject}:{brk.field}"
    parts = [RULE, brk.account_id, brk.symbol, brk.field, day.isoformat(), _show(brk.expected),
             _show(brk.actual)]
    ident = "\x1f".join(parts if brk.against == STORE else [*parts, brk.against])
    numeric = isinstance(brk.expected, int) or isinstance(brk.actual, int)
    field_name = brk.field.rsplit(":", 1)[-1]
    unit = (Unit.QUANTITY if field_name in _QUANTITIES else Unit.MONEY) if numeric else None
    theirs = "store has" if brk.against == STORE else "Tapeflow has"
    reference = _REFERENCE[brk.against]
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
                f"{_show(brk.expected)}{reference}, {theirs} {_show(brk.actual)}",
        source_event_id=source,
        unit=unit,
    )


def run_id(day: date, breaks: Iterable[Break], compared: int, reports: int) -> str:
    """A run's identity: the date and what it found. Re-running over unchanged stores is the
    same run (its records are rewritten identically); a different result is a new run."""
    text = "\x1e".join([day.isoformat(), str(compared), str(reports),
                        *("\x1f".join(map(str, b)) for b in sorted(breaks,
                                                                   key=lambda b: b[:3]))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
