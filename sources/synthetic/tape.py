"""The tape simulation: `generate_market`, and the hot loop that draws trades and quotes.

Why one inlined loop: it runs once per event (millions per run), so it binds everything it
touches to local names once, draws (symbol, venue) and trade-or-quote with a single uniform
draw, and appends clean ticks straight to the output lists. Everything rarer leaves the loop:
faults go to `FaultInjector`, records due later and the order flow's steps to `Schedule`
(checked with one comparison per event, `schedule.next_due`).

The clock: events arrive as a Poisson process over the market-wide rate, with bursts (a
memoryless regime switch, every ~60 s for ~4 s: the rate x4, half of it on one hot symbol,
doubled volatility, intermarket sweeps "F"). A trade prints at the bid, at the ask or inside,
never outside its venue's last quote nor the symbol's last quote (a venue whose quote went
stale quotes first, at the same time); a quote update moves the mid along its random walk
(reflected inside the band) and redraws the spread, sometimes a tick wider at the venue.
Sequence numbers count per (venue, symbol), separately for trades and quotes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from math import log

from sources.synthetic.arrivals import Arrivals
from sources.synthetic.faults import VISIBLE, FaultInjector
from sources.synthetic.instruments import make_instruments
from sources.synthetic.market import Market
from sources.synthetic.order_lifecycle import Book
from sources.synthetic.orders import INF, OrderSim
from sources.synthetic.records import CODE_QUOTE, CODE_TRADE
from sources.synthetic.schedule import Schedule
from sources.synthetic.spec import MarketSpec
from sources.synthetic.tape_model import TapeModel
from tapeflow.core.models import ExecutionReport, Quote, Trade


def generate_market(spec: MarketSpec | None = None) -> Market:
    """Generate the whole market for `spec` (default `MarketSpec()`); deterministic."""
    with paused_gc():
        return TapeSim(spec or MarketSpec()).run()


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of acyclic tuples.

    Each full collection would walk every record built so far; pausing it is ~25 % faster
    at a million trades. Reference counting still frees memory as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class TapeSim:
    """One generation run. The hot loop lives in `run`; faults take the slow paths."""

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.instruments = make_instruments(spec)
        self.model_rng = spec.rng("model")
        self.model = TapeModel(spec, self.instruments, self.model_rng)
        self.out = Arrivals()
        books = [
            Book(ins.symbol, ins.tick_size, ins.lot_size, self.model.round_lots[i])
            for i, ins in enumerate(self.instruments)
        ]
        accounts = [f"ACC{a + 1:03d}" for a in range(spec.n_accounts)]
        self.orders = OrderSim(
            rng=spec.rng("orders"),
            books=books,
            symbol_table=self.model.sym_table,
            accounts=accounts,
            order_rate=spec.order_rate,
            start_us=spec.start_us,
            end_us=spec.end_us,
            commission_bps=spec.commission_bps,
            id_prefix=f"{spec.run_tag}-",
            quote=self.model.book_units,
            emit=self._on_execution,
        )
        self.schedule = Schedule(self.model, self.out, self.orders)
        self.faults = FaultInjector(spec, self.model, self.out, self.schedule)

    def _on_execution(self, er: ExecutionReport) -> None:
        """The order flow's reports go out through the fault injection (which may re-send or
        garble one); a method here because the injector needs the schedule, which needs the
        order simulator."""
        self.faults.on_execution(er)

    def run(self) -> Market:  # noqa: PLR0915 - one inlined loop on purpose: it runs per event
        spec = self.spec
        model, out, schedule = self.model, self.out, self.schedule
        rnd = self.model_rng.random
        gauss = self.model_rng.gauss
        frnd = self.faults.rng.random
        trade_fault, quote_fault = self.faults.trade_fault, self.faults.quote_fault
        advance, release = schedule.advance, schedule.release
        fault_rate = spec.fault_rate
        start = spec.start_us
        dur_us = spec.end_us - start
        max_trades = spec.max_trades if spec.max_trades is not None else INF
        venues = spec.venues
        symbols = [ins.symbol for ins in self.instruments]
        n_sym = model.n_sym
        quote_key_base = model.n_streams
        sym_table = model.sym_table
        n_st = len(sym_table)
        sv_table = model.sv_table
        n_sv = len(sv_table)
        venue_table = model.venue_table
        n_vt = len(venue_table)
        tick_l = model.tick
        center, spread_cur, spread_tab = model.center, model.spread_cur, model.spread_tab
        spread_max, sigma, p_move, p_move_burst = (
            model.spread_max,
            model.sigma,
            model.p_move,
            model.p_move_burst,
        )
        band_lo, band_hi = model.band_lo, model.band_hi
        qsize_tab, tsize_tab = model.qsize_tab, model.tsize_tab
        tseq, qseq, ttop, qtop = model.tseq, model.qseq, model.ttop, model.qtop
        vq_bid, vq_ask, vq_ts = model.vq_bid, model.vq_ask, model.vq_ts
        sq_bid, sq_ask = model.sq_bid, model.sq_ask
        n_clean_vs = model.n_clean_vs
        trades, quotes = out.trades, out.quotes
        codes_append, rows_append = out.codes.append, out.rows.append
        trades_append, quotes_append = trades.append, quotes.append
        held = schedule.held
        new = tuple.__new__  # NamedTuple construction without its Python-level __new__

        p_trade = spec.trade_rate / (spec.trade_rate + spec.quote_rate)
        burst_mult = 4.0
        normal_gap_us = 60e6
        burst_len_us = 4e6
        avg_mult = (normal_gap_us + burst_mult * burst_len_us) / (normal_gap_us + burst_len_us)
        base_rate = (spec.trade_rate + spec.quote_rate) / 1e6 / avg_mult
        burst_rate = base_rate * burst_mult
        rate = base_rate
        no_cond: tuple[str, ...] = ()
        odd_cond: tuple[str, ...] = ("I",)
        iso_cond: tuple[str, ...] = ("F",)
        iso_odd_cond: tuple[str, ...] = ("F", "I")

        t = 0.0
        in_burst = False
        hot = 0
        next_switch = -log(1.0 - rnd()) * normal_gap_us
        n_trades = 0
        ts = start
        while True:
            t += -log(1.0 - rnd()) / rate
            if t >= next_switch:  # burst regime switch (memoryless, so the draw restarts)
                t = next_switch
                in_burst = not in_burst
                if in_burst:
                    hot = sym_table[int(rnd() * n_st)]
                    next_switch = t - log(1.0 - rnd()) * burst_len_us
                    rate = burst_rate
                else:
                    next_switch = t - log(1.0 - rnd()) * normal_gap_us
                    rate = base_rate
                continue
            if t >= dur_us or n_trades >= max_trades:
                break
            ts = start + int(t)
            if ts >= schedule.next_due:
                advance(ts)
            # One draw picks (symbol, venue) and, from its fractional part, trade or quote.
            x = rnd() * n_sv
            j = int(x)
            is_trade = x - j < p_trade
            if in_burst and rnd() < 0.5:
                s = hot
                v = venue_table[int(rnd() * n_vt)]
                vs = v * n_sym + s
            else:
                s, v, vs = sv_table[j]
            tk = tick_l[s]
            if is_trade:
                # A trade, inside the venue's and the symbol's last quotes.
                n_trades += 1
                lo = vq_bid[vs]
                hi = vq_ask[vs]
                lo = max(lo, sq_bid[s])
                hi = min(hi, sq_ask[s])
                if lo > hi or vq_bid[vs] == 0:  # stale or no venue quote: it quotes first
                    sp = spread_cur[s]
                    lo = center[s] - sp // 2
                    hi = lo + sp
                    seq = qseq[vs] + 1
                    qseq[vs] = seq
                    qtop[vs] = seq
                    qs = qsize_tab[s]
                    k = int(rnd() * 16_777_216)
                    codes_append(CODE_QUOTE)
                    rows_append(len(quotes))
                    quotes_append(
                        new(
                            Quote,
                            (
                                symbols[s], venues[v], ts, seq,
                                lo * tk, qs[k >> 12], hi * tk, qs[k & 4095],
                            ),
                        )
                    )  # fmt: skip
                    vq_bid[vs] = sq_bid[s] = lo
                    vq_ask[vs] = sq_ask[s] = hi
                    vq_ts[vs] = ts
                    if held:
                        release(quote_key_base + vs, ts)
                u = rnd()
                if u < 0.45:
                    px = hi
                elif u < 0.9:
                    px = lo
                else:
                    px = lo + int((u - 0.9) * 10.0 * (hi - lo + 1))
                size, odd = tsize_tab[s][int(rnd() * 4096)]
                if in_burst and rnd() < 0.1:
                    cond = iso_odd_cond if odd else iso_cond
                else:
                    cond = odd_cond if odd else no_cond
                seq = tseq[vs] + 1
                tseq[vs] = seq
                venue = venues[v]
                symbol = symbols[s]
                rec = new(
                    Trade, (symbol, venue, ts, seq, px * tk, size, f"{venue}.{symbol}.{seq}", cond)
                )
                if frnd() >= fault_rate:
                    codes_append(CODE_TRADE)
                    rows_append(len(trades))
                    trades_append(rec)
                    ttop[vs] = seq
                    n_clean_vs[vs] += 1
                    if held:
                        release(vs, ts)
                elif trade_fault(rec, s, vs) and held:
                    release(vs, ts)
            else:
                # A quote update: the mid walks, the spread is redrawn.
                c = center[s]
                pm = p_move_burst[s] if in_burst else p_move[s]
                if pm >= 0.0:
                    u = rnd()
                    step = 0 if u >= pm else 1 if u < pm * 0.5 else -1
                else:
                    step = round(gauss(0.0, sigma[s] * (2.0 if in_burst else 1.0)))
                if step:
                    half = spread_max[s]
                    if c + step - half < band_lo[s] or c + step + half > band_hi[s]:
                        step = -step
                    c += step
                    center[s] = c
                # One draw: the spread (integer part) and the venue's offset (fraction).
                x = rnd() * 8.0
                k = int(x)
                sp = spread_tab[s][k]
                spread_cur[s] = sp
                bid = c - sp // 2
                ask = bid + sp
                u = x - k
                if u < 0.15:
                    if bid > 1:
                        bid -= 1
                elif u < 0.3:
                    ask += 1
                seq = qseq[vs] + 1
                qseq[vs] = seq
                qs = qsize_tab[s]
                k = int(rnd() * 16_777_216)
                rec_q = new(
                    Quote,
                    (symbols[s], venues[v], ts, seq, bid * tk, qs[k >> 12], ask * tk, qs[k & 4095]),
                )
                if frnd() >= fault_rate:
                    codes_append(CODE_QUOTE)
                    rows_append(len(quotes))
                    quotes_append(rec_q)
                    qtop[vs] = seq
                    how = VISIBLE
                else:
                    how = quote_fault(rec_q, s, vs)
                if how == VISIBLE:
                    vq_bid[vs] = sq_bid[s] = bid
                    vq_ask[vs] = sq_ask[s] = ask
                    vq_ts[vs] = ts
                if how and held:
                    release(quote_key_base + vs, ts)

        # The market stopped: finish order steps up to then, then everything held back.
        stop = start + dur_us if n_trades < max_trades else ts
        self.orders.stop_after(stop)
        advance(INF)
        return out.market(spec, self.instruments, self.orders.orders_created)
