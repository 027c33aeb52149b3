"""How well the tick filter separates the synthetic market's faults from its genuine ticks.

`score_market(market)` runs `tapeflow.core.market.tick_filter` over a generated market's trades and
quotes exactly as the stream would: one pass in arrival order (`Market.stream()`), trades and quotes
interleaved as they arrive, one `FilterState` (the filter keeps its memory per venue and
symbol, so this equals one state per Bytewax key), the instrument list and tick sizes
configured, and `now_us` = the record's arrival time (event time plus the label's
`delay_us`), what a producer replaying the market in real time would stamp on the Kafka
message. Garbage never decodes, so it never reaches the filter; execution reports are not
ticks. Every verdict is then compared with the record's truth label.

Figures, per fault kind (`Tally`):

- recall: the fraction rejected, whatever the reason;
- recall as labelled: the fraction whose verdict is the label's `expected_reason` (a
  deterministic fault has one expected reason; a spike's is `outside_quote` or
  `price_outlier` depending on its venue's quote, a re-send's `duplicate_seq` or
  `seq_too_old`);
- for genuine ticks (clean, out of order, late: what the venue really printed), the false
  rejection rate: rejected although the label expects acceptance, by reason. A late trade
  4096+ sequence numbers behind is labelled `seq_too_old` (bounded memory, by design) and is
  not counted as a false rejection.

Price spikes are also tallied by the label's intended move (`magnitude_bps`, signed) and by
their actual move from the clean price (at least the intended one: a spike also moves at
least 40 ticks plus two spreads, a lot on a cheap name).

Used by `bench/filter_quality.py` (the report) and `tests/unit/test_filter_quality.py` (the
acceptance targets on a small market).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TypeVar

from sources.synthetic.labels import Fault, FeedEffect
from sources.synthetic.market import Market
from sources.synthetic.records import CODE_QUOTE, CODE_TRADE
from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.filter_state import FilterState
from tapeflow.core.market.tick_filter import filter_quote_inplace, filter_trade_inplace
from tapeflow.core.models import Quote, Trade

K = TypeVar("K")

GENUINE = (Fault.CLEAN.value, Fault.OUT_OF_ORDER.value, Fault.LATE.value)
"""Faults that leave the print genuine: the filter should accept them."""
FEED_EFFECTS = tuple(effect.value for effect in FeedEffect)
"""Genuine ticks changed the way real venues change them (`feed_effects`): accept them too."""
DETERMINISTIC = (
    Fault.ZERO_PRICE.value,
    Fault.NEGATIVE_PRICE.value,
    Fault.ZERO_SIZE.value,
    Fault.NEGATIVE_SIZE.value,
    Fault.CROSSED_QUOTE.value,
    Fault.DUPLICATE_SEQ.value,
)
"""Faults a rule recognises from the tick itself and the sequence number alone."""
FAULT_ORDER = (Fault.PRICE_SPIKE.value, *DETERMINISTIC, *GENUINE, *FEED_EFFECTS)
SPIKE_MOVE_BUCKETS = (100, 200, 500, 1_000, 2_000, 5_000, 10_000)
"""Lower bounds, in basis points, of the actual-move buckets of price spikes."""


@dataclass
class Tally:
    """Verdicts on one group of ticks against their labels."""

    n: int = 0
    trades: int = 0
    quotes: int = 0
    rejected: int = 0
    expected_reject: int = 0
    """Labels with an expected reason."""
    as_labelled: int = 0
    """Rejected with exactly the expected reason (among `expected_reject`)."""
    false_rejected: int = 0
    """Rejected although the label expects acceptance."""
    missed: int = 0
    """Accepted although the label expects a rejection."""
    expected: Counter[str] = field(default_factory=Counter)
    """The labels' expected reasons."""
    reasons: Counter[str] = field(default_factory=Counter)
    """Reasons of the rejections."""
    false_reasons: Counter[str] = field(default_factory=Counter)
    """Reasons of the false rejections."""

    def add(self, is_trade: bool, expected: str | None, got: str | None) -> None:
        self.n += 1
        if is_trade:
            self.trades += 1
        else:
            self.quotes += 1
        if expected is not None:
            self.expected_reject += 1
            self.expected[expected] += 1
            self.as_labelled += got == expected
            self.missed += got is None
        if got is not None:
            self.rejected += 1
            self.reasons[got] += 1
            if expected is None:
                self.false_rejected += 1
                self.false_reasons[got] += 1

    def merge(self, other: Tally) -> None:
        self.n += other.n
        self.trades += other.trades
        self.quotes += other.quotes
        self.rejected += other.rejected
        self.expected_reject += other.expected_reject
        self.as_labelled += other.as_labelled
        self.false_rejected += other.false_rejected
        self.missed += other.missed
        self.expected.update(other.expected)
        self.reasons.update(other.reasons)
        self.false_reasons.update(other.false_reasons)

    @property
    def recall(self) -> float:
        return self.rejected / self.n if self.n else float("nan")

    @property
    def recall_as_labelled(self) -> float:
        return self.as_labelled / self.expected_reject if self.expected_reject else float("nan")

    @property
    def false_rejection_rate(self) -> float:
        expected_accept = self.n - self.expected_reject
        return self.false_rejected / expected_accept if expected_accept else float("nan")


@dataclass
class Quality:
    """Tallies by fault kind, price spikes by move, and the counters the filter kept."""

    by_fault: dict[tuple[str, str], Tally] = field(default_factory=dict)
    """By (fault, "trade" or "quote")."""
    spikes_by_bps: dict[int, Tally] = field(default_factory=dict)
    """By the label's signed intended move in basis points."""
    spikes_by_move: dict[int, Tally] = field(default_factory=dict)
    """By the actual move from the clean price, keyed by bucket lower bound (bp)."""
    counters: Counter[str] = field(default_factory=Counter)

    def fault(self, *names: str, kind: str | None = None) -> Tally:
        """These faults together, of one kind of tick or of both."""
        total = Tally()
        for (fault, tick_kind), tally in self.by_fault.items():
            if fault in names and kind in (None, tick_kind):
                total.merge(tally)
        return total

    def genuine(self, kind: str | None = None) -> Tally:
        return self.fault(*GENUINE, kind=kind)

    def spikes_at_least(self, bps: int) -> Tally:
        total = Tally()
        for low, tally in self.spikes_by_move.items():
            if low >= bps:
                total.merge(tally)
        return total

    def merge(self, other: Quality) -> None:
        _merge(self.by_fault, other.by_fault)
        _merge(self.spikes_by_bps, other.spikes_by_bps)
        _merge(self.spikes_by_move, other.spikes_by_move)
        self.counters.update(other.counters)


def _merge(mine: dict[K, Tally], theirs: dict[K, Tally]) -> None:
    for key, tally in theirs.items():
        mine.setdefault(key, Tally()).merge(tally)


def filter_config_for(market: Market, **overrides: object) -> FilterConfig:
    """The default filter settings with the market's instrument list and tick sizes."""
    return FilterConfig(
        instruments=frozenset(i.symbol for i in market.instruments),
        tick_sizes={i.symbol: i.tick_size for i in market.instruments},
        **overrides,  # type: ignore[arg-type]
    )


def _move_bucket(move_bps: int) -> int:
    bucket = 0
    for low in SPIKE_MOVE_BUCKETS:
        if move_bps >= low:
            bucket = low
    return bucket


def score_market(market: Market, config: FilterConfig | None = None) -> Quality:
    """Filter the market's ticks as the stream would and tally the verdicts by label."""
    cfg = filter_config_for(market) if config is None else config
    state = FilterState()
    faults = market.faults
    trades = market.trades
    quotes = market.quotes
    quality = Quality()
    by_fault = quality.by_fault
    clean_trades = by_fault.setdefault((Fault.CLEAN.value, "trade"), Tally())
    clean_quotes = by_fault.setdefault((Fault.CLEAN.value, "quote"), Tally())
    for pos, (code, row) in enumerate(zip(market.codes, market.rows, strict=True)):
        if code > CODE_QUOTE:
            continue  # execution reports are not ticks; garbage never decodes
        label = faults.get(pos)
        delay = 0 if label is None or label.delay_us is None else label.delay_us
        is_trade = code == CODE_TRADE
        price = 0
        if is_trade:
            trade: Trade = trades[row]
            price = trade.price
            state, rejection, _gap = filter_trade_inplace(state, trade, trade.ts_event + delay, cfg)
        else:
            quote: Quote = quotes[row]
            state, rejection, _gap = filter_quote_inplace(state, quote, quote.ts_event + delay, cfg)
        got = None if rejection is None else rejection.reason.value
        if label is None:
            (clean_trades if is_trade else clean_quotes).add(is_trade, None, got)
            continue
        expected = label.expected_reason
        by_fault.setdefault((label.fault, label.kind), Tally()).add(is_trade, expected, got)
        if label.fault == Fault.PRICE_SPIKE.value and label.original:
            bps = label.magnitude_bps or 0
            quality.spikes_by_bps.setdefault(bps, Tally()).add(is_trade, expected, got)
            move = _move_bucket(abs(price - label.original) * 10_000 // label.original)
            quality.spikes_by_move.setdefault(move, Tally()).add(is_trade, expected, got)
    quality.counters.update(state.counters)
    return quality
