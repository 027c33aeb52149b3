"""The tape's model state: per-symbol mids, spreads and size laws, per-stream sequences and quotes.

Why plain lists indexed by integers: the tape's hot loop (`sources.synthetic.tape`) runs once
per event, millions of times, and reads and writes this state through local names bound once;
a symbol is its index `s`, a (venue, symbol) stream is `vs = venue * n_sym + s`. Prices here
are in ticks of the symbol (multiply by `tick[s]` for scale-8 units).

What the model is: a mid price random walk on the tick grid, reflected inside the price band,
scaled to the symbol's daily volatility; spreads of a few ticks (about 3 bp of price); sizes in
lot multiples with heavy tails; activity spread over symbols by a Zipf law and over venues as
1/k. The draw tables (`sym_table`, `sv_table`, `venue_table`, the size tables) turn one uniform
draw into a weighted choice with one index.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from math import sqrt
from random import Random

from sources.synthetic.instruments import Instrument
from sources.synthetic.spec import MarketSpec
from tapeflow.core.fixedpoint import ONE


def _lookup_table(weights: Sequence[float], size: int) -> list[int]:
    """Indices laid out so that `table[int(random() * size)]` draws by weight."""
    total = sum(weights)
    cum = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc / total)
    last = len(weights) - 1
    return [min(bisect_right(cum, (j + 0.5) / size), last) for j in range(size)]


def _quote_sizes(round_lots: int, lot: int) -> list[int]:
    """4096 equally likely quote sizes (scale-8 units): round lots with a Pareto(1.5) tail."""
    return [round_lots * int((1.0 - (j + 0.5) / 4096) ** -0.67) * lot for j in range(4096)]


def _trade_sizes(round_lots: int, lot: int) -> list[tuple[int, bool]]:
    """4096 equally likely trade sizes (scale-8 units) with their odd-lot flag: half a round
    lot times a Pareto(1.3) draw, capped at 500 round lots, rounded down to round lots when
    at least one."""
    out = []
    for j in range(4096):
        lots = int(round_lots * 0.5 * (1.0 - (j + 0.5) / 4096) ** -0.77)
        lots = min(max(lots, 1), 500 * round_lots)
        if lots >= round_lots:
            lots -= lots % round_lots
        out.append((lots * lot, lots < round_lots))
    return out


class TapeModel:
    """Per-symbol model state, in lists indexed by symbol (and venue * n_sym + symbol).

    Built from the instruments with draws from `rng` (the spec's "model" generator, which the
    tape then keeps drawing from). Lists are mutated in place, never replaced: the tape, the
    fault injection and the held-back deliveries share them.
    """

    def __init__(
        self, spec: MarketSpec, instruments: Sequence[Instrument], rng: Random
    ) -> None:
        n_sym = spec.n_symbols
        n_ven = len(spec.venues)
        self.n_sym = n_sym
        self.n_streams = n_ven * n_sym
        """(venue, symbol) streams; each has its trade and its quote sequence."""
        weights = [1.0 / (i + 1) ** 0.7 for i in range(n_sym)]
        total_w = sum(weights)
        self.sym_table = _lookup_table(weights, max(4096, 16 * n_sym))
        self.venue_table = _lookup_table([1.0 / (v + 1) for v in range(n_ven)], 1024)
        self.tick = [ins.tick_size for ins in instruments]
        self.lot = [ins.lot_size for ins in instruments]
        self.round_lots = [max(1, 100 * ONE // ins.lot_size) for ins in instruments]
        self.center = [ins.ref_price // ins.tick_size for ins in instruments]
        self.band_lo = [ins.band_low // ins.tick_size for ins in instruments]
        self.band_hi = [ins.band_high // ins.tick_size for ins in instruments]
        self.spread_tab: list[tuple[int, ...]] = []
        self.spread_max: list[int] = []
        self.sigma: list[float] = []
        for i in range(n_sym):
            price_ticks = self.center[i]
            base = max(1, price_ticks * 3 // 10_000)
            tab = tuple(max(1, round(base * f)) for f in (0.5, 0.75, 1, 1, 1, 1.25, 1.5, 2))
            self.spread_tab.append(tab)
            self.spread_max.append(max(tab) + 1)
            vol = spec.daily_vol * (0.5 + rng.random())
            quotes_per_s = spec.quote_rate * weights[i] / total_w
            self.sigma.append(vol * price_ticks / sqrt(23_400 * quotes_per_s))
        self.spread_cur = [tab[2] for tab in self.spread_tab]
        # Probability of a one-tick step per quote update (-1: steps are drawn from a normal).
        self.p_move = [sg * sg if sg < 1.0 else -1.0 for sg in self.sigma]
        self.p_move_burst = [4 * sg * sg if sg < 0.5 else -1.0 for sg in self.sigma]
        # (symbol, venue, venue * n_sym + symbol) drawn jointly by activity.
        pairs = [(s, v, v * n_sym + s) for s in range(n_sym) for v in range(n_ven)]
        pair_w = [weights[s] / (v + 1) for s, v, _ in pairs]
        self.sv_table = [pairs[i] for i in _lookup_table(pair_w, max(65_536, 16 * len(pairs)))]
        self._init_sizes()
        self._init_streams()

    def _init_sizes(self) -> None:
        """Size tables, shared by instruments with the same lot and round lot (heavy tails:
        quote sizes ~ round lots x Pareto(1.5), trade sizes ~ half a round lot x Pareto(1.3))."""
        qtabs: dict[tuple[int, int], list[int]] = {}
        ttabs: dict[tuple[int, int], list[tuple[int, bool]]] = {}
        self.qsize_tab: list[list[int]] = []
        self.tsize_tab: list[list[tuple[int, bool]]] = []
        for i in range(self.n_sym):
            key = (self.round_lots[i], self.lot[i])
            if key not in qtabs:
                qtabs[key] = _quote_sizes(*key)
                ttabs[key] = _trade_sizes(*key)
            self.qsize_tab.append(qtabs[key])
            self.tsize_tab.append(ttabs[key])

    def _init_streams(self) -> None:
        """Per-stream state (index `vs`), and the symbol's last quote over all venues."""
        nvs = self.n_streams
        self.tseq = [0] * nvs
        """Last trade sequence number drawn per stream."""
        self.qseq = [0] * nvs
        """Last quote sequence number drawn per stream."""
        self.ttop = [0] * nvs
        """Highest trade sequence number the consumer has seen per stream."""
        self.qtop = [0] * nvs
        """Highest quote sequence number the consumer has seen per stream."""
        self.vq_bid = [0] * nvs
        """The venue's prevailing (visible) quote, in ticks, and its event time."""
        self.vq_ask = [0] * nvs
        self.vq_ts = [0] * nvs
        self.sq_bid = [0] * self.n_sym
        """The symbol's last visible quote over all venues, in ticks."""
        self.sq_ask = [0] * self.n_sym
        self.n_clean_vs = [0] * nvs
        """Clean trades printed per stream (a spike needs some history first)."""

    def book_units(self, s: int) -> tuple[int, int]:
        """Symbol `s`'s current inside (bid, ask) in scale-8 units: what the orders price off."""
        sp = self.spread_cur[s]
        bid = self.center[s] - sp // 2
        return bid * self.tick[s], (bid + sp) * self.tick[s]
