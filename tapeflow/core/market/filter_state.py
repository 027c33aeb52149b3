"""What the tick filter remembers, and the exact rolling references it judges against.

Why the references are kept as a ring plus a *possibly stale* sorted snapshot, not a sorted
window updated on every tick: in CPython 3.11 a `bisect`/`insort` pair on a 50-element list
costs about 0.5-0.8 us, more than all the other rules together. Most ticks are nowhere near a
threshold, and that can be proved from an older snapshot:

    if the window has had d single-element replacements since the snapshot S (sorted, size n),
    every order statistic of rank r now lies in [S[r - d], S[r + d]].

So the median (rank h = n // 2, or the floor of the mean of ranks h - 1 and h) lies in
[S[h - 1 - d], S[h + d]], and a price within `band` of both ends, where `band` is a lower bound
of the threshold, is certainly not an outlier. Only when that shortcut cannot decide is the
window sorted again and the exact rule applied. The verdicts are therefore exactly those of a
window re-sorted on every tick (a test checks this against a naive implementation); only the
cost changes.

Mutable by design (see `tapeflow.core.market.tick_filter`): owned by one partition of keys, advanced
in place, picklable for snapshots.
"""

from __future__ import annotations

from tapeflow.core.market.filter_config import FilterConfig
from tapeflow.core.market.sequence import SeqMode, SeqTracker

NO_TIME = -(2**64)
"""Below any Avro-long timestamp: nothing has joined the price reference yet."""


class KeyState:
    """Everything the filter remembers about one (venue, symbol)."""

    __slots__ = (
        "ask",
        "bid",
        "prices",
        "prices_band",
        "prices_newest",
        "prices_pos",
        "prices_sorted",
        "prices_stale",
        "quote_seq",
        "quote_ts",
        "run",
        "spreads",
        "spreads_pos",
        "spreads_sorted",
        "spreads_stale",
        "tick",
        "trade_seq",
    )

    def __init__(self, tick: int, seq_mode: SeqMode = SeqMode.UNIQUE) -> None:
        self.tick = tick
        self.trade_seq = SeqTracker(seq_mode)
        self.quote_seq = SeqTracker(seq_mode)
        # Trade prices: ring in arrival order, sorted snapshot, replacements since the snapshot
        # (set to the window size while the ring grows, which forces an exact re-sort), and a
        # lower bound of the outlier threshold valid while the snapshot is in use.
        self.prices: list[int] = []
        self.prices_pos = 0
        self.prices_sorted: list[int] = []
        self.prices_stale = 0
        self.prices_band = 0
        # The newest ts_event of a trade that joined the reference (a running maximum; it is
        # not lowered when that trade leaves the window or on a re-anchor): the clock against
        # which a late trade is recognised (`FilterConfig.outlier_max_age_us`).
        self.prices_newest = NO_TIME
        self.run: list[int] = []
        self.spreads: list[int] = []
        self.spreads_pos = 0
        self.spreads_sorted: list[int] = []
        self.spreads_stale = 0
        self.bid = 0
        self.ask = 0
        self.quote_ts: int | None = None

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyState):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]


class FilterState:
    """Per-(venue, symbol) filter memory plus counters per kind and reason.

    Counter names: `trade.accepted`, `trade.<reason code>`, `trade.seq_gaps`,
    `trade.seq_missing`, `trade.seq_gap_fills`, `trade.seq_resets`, `trade.reanchors`,
    `trade.outlier_skipped_stale` (late trades the outlier rule did not judge),
    `trade.reference_resets` (a long gap in event time started a new price reference),
    `trade.inside_quote_outliers` (outliers accepted because they trade inside a fresh quote),
    `trade.seq_shared` (another message of a packet already seen), and the same with `quote.`
    where they apply.
    """

    __slots__ = ("counters", "keys")

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], KeyState] = {}
        # A plain dict with the hot keys present: exact-dict subscripts are the fast path in
        # CPython 3.11 (a Counter subclass is not); rare keys are added with `count`.
        self.counters: dict[str, int] = {"trade.accepted": 0, "quote.accepted": 0}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FilterState):
            return NotImplemented
        return self.keys == other.keys and self.counters == other.counters

    __hash__ = None  # type: ignore[assignment]


def count(counters: dict[str, int], key: str, n: int = 1) -> None:
    counters[key] = counters.get(key, 0) + n


def _median(srt: list[int]) -> int:
    n = len(srt)
    half = n >> 1
    return srt[half] if n & 1 else (srt[half - 1] + srt[half]) >> 1


def price_outlier(ks: KeyState, price: int, config: FilterConfig) -> tuple[bool, int]:
    """The exact outlier rule on the current window: (is outlier, threshold)."""
    srt = ks.prices_sorted
    if ks.prices_stale:
        srt = ks.prices_sorted = sorted(ks.prices)
        ks.prices_stale = 0
        num, den = config.median_ratio
        ks.prices_band = max(config.outlier_min_ticks * ks.tick, srt[0] * num // den)
    n = len(srt)
    median = _median(srt)
    deviation = abs(price - median)
    limit = config.outlier_min_ticks * ks.tick
    if deviation <= limit:
        return False, limit
    q = (n - 1) >> 2
    num, den = config.iqr_ratio
    by_iqr = (srt[n - 1 - q] - srt[q]) * num // den
    num, den = config.median_ratio
    limit = max(limit, by_iqr, median * num // den)
    return deviation > limit, limit


def clear_reference(ks: KeyState, window: int) -> None:
    """Start a new price reference (a long gap in event time): warm-up again."""
    ks.prices = []
    ks.prices_pos = 0
    ks.prices_sorted = []
    ks.prices_stale = window
    ks.run = []


def reseed(ks: KeyState, run: list[int], window: int) -> None:
    """Re-anchor: the price reference becomes the agreeing run (see
    `tapeflow.core.market.tick_filter`)."""
    ks.prices = list(run)
    ks.prices_pos = 0
    ks.prices_stale = window
    ks.run = []


def spread_limit(ks: KeyState, config: FilterConfig) -> int:
    """The exact wide-spread threshold on the current window."""
    srt = ks.spreads_sorted
    if ks.spreads_stale:
        srt = ks.spreads_sorted = sorted(ks.spreads)
        ks.spreads_stale = 0
    num, den = config.spread_ratio
    return max(_median(srt) * num // den, config.spread_min_ticks * ks.tick)
