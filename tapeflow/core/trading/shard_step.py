"""One shard of the trading flow: the accounts of one executions partition, the shard's own
copy of the marks table, and periodic P&L snapshots. Pure: no I/O, no clock, no Bytewax.

The trading flow keys its state by the Kafka partition of `oms.executions` (docs/flows.md,
"Trading flow"): a shard holds every account whose reports arrive on that partition (the
topic is keyed by account_id, so an account lives on exactly one partition) plus a copy of
the marks table, and both are snapshotted together, as `tapeflow.core.trading.account_step`
requires. Each mark is delivered to every shard.

Steps (each returns the outputs it produced, in order):

- `on_report_inplace(shard, report, config)`: `trading.on_execution` for the report's account (a new
  account starts with `ShardConfig.initial_cash`, in its configured currency) ->
  `ExecutionResult`.
- `on_cash_inplace(shard, movement, config)`: a deposit, withdrawal or fee for its account
  (`account_step.on_cash`) -> `CashResult`. Cash movements come from `oms.cash`, keyed by
  account like the reports, so the same shard holds them.
- `on_market_inplace(shard, mark, config)`: a newer mark replaces the held one and revalues every
  account of the shard holding the symbol (`trading.on_mark`; the holders are indexed by
  symbol, `ShardState.holders`) -> `StateChange`s. An older mark (event time) changes nothing.
- `on_tick_inplace(shard, now_us, config)`: the time-driven rules (`trading.on_timer`: stale market
  data, turnover expiry) for every account, then provisional P&L snapshots.
- `on_finish_inplace(shard)`: provisional snapshots of every account changed since its last one.

Feed sequence gaps belong to no account and come from the market side (the tick filter's
`SequenceGap`s): `on_gap` / `on_gap_timer` step a `FeedGaps` state per feed key with the
default limits, and return their alerts as `StateChange`s, so they take the same way to the
stores and the alert topic as account alerts (`flows.trading.add_gap_alerts`).

Clock: the caller passes `now_us`. The flow uses the shard's event clock (`clock_us`, the
latest event time it has seen, reports and marks), so a replay judges staleness as the first
run did as long as the ticks fall at the same points; the flow documents what this means.

P&L snapshots (ClickHouse `pnl_snapshots`, key (account_id, symbol, ts), `version` decides):
a time series. Event time is cut into buckets of `snapshot_interval_us`; `ts` is a bucket's
end. When a change to an account (a report, a cash movement, or a mark that revalues one of
its positions) falls in a later bucket than its last change, the state before it is emitted
as that earlier bucket's snapshot. So a held position gets a row for every bucket in which
marks moved it, stamped with the bucket of the mark's event time.

What a replay repeats: reports and cash movements are bucketed by their own event time (never
pushed into a later bucket by a mark read ahead of them), so the rows of the buckets they fall
in hold the same report-decided values (quantities, cash, realised P&L) in every run. A report
older than a bucket a mark already opened re-emits its own bucket at once, then goes on into
the open one. Rows of buckets only marks touched, and every mark-driven value (mark,
unrealised P&L, equity), depend on how marks interleaved with the reports (docs/flows.md,
"Determinism"). Ticks and the end of input emit the open bucket's state provisionally; a later
change in the same bucket re-emits it with a higher version, which replaces it. One row per
account (`symbol` '') and one per position the account has ever held.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.market.rejections import SequenceGap
from tapeflow.core.models import CashMovement, ExecutionReport, Trade
from tapeflow.core.risk.assess import FeedRiskState, assess_feed_timer, assess_gap
from tapeflow.core.trading.account_step import (
    TradingConfig,
    TradingOutput,
    TradingState,
    new_trading_state,
    newer_mark,
    on_cash,
    on_execution,
    on_mark,
    on_timer,
)
from tapeflow.core.trading.cash import CashOutcome
from tapeflow.core.trading.order_book import OrderRetention
from tapeflow.core.trading.orders import Duplicate
from tapeflow.core.trading.positions import DEFAULT_CURRENCY, AccountState, MarkPrice

SECOND_US = 1_000_000


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """Read-only settings of a shard (not snapshotted)."""

    initial_cash: int = 1_000_000 * ONE
    """Cash (scale 8) of an account the shard has not seen before."""
    snapshot_interval_us: int = 60 * SECOND_US
    """Event-time width of a P&L snapshot bucket."""
    retention: OrderRetention | None = None
    currency: str = DEFAULT_CURRENCY
    """Currency of a new account without one in `TradingConfig.currencies`."""

    def __post_init__(self) -> None:
        if self.snapshot_interval_us <= 0:
            raise ValueError("snapshot_interval_us must be positive")


DEFAULT_SHARD_CONFIG = ShardConfig()


class ExecutionResult(NamedTuple):
    """What one execution report did: the outcome (always set) and the changes."""

    report: ExecutionReport
    output: TradingOutput


class CashResult(NamedTuple):
    """What one cash movement did: the core's verdict and the changes (account, alerts)."""

    movement: CashMovement
    outcome: CashOutcome
    output: TradingOutput


class StateChange(NamedTuple):
    """Changes made by a mark or a tick (positions, account, alerts); never an outcome."""

    output: TradingOutput


class PnlSnapshot(NamedTuple):
    """One row of `pnl_snapshots`. `symbol` '' is the account row (qty and avg_px 0, mark
    None); a symbol row holds the position, with `cash` 0 and `equity` its market value, so
    the account's equity is its cash plus the sum over its symbol rows."""

    account_id: str
    symbol: str
    ts: int
    qty: int
    avg_px: int
    mark: int | None
    realised_pnl: int
    unrealised_pnl: int
    cash: int
    equity: int
    version: int


ShardOutput = ExecutionResult | CashResult | StateChange | PnlSnapshot

REDELIVERED = "exec_id already applied"
"""`orders.Duplicate.reason` for a report whose exec_id was already applied."""


def is_redelivery(result: ExecutionResult) -> bool:
    """A report seen before (same exec_id): the audit trail already holds it, with the verdict
    of its first delivery, so it is not written again (a second row would replace that
    verdict with "duplicate"). A *different* report whose cum_qty does not advance is a new
    report, written with outcome "duplicate"."""
    outcome = result.output.outcome
    return isinstance(outcome, Duplicate) and outcome.reason == REDELIVERED


@dataclass(slots=True)
class ShardState:
    """The snapshotted state of a shard. Steps update it in place (copy it to snapshot)."""

    accounts: dict[str, TradingState] = field(default_factory=dict)
    marks: dict[str, MarkPrice] = field(default_factory=dict)
    clock_us: int = 0
    """Latest event time seen (reports and marks)."""
    open_bucket: dict[str, int] = field(default_factory=dict)
    """Account -> the latest snapshot bucket of a change to it (reports, cash, marks)."""
    snapshot_version: dict[str, int] = field(default_factory=dict)
    """Account -> account version of its last emitted snapshot."""
    report_bucket: dict[str, int] = field(default_factory=dict)
    """Account -> snapshot bucket of its last report or cash movement."""
    snapshot_bucket: dict[str, int] = field(default_factory=dict)
    """Account -> bucket of its last emitted snapshot."""
    holders: dict[str, dict[str, None]] = field(default_factory=dict)
    """Symbol -> the accounts with an open (non-zero) position in it: the accounts a mark of
    the symbol revalues, so a mark costs O(holders), not O(accounts). Dicts, not sets: a
    set's order after a pickle round trip can differ, and snapshots compare byte for byte."""


def _track_holder(shard: ShardState, account_id: str, output: TradingOutput) -> None:
    position = output.position
    if position is None:
        return
    if position.qty:
        shard.holders.setdefault(position.symbol, {})[account_id] = None
        return
    holders = shard.holders.get(position.symbol)
    if holders is not None:
        holders.pop(account_id, None)
        if not holders:
            del shard.holders[position.symbol]




def mark_of(trade: Trade) -> MarkPrice:
    """The mark a clean trade (from `md.marks`) gives; its id names the trade exactly."""
    return MarkPrice(trade.symbol, trade.price, trade.ts_event,
                f"trade:{trade.venue}:{trade.symbol}:{trade.seq}@{trade.ts_event}")


def snapshot_rows(account: AccountState, ts: int) -> list[PnlSnapshot]:
    """The account row and one row per position, at scale 8."""
    rows = [PnlSnapshot(account.account_id, "", ts, 0, 0, None, account.realised_pnl,
                        account.unrealised_pnl, account.cash, account.equity, account.version)]
    for symbol in sorted(account.positions):
        p = account.positions[symbol]
        rows.append(PnlSnapshot(
            account.account_id, symbol, ts, p.qty, p.avg_cost or 0,
            p.mark_px if p.qty else None, p.realised_pnl, p.unrealised_pnl, 0,
            p.market_value, p.version,
        ))
    return rows


def _bucket_end(bucket: int, config: ShardConfig) -> int:
    return (bucket + 1) * config.snapshot_interval_us


def _emit_snapshot(shard: ShardState, account: AccountState, bucket: int,
                   config: ShardConfig, out: list[ShardOutput]) -> None:
    acct = account.account_id
    if shard.snapshot_version.get(acct, -1) >= account.version and \
            shard.snapshot_bucket.get(acct, bucket) == bucket:
        return
    shard.snapshot_version[acct] = account.version
    shard.snapshot_bucket[acct] = bucket
    out.extend(snapshot_rows(account, _bucket_end(bucket, config)))


def _close_open_bucket(shard: ShardState, account: AccountState, bucket: int,
                       config: ShardConfig, out: list[ShardOutput]) -> None:
    """Before a change in `bucket`: emit the account's open bucket if `bucket` is later."""
    held = shard.open_bucket.get(account.account_id)
    if held is not None and bucket > held:
        _emit_snapshot(shard, account, held, config, out)


def _event_bucket(shard: ShardState, account_id: str, ts: int, config: ShardConfig) -> int:
    """A report's or movement's bucket: its own, never before the previous one's."""
    return max(ts // config.snapshot_interval_us, shard.report_bucket.get(account_id, -1))


def _after_event(shard: ShardState, account: AccountState, bucket: int, output: TradingOutput,
                 *, config: ShardConfig, out: list[ShardOutput]) -> None:
    if output.account is None and output.position is None:
        return
    acct = account.account_id
    held = shard.open_bucket.get(acct)
    shard.report_bucket[acct] = bucket
    if held is not None and bucket < held:
        # A mark already opened a later bucket: this bucket's row gets the report now.
        _emit_snapshot(shard, account, bucket, config, out)
    else:
        shard.open_bucket[acct] = bucket


def _new_state(account_id: str, trading: TradingConfig, config: ShardConfig) -> TradingState:
    currency = trading.currencies.get(account_id, config.currency)
    return new_trading_state(account_id, config.initial_cash, config.retention, currency)


def on_report_inplace(shard: ShardState, report: ExecutionReport, trading: TradingConfig,
                      config: ShardConfig = DEFAULT_SHARD_CONFIG) -> list[ShardOutput]:
    """One execution report for its account; advances `shard` in place (it holds every account
    of a partition: copying it per report would cost more than the rules)."""
    account_id = report.account_id
    state = shard.accounts.get(account_id)
    if state is None:
        state = _new_state(account_id, trading, config)
    out: list[ShardOutput] = []
    bucket = _event_bucket(shard, account_id, report.ts_event, config)
    _close_open_bucket(shard, state.account, bucket, config, out)
    state, output = on_execution(state, report, trading, shard.marks)
    shard.accounts[account_id] = state
    _track_holder(shard, account_id, output)
    shard.clock_us = max(shard.clock_us, report.ts_event)
    _after_event(shard, state.account, bucket, output, config=config, out=out)
    out.append(ExecutionResult(report, output))
    return out


def on_cash_inplace(shard: ShardState, movement: CashMovement, trading: TradingConfig,
                    config: ShardConfig = DEFAULT_SHARD_CONFIG) -> list[ShardOutput]:
    """One cash movement for its account; advances `shard` in place."""
    account_id = movement.account_id
    state = shard.accounts.get(account_id)
    if state is None:
        state = _new_state(account_id, trading, config)
    out: list[ShardOutput] = []
    bucket = _event_bucket(shard, account_id, movement.ts_event, config)
    _close_open_bucket(shard, state.account, bucket, config, out)
    state, output, outcome = on_cash(state, movement, trading, shard.marks)
    shard.accounts[account_id] = state
    shard.clock_us = max(shard.clock_us, movement.ts_event)
    _after_event(shard, state.account, bucket, output, config=config, out=out)
    out.append(CashResult(movement, outcome, output))
    return out


def on_market_inplace(shard: ShardState, mark: MarkPrice, trading: TradingConfig,
                      config: ShardConfig = DEFAULT_SHARD_CONFIG) -> list[ShardOutput]:
    """A mark: replaces the held one when newer and revalues the holders; advances `shard` in
    place."""
    if not newer_mark(shard.marks, mark):
        return []
    shard.marks[mark.symbol] = mark
    shard.clock_us = max(shard.clock_us, mark.ts_event)
    out: list[ShardOutput] = []
    bucket = mark.ts_event // config.snapshot_interval_us
    for account_id in sorted(shard.holders.get(mark.symbol, ())):
        state = shard.accounts[account_id]
        before = state.account
        state, output = on_mark(state, mark, trading, shard.marks)
        if state.account is not before:
            # The revaluation belongs to the mark's bucket: close the open one first.
            _close_open_bucket(shard, before, bucket, config, out)
            shard.open_bucket[account_id] = max(shard.open_bucket.get(account_id, bucket),
                                                bucket)
        shard.accounts[account_id] = state
        if output != TradingOutput():
            out.append(StateChange(output))
    return out


def on_tick_inplace(shard: ShardState, now_us: int, trading: TradingConfig,
                    config: ShardConfig = DEFAULT_SHARD_CONFIG) -> list[ShardOutput]:
    """The time-driven rules of every account at `now_us`, then provisional P&L snapshots;
    advances `shard` in place."""
    out: list[ShardOutput] = []
    for account_id in sorted(shard.accounts):
        state, output = on_timer(shard.accounts[account_id], now_us, trading, shard.marks)
        shard.accounts[account_id] = state
        if output.alerts:
            out.append(StateChange(output))
    out.extend(on_finish_inplace(shard, config))
    return out


def on_finish_inplace(shard: ShardState, config: ShardConfig = DEFAULT_SHARD_CONFIG
                      ) -> list[ShardOutput]:
    """End of input: the last snapshot of every account changed since its last one; advances
    `shard` in place (the snapshot versions it has emitted)."""
    out: list[ShardOutput] = []
    for account_id in sorted(shard.open_bucket):
        _emit_snapshot(shard, shard.accounts[account_id].account,
                       shard.open_bucket[account_id], config, out)
    return out


class FeedGaps(NamedTuple):
    """The gap alerts of one feed key (the market flow keys them by symbol): the edge-trigger
    levels and the latest gap's event time."""

    risk: FeedRiskState = FeedRiskState()
    last_gap_us: int = 0


def on_gap(feed: FeedGaps, gap: SequenceGap, trading: TradingConfig
           ) -> tuple[FeedGaps, list[ShardOutput]]:
    """A sequence gap from the tick filter -> feed-gap alerts (no account: default limits)."""
    risk, alerts = assess_gap(feed.risk, trading.limits.default, gap)
    feed = FeedGaps(risk, max(feed.last_gap_us, gap.ts_event))
    return feed, [StateChange(TradingOutput(alerts=alerts))] if alerts else []


def on_gap_timer(feed: FeedGaps, now_us: int, trading: TradingConfig
                 ) -> tuple[FeedGaps, list[ShardOutput]]:
    """Clear gap alerts quiet for `gap_clear_after_us` at `now_us`."""
    risk, alerts = assess_feed_timer(feed.risk, trading.limits.default, now_us)
    feed = FeedGaps(risk, feed.last_gap_us)
    return feed, [StateChange(TradingOutput(alerts=alerts))] if alerts else []
