"""The synthetic market's vocabulary: spec, reference data, records' truth, the market.

Split from `sources.synthetic` (the generator), which re-exports everything here; import from
there. See docs/synthetic.md.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from random import Random
from typing import NamedTuple, overload

from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import ExecutionReport, Quote, Trade

TOPIC_TRADES = "md.trades"
TOPIC_QUOTES = "md.quotes"
TOPIC_EXECUTIONS = "oms.executions"

DEFAULT_START_US = 1_767_623_400_000_000
"""2026-01-05T14:30:00Z: a Monday, the New York open (9:30 EST)."""
SESSION_OPEN_US = (14 * 3600 + 30 * 60) * 1_000_000
SESSION_CLOSE_US = 21 * 3600 * 1_000_000

# Mirrors of the defaults the expected verdicts depend on (tapeflow.core.market.filter_config,
# docs/design.md).
SEQ_WINDOW = 4096
QUOTE_MAX_AGE_US = 10_000_000
HEADER_LEN = 5
"""Confluent frame header: magic byte 0 and a 4-byte schema id."""

# Arrival codes: which list a stream position points into.
CODE_TRADE = 0
CODE_QUOTE = 1
CODE_EXECUTION = 2
CODE_GARBAGE = 3
KIND_NAMES = ("trade", "quote", "execution", "garbage")
TOPICS = (TOPIC_TRADES, TOPIC_QUOTES, TOPIC_EXECUTIONS)

Record = Trade | Quote | ExecutionReport


class Fault(StrEnum):
    """What was done to a record. `CLEAN` records are exactly what the market produced."""

    CLEAN = "clean"
    PRICE_SPIKE = "price_spike"
    """A trade printed far from the market (1 % to 900 %, and at least 40 ticks + 2 spreads)."""
    ZERO_PRICE = "zero_price"
    NEGATIVE_PRICE = "negative_price"
    ZERO_SIZE = "zero_size"
    NEGATIVE_SIZE = "negative_size"
    CROSSED_QUOTE = "crossed_quote"
    """bid > ask by 1 to 3 ticks."""
    DUPLICATE_SEQ = "duplicate_seq"
    """An exact re-send of an earlier tick, 1 ms to 2 s later (`ref_pos` points at it)."""
    OUT_OF_ORDER = "out_of_order"
    """A tick held back until after the next tick of its (venue, symbol) stream (at most 3 s)."""
    LATE = "late"
    """A trade delivered 1 to 10 minutes after its event time."""
    DUPLICATE_EXEC = "duplicate_exec"
    """An exact re-send of an execution report (same exec_id), 1 ms to 2 s later."""
    GARBAGE = "garbage"
    """Bytes that do not decode, written beside the record at `ref_pos`."""


class Reason:
    """Expected verdicts: the tick filter's reject codes and the codec's decode errors."""

    NON_POSITIVE_PRICE = "non_positive_price"
    NON_POSITIVE_SIZE = "non_positive_size"
    CROSSED_QUOTE = "crossed_quote"
    DUPLICATE_SEQ = "duplicate_seq"
    SEQ_TOO_OLD = "seq_too_old"
    OUTSIDE_QUOTE = "outside_quote"
    PRICE_OUTLIER = "price_outlier"
    DUPLICATE_EXEC = "duplicate"
    """The order state machine's classification of a repeated exec_id."""
    BAD_MAGIC = "bad_magic"
    TOO_SHORT = "too_short"
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    TRUNCATED_BODY = "truncated_body"


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """Everything the generator depends on. Rates are market-wide averages per second of
    event time (bursts included); `duration_s` is event time; nothing reads a clock."""

    seed: int = 7
    n_symbols: int = 20
    n_accounts: int = 5
    start_us: int = DEFAULT_START_US
    duration_s: float = 600.0
    trade_rate: float = 100.0
    quote_rate: float = 300.0
    order_rate: float = 2.0
    fault_rate: float = 0.01
    venues: tuple[str, ...] = ("XNAS", "XNYS", "ARCX", "BATS")
    daily_vol: float = 0.02
    """Typical daily volatility of a symbol's mid (each symbol gets 0.5x to 1.5x of it)."""
    commission_bps: int = 1
    max_trades: int | None = None
    """Stop once this many trade events were generated (faulty ones included)."""

    def __post_init__(self) -> None:
        if not 1 <= self.n_symbols <= 999:
            raise ValueError("n_symbols must be between 1 and 999")
        if self.n_accounts < 0:
            raise ValueError("n_accounts must not be negative")
        if self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        if self.trade_rate <= 0 or self.quote_rate <= 0 or self.order_rate < 0:
            raise ValueError("trade_rate and quote_rate must be positive, order_rate >= 0")
        if not 0.0 <= self.fault_rate <= 0.5:
            raise ValueError("fault_rate must be between 0 and 0.5")
        if not self.venues or len(set(self.venues)) != len(self.venues):
            raise ValueError("venues must be a non-empty tuple of distinct names")
        if not 0.0 < self.daily_vol < 0.5:
            raise ValueError("daily_vol must be between 0 and 0.5")
        if self.max_trades is not None and self.max_trades < 0:
            raise ValueError("max_trades must not be negative")
        object.__setattr__(self, "venues", tuple(self.venues))

    @property
    def end_us(self) -> int:
        return self.start_us + round(self.duration_s * 1e6)

    @property
    def run_tag(self) -> str:
        """Six hex digits naming what the order flow depends on; prefixes order ids."""
        text = repr(
            (
                self.seed,
                self.n_symbols,
                self.n_accounts,
                self.start_us,
                self.trade_rate,
                self.quote_rate,
                self.order_rate,
                self.venues,
                self.daily_vol,
                self.commission_bps,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:6]

    def rng(self, purpose: str) -> Random:
        """An independent generator per concern (seeding from a str is stable across runs)."""
        return Random(f"tapeflow/{self.seed}/{purpose}")


class Instrument(NamedTuple):
    """Reference data of one symbol. Prices and sizes scale-8 units; session times are
    microseconds since midnight UTC; the price band is `ref_price` +/- `price_band_pct` %."""

    symbol: str
    tick_size: int
    lot_size: int
    session_open: int
    session_close: int
    ref_price: int
    price_band_pct: int
    """Percent, scale-8 units (10 % = 10 * ONE), as the `instruments` table's price_band_pct."""

    @property
    def band_low(self) -> int:
        """Lowest price inside the band, on the tick grid."""
        width: int = self.ref_price * self.price_band_pct // (100 * ONE)
        low = self.ref_price - width
        return -(-low // self.tick_size) * self.tick_size

    @property
    def band_high(self) -> int:
        """Highest price inside the band, on the tick grid."""
        width: int = self.ref_price * self.price_band_pct // (100 * ONE)
        return (self.ref_price + width) // self.tick_size * self.tick_size


class Garbage(NamedTuple):
    """A value on `topic` that must not decode: the pipeline dead-letters it.

    `raw` is the value as produced, except for the `truncated_body` variant, whose bytes depend
    on the schema ids of the codec in use: there `raw` is empty and `frame(encode)` returns the
    encoded `truncated` record with its last `cut` bytes removed (header always kept).
    """

    topic: str
    raw: bytes
    key: str
    variant: str
    """The decode error it must produce (`Reason.BAD_MAGIC`, ...)."""
    truncated: Record | None = None
    cut: int = 0

    def frame(self, encode: Callable[[Record], bytes]) -> bytes:
        """The bytes to produce, given the codec's Confluent-framing encoder."""
        if self.truncated is None:
            return self.raw
        full = encode(self.truncated)
        keep = max(len(full) - self.cut, HEADER_LEN + 1)
        return full[: min(keep, len(full) - 1)]


class Label(NamedTuple):
    """The truth about the record at stream position `pos`."""

    pos: int
    """Position in the arrival-ordered stream of all topics (`Market.stream()`)."""
    topic: str
    row: int
    """Index in the market's list for this kind (= row of its Parquet file)."""
    kind: str
    """"trade", "quote", "execution" or "garbage"."""
    fault: str
    """A `Fault` value; "clean" for an untouched record."""
    expected_reason: str | None
    """Tick filter reject code, codec decode error, or order-machine "duplicate"; None when
    the record must be accepted (clean, out-of-order and late ticks inside the windows)."""
    symbol: str | None
    venue: str | None
    seq: int | None
    ts_event: int
    """Event time, int micros (for garbage: the record it was written beside)."""
    key: str
    """The Kafka key: symbol for market data, account_id for executions."""
    ref_pos: int | None = None
    """Duplicates: the original's position. Garbage: the record it was written beside."""
    delay_us: int | None = None
    """Arrival minus event time, for records that arrived late (duplicates included)."""
    magnitude_bps: int | None = None
    """Price spikes: the intended move in basis points of the clean price."""
    field: str | None = None
    """The corrupted field (price, size, bid_px, ask_sz, ...)."""
    original: int | None = None
    """The corrupted field's clean value."""


class Market:
    """The output of `generate_market`: records in arrival order and their truth.

    `trades`, `quotes`, `executions` and `garbage` each hold that kind in arrival order.
    `codes[pos]` (0 trade, 1 quote, 2 execution, 3 garbage) and `rows[pos]` say where stream
    position `pos` lives; `faults` holds the labels of non-clean positions (clean labels are
    built on demand by `labels`, which is a full `Sequence[Label]` aligned with `stream()`).
    """

    def __init__(
        self,
        *,
        spec: MarketSpec,
        instruments: tuple[Instrument, ...],
        trades: list[Trade],
        quotes: list[Quote],
        executions: list[ExecutionReport],
        garbage: list[Garbage],
        codes: bytearray,
        rows: array[int],
        faults: dict[int, Label],
        orders_created: int,
    ) -> None:
        self.spec = spec
        self.instruments = instruments
        self.trades = trades
        self.quotes = quotes
        self.executions = executions
        self.garbage = garbage
        self.codes = codes
        self.rows = rows
        self.faults = faults
        self.orders_created = orders_created

    def __len__(self) -> int:
        return len(self.codes)

    def record(self, pos: int) -> Record | Garbage:
        code = self.codes[pos]
        row = self.rows[pos]
        if code == CODE_TRADE:
            return self.trades[row]
        if code == CODE_QUOTE:
            return self.quotes[row]
        if code == CODE_EXECUTION:
            return self.executions[row]
        return self.garbage[row]

    def stream(self) -> Iterator[tuple[str, str, Record | Garbage]]:
        """(topic, key, value) in arrival order: what to produce, one message each."""
        lists: tuple[Sequence[Record | Garbage], ...] = (
            self.trades,
            self.quotes,
            self.executions,
            self.garbage,
        )
        for code, row in zip(self.codes, self.rows, strict=True):
            value = lists[code][row]
            if code <= CODE_QUOTE:
                yield TOPICS[code], value.symbol, value  # type: ignore[union-attr]
            elif code == CODE_EXECUTION:
                yield TOPIC_EXECUTIONS, value.account_id, value  # type: ignore[union-attr]
            else:
                yield value.topic, value.key, value  # type: ignore[union-attr]

    @property
    def labels(self) -> Labels:
        return Labels(self)

    def label(self, pos: int) -> Label:
        found = self.faults.get(pos)
        if found is not None:
            return found
        return _clean_label(pos, self.codes[pos], self.rows[pos], self.record(pos))  # type: ignore[arg-type]

    def fault_labels(self) -> list[Label]:
        return [self.faults[pos] for pos in sorted(self.faults)]

    def summary(self) -> dict[str, int]:
        """Counts by kind and by fault, for logs and the CLI."""
        out = {
            "records": len(self.codes),
            "trades": len(self.trades),
            "quotes": len(self.quotes),
            "executions": len(self.executions),
            "garbage": len(self.garbage),
            "orders": self.orders_created,
            "faults": len(self.faults),
        }
        for fault in Fault:
            if fault is not Fault.CLEAN:
                out[f"fault.{fault.value}"] = 0
        for lab in self.faults.values():
            out[f"fault.{lab.fault}"] += 1
        return out


def _clean_label(pos: int, code: int, row: int, rec: Record) -> Label:
    if code == CODE_EXECUTION:
        er: ExecutionReport = rec  # type: ignore[assignment]
        return Label(
            pos, TOPIC_EXECUTIONS, row, "execution", "clean", None, er.symbol, None, None,
            er.ts_event, er.account_id,
        )  # fmt: skip
    tick: Trade | Quote = rec  # type: ignore[assignment]
    return Label(
        pos, TOPICS[code], row, KIND_NAMES[code], "clean", None, tick.symbol, tick.venue,
        tick.seq, tick.ts_event, tick.symbol,
    )  # fmt: skip


class Labels(Sequence[Label]):
    """All labels of a market, position by position, built lazily."""

    def __init__(self, market: Market) -> None:
        self._m = market

    def __len__(self) -> int:
        return len(self._m.codes)

    @overload
    def __getitem__(self, index: int) -> Label: ...
    @overload
    def __getitem__(self, index: slice) -> list[Label]: ...
    def __getitem__(self, index: int | slice) -> Label | list[Label]:
        if isinstance(index, slice):
            return [self._m.label(i) for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(index)
        return self._m.label(index)

    def __iter__(self) -> Iterator[Label]:
        m = self._m
        faults = m.faults
        lists: tuple[Sequence[Record | Garbage], ...] = (m.trades, m.quotes, m.executions, [])
        for pos, (code, row) in enumerate(zip(m.codes, m.rows, strict=True)):
            found = faults.get(pos)
            yield found if found is not None else _clean_label(pos, code, row, lists[code][row])  # type: ignore[arg-type]


def make_instruments(spec: MarketSpec) -> tuple[Instrument, ...]:
    """The reference data: SYM001..SYMnnn, mostly 1-cent ticks and one-share lots, every
    tenth from the eighth a 5-cent board-lot name (lot 100), every tenth a sub-dollar name
    with a 0.0001 tick. US equity hours in UTC (14:30-21:00, winter), band +/- 10 %."""
    rng = spec.rng("instruments")
    out = []
    for i in range(spec.n_symbols):
        kind = i % 10
        if kind == 9:
            tick, lot, low, high = ONE // 10_000, ONE, 0.2, 0.99
        elif kind == 7:
            tick, lot, low, high = 5 * ONE // 100, 100 * ONE, 5.0, 50.0
        else:
            tick, lot, low, high = ONE // 100, ONE, 10.0, 500.0
        price = low * (high / low) ** rng.random()
        ref_ticks = max(1, round(price * ONE / tick))
        out.append(
            Instrument(
                symbol=f"SYM{i + 1:03d}",
                tick_size=tick,
                lot_size=lot,
                session_open=SESSION_OPEN_US,
                session_close=SESSION_CLOSE_US,
                ref_price=ref_ticks * tick,
                price_band_pct=10 * ONE,
            )
        )
    return tuple(out)
