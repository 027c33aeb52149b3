"""Feed-gap alerts: the tick filter's sequence gaps become `feed_gap` risk alerts.

Where the gaps are seen (the market part), with the trading store's limits and the trading
flow's alert sinks: a gap belongs to no account, so it is stepped per feed key (symbol) by
`tapeflow.core.trading.shard_step.on_gap`, and its alerts take the same way to Postgres,
ClickHouse and risk.alerts as account alerts (docs/flows.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import bytewax.operators as op
from bytewax.operators import StatefulLogic

from flows.metrics import count_trading
from flows.operators import KeyedLetter
from flows.trading import TradingSinks, default_sinks, refreshing_limits, write_outputs
from schemas.codec import Codec, codec_for
from tapeflow.core.market.rejections import SequenceGap
from tapeflow.core.models import DeadLetter
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import FeedGaps, ShardOutput, on_gap, on_gap_timer
from tapeflow.settings import Settings

log = logging.getLogger("tapeflow.flows.gaps")


@dataclass(frozen=True)
class GapAlerts:
    """What feed-gap alerts need: the current limits, and sinks that take alerts."""

    limits: Callable[[], TradingConfig]
    sinks: TradingSinks


def add_gap_alerts(gaps: op.KeyedStream[SequenceGap], limits: Callable[[], TradingConfig],
                   sinks: TradingSinks, *, tick: timedelta = timedelta(seconds=5),
                   prefix: str = "feed_gap_") -> None:
    """Feed sequence gaps -> feed-gap alerts -> Postgres/ClickHouse alerts and risk.alerts.

    `gaps` are the market step's `SequenceGap`s keyed by symbol (state stays on the symbol's
    worker; no exchange). `sinks` may be the trading flow's (`flows.trading.default_sinks`),
    or alert-only sinks; only `StateChange` alerts reach them.
    """
    outputs = op.stateful(f"{prefix}state", gaps,
                          lambda resume: FeedGapLogic(limits, tick, resume))
    write_outputs(prefix, outputs, sinks)


def _wall_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)


class FeedGapLogic(StatefulLogic[SequenceGap, ShardOutput | KeyedLetter, FeedGaps]):
    """One feed key's gap alerts (`tapeflow.core.trading.shard_step.on_gap`) behind a stateful
    operator.

    The quiet period that clears a gap alert is measured in event time, but only gaps carry
    event time here; so the timer's clock is the latest gap's event time plus the wall time
    since it was seen (never less than the last gap). In a live feed that is the feed's time;
    in a fast replay it barely moves, and gaps clear when a later gap shows the quiet period.
    """

    def __init__(self, config: Callable[[], TradingConfig], tick: timedelta,
                 resume: FeedGaps | None, wall_us: Callable[[], int] = _wall_us) -> None:
        self._config = config
        self._tick = tick
        self._state = resume if resume is not None else FeedGaps()
        self._wall_us = wall_us
        self._seen_at = wall_us()
        self._wake: datetime | None = None

    def on_item(self, value: SequenceGap) -> tuple[Iterable[ShardOutput | KeyedLetter], bool]:
        try:
            self._state, out = on_gap(self._state, value, self._config())
        except Exception as exc:
            log.exception("gap step failed for %s", value.symbol)
            letter = DeadLetter("", -1, -1, "gap_error", f"{type(exc).__name__}: {exc}; "
                                f"gap {value!r}", b"", 0)
            return [KeyedLetter(value.symbol, letter)], StatefulLogic.RETAIN
        self._seen_at = self._wall_us()
        self._wake = datetime.now(UTC) + self._tick
        count_trading(out)
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[ShardOutput | KeyedLetter], bool]:
        self._wake = datetime.now(UTC) + self._tick
        now = self._state.last_gap_us + max(0, self._wall_us() - self._seen_at)
        try:
            self._state, out = on_gap_timer(self._state, now, self._config())
        except Exception as exc:
            log.exception("gap timer failed")
            letter = DeadLetter("", -1, -1, "gap_timer_error", f"{type(exc).__name__}: {exc}",
                                b"", 0)
            return [KeyedLetter("", letter)], StatefulLogic.RETAIN
        if not self._state.risk.levels:
            self._wake = None  # nothing left to clear: sleep until the next gap
        count_trading(out)
        return out, StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        return self._wake

    def snapshot(self) -> FeedGaps:
        return self._state  # immutable


def gap_alerts_for(settings: Settings, codec: Codec) -> GapAlerts:
    """Feed-gap alerts of a market flow to the stores and risk.alerts of `settings`, as the
    market flow's principal, limits from Postgres. A gap belongs to no account, so no desk:
    the alerts sink is composed without the desk topics (which the market principal may
    neither read nor write)."""
    return GapAlerts(refreshing_limits(settings, settings.trading.limits_refresh_s),
                     default_sinks(settings, codec, role="market", desks=False))


def optional_gap_alerts(settings: Settings) -> GapAlerts | None:
    """Feed-gap alerts for `run market`, or None (with a warning) when Postgres cannot serve
    them: the gaps are seen in the market flow, but the limits and the alerts table live in
    the trading store, and a market flow must not fail for the trading store."""
    if settings.postgres.dsn is None:
        return None
    try:
        return gap_alerts_for(settings, codec_for(settings))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("feed-gap alerts are off (Postgres risk limits unavailable: %s); run "
                    "`tapeflow init` to turn them on", first)
        return None
