"""A deterministic synthetic market: the tape, the order flow, injected faults, and the truth.

`generate_market(MarketSpec(seed=7))` returns a `Market`: instruments, trades, quotes and
execution reports in *arrival* order (the order a producer writes them to Kafka), the
undecodable records (`Garbage`) that a broken producer would write, and one `Label` per
record saying what it is, which fault (if any) was injected, and which verdict the pipeline
should reach. Tests, the demo and the benchmarks all read from here.

Determinism: every draw comes from `random.Random` instances seeded from the spec (one per
concern: the model, the tick faults, the orders, the execution faults; so the order flow never
changes the tape), there is no clock, no global random state, and no iteration over hashed
strings. The same spec gives the same records on every run, whatever PYTHONHASHSEED (and
`sources.synthetic.parquet` the same bytes).

The model, per symbol: a mid price random walk on the tick grid (reflected inside the price
band) moved by quote updates; spreads of a few ticks; venue quotes sometimes a tick off the
inside; trades at the bid, at the ask or inside, never outside the venue's last quote nor the
symbol's last quote (a venue whose quote went stale gets a fresh quote first); sizes in lot
multiples with a heavy tail, odd lots flagged "I"; activity spread over symbols by a Zipf law,
with bursts (market rate x4, half of it on one hot symbol, intermarket sweeps "F"). Sequence
numbers count per (venue, symbol), separately for trades and quotes.

Faults (see `Fault` and `Label.expected_reason`) are injected into `fault_rate` of the clean events
of each stream; the expected verdicts mirror `tapeflow.core.market.tick_filter`'s documented rules
with its default settings and the codec's decode reasons, and are computed from what the consumer
will have seen when the record arrives (for example a re-sent tick more than 4096 sequence
numbers behind is `seq_too_old`, not `duplicate_seq`; a price spike is `outside_quote` when
its venue's prevailing quote is at most 10 s old, since that rule comes first, else
`price_outlier`).
"""

from __future__ import annotations

import gc
import heapq
from array import array
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from math import log, sqrt
from random import Random

from sources.synthetic.orders import INF, Book, OrderSim
from sources.synthetic.types import (
    CODE_EXECUTION,
    CODE_GARBAGE,
    CODE_QUOTE,
    CODE_TRADE,
    DEFAULT_START_US,
    HEADER_LEN,
    KIND_NAMES,
    QUOTE_MAX_AGE_US,
    SEQ_WINDOW,
    SESSION_CLOSE_US,
    SESSION_OPEN_US,
    TOPIC_EXECUTIONS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    TOPICS,
    Fault,
    Garbage,
    Instrument,
    Label,
    Labels,
    Market,
    MarketSpec,
    Reason,
    Record,
    make_instruments,
)
from tapeflow.core.fixedpoint import ONE
from tapeflow.core.models import ExecutionReport, Quote, Trade

GARBAGE_VARIANTS: tuple[tuple[str, int], ...] = (
    (Reason.BAD_MAGIC, 4),
    (Reason.TRUNCATED_BODY, 3),
    (Reason.UNKNOWN_SCHEMA_ID, 2),
    (Reason.TOO_SHORT, 1),
)
"""Garbage variants (named by the decode error they must produce) and their weights."""

TRADE_FAULTS: tuple[tuple[Fault, int], ...] = (
    (Fault.PRICE_SPIKE, 4),
    (Fault.ZERO_PRICE, 1),
    (Fault.NEGATIVE_PRICE, 1),
    (Fault.ZERO_SIZE, 1),
    (Fault.NEGATIVE_SIZE, 1),
    (Fault.DUPLICATE_SEQ, 2),
    (Fault.OUT_OF_ORDER, 2),
    (Fault.LATE, 2),
    (Fault.GARBAGE, 1),
)
QUOTE_FAULTS: tuple[tuple[Fault, int], ...] = (
    (Fault.CROSSED_QUOTE, 4),
    (Fault.ZERO_PRICE, 1),
    (Fault.NEGATIVE_PRICE, 1),
    (Fault.ZERO_SIZE, 1),
    (Fault.NEGATIVE_SIZE, 1),
    (Fault.DUPLICATE_SEQ, 2),
    (Fault.OUT_OF_ORDER, 2),
    (Fault.GARBAGE, 1),
)
EXECUTION_FAULTS: tuple[tuple[Fault, int], ...] = ((Fault.DUPLICATE_EXEC, 3), (Fault.GARBAGE, 1))

_SPIKE_BPS = (100, -100, 200, -200, 500, -500, 1000, -1000, 2000, -2000, 5000, -5000, -9000, 90000)
"""Spike magnitudes in basis points of the clean price (-90 % and +900 %: a shifted decimal)."""
_HELD = 0
_IN_PLACE = 1
_VISIBLE = 2
_SPIKE_MIN_HISTORY = 20
"""Clean trades a (venue, symbol) must have printed before a spike is injected into it."""


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


def _fault_table(weights: Sequence[tuple[Fault, int]]) -> list[Fault]:
    return [fault for fault, w in weights for _ in range(w)]


class _Pending:
    """A record held back from its natural place in the stream."""

    __slots__ = ("code", "done", "fault", "hold_key", "rec", "ref_pos", "vs")

    def __init__(
        self,
        code: int,
        rec: Record,
        fault: Fault,
        vs: int = -1,
        *,
        ref_pos: int | None = None,
        hold_key: int = -1,
    ) -> None:
        self.code = code
        self.rec = rec
        self.fault = fault
        self.vs = vs
        """venue * n_symbols + symbol, for ticks."""
        self.ref_pos = ref_pos
        self.hold_key = hold_key
        self.done = False


def generate_market(spec: MarketSpec | None = None) -> Market:
    """Generate the whole market for `spec` (default `MarketSpec()`); deterministic."""
    with paused_gc():
        return _Sim(spec or MarketSpec()).run()


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


class _Sim:
    """One generation run. The hot loop lives in `run`; faults take the slow paths."""

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.instruments = make_instruments(spec)
        self.n_sym = spec.n_symbols
        self.trades: list[Trade] = []
        self.quotes: list[Quote] = []
        self.executions: list[ExecutionReport] = []
        self.garbage: list[Garbage] = []
        self.codes = bytearray()
        self.rows: array[int] = array("q")
        self.faults: dict[int, Label] = {}
        self.delayed: list[tuple[int, int, _Pending]] = []
        self.held: dict[int, list[_Pending]] = {}
        self.n_pending = 0
        self.aux_next = INF
        self.frng = spec.rng("faults")
        self.xrng = spec.rng("execution-faults")
        self.model_rng = spec.rng("model")
        self._init_model()
        books = [
            Book(ins.symbol, ins.tick_size, ins.lot_size, self.round_lots[i])
            for i, ins in enumerate(self.instruments)
        ]
        accounts = [f"ACC{a + 1:03d}" for a in range(spec.n_accounts)]
        self.orders = OrderSim(
            rng=spec.rng("orders"),
            books=books,
            symbol_table=self.sym_table,
            accounts=accounts,
            order_rate=spec.order_rate,
            start_us=spec.start_us,
            end_us=spec.end_us,
            commission_bps=spec.commission_bps,
            id_prefix=f"{spec.run_tag}-",
            quote=self._book_units,
            emit=self._on_execution,
        )
        self.aux_next = self.orders.next_ts
        self.trade_faults = _fault_table(TRADE_FAULTS)
        self.quote_faults = _fault_table(QUOTE_FAULTS)
        self.exec_faults = _fault_table(EXECUTION_FAULTS)
        self.garbage_variants = [v for v, w in GARBAGE_VARIANTS for _ in range(w)]

    def _init_model(self) -> None:
        """Per-symbol model state, in lists indexed by symbol (and venue * n_sym + symbol)."""
        spec = self.spec
        n_sym = spec.n_symbols
        n_ven = len(spec.venues)
        rng = self.model_rng
        weights = [1.0 / (i + 1) ** 0.7 for i in range(n_sym)]
        total_w = sum(weights)
        self.sym_table = _lookup_table(weights, max(4096, 16 * n_sym))
        self.venue_table = _lookup_table([1.0 / (v + 1) for v in range(n_ven)], 1024)
        self.tick = [ins.tick_size for ins in self.instruments]
        self.lot = [ins.lot_size for ins in self.instruments]
        self.round_lots = [max(1, 100 * ONE // ins.lot_size) for ins in self.instruments]
        self.center = [ins.ref_price // ins.tick_size for ins in self.instruments]
        self.band_lo = [ins.band_low // ins.tick_size for ins in self.instruments]
        self.band_hi = [ins.band_high // ins.tick_size for ins in self.instruments]
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
        nvs = n_ven * n_sym
        self.tseq = [0] * nvs
        self.qseq = [0] * nvs
        self.ttop = [0] * nvs
        self.qtop = [0] * nvs
        self.vq_bid = [0] * nvs
        self.vq_ask = [0] * nvs
        self.vq_ts = [0] * nvs
        self.sq_bid = [0] * n_sym
        self.sq_ask = [0] * n_sym
        self.n_clean_vs = [0] * nvs

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

    # -- the book, as the order simulator sees it ----------------------------------------

    def _book_units(self, s: int) -> tuple[int, int]:
        sp = self.spread_cur[s]
        bid = self.center[s] - sp // 2
        return bid * self.tick[s], (bid + sp) * self.tick[s]

    # -- emission ------------------------------------------------------------------------

    def _append(self, code: int, rec: Record | Garbage) -> int:
        pos = len(self.codes)
        self.codes.append(code)
        lists = (self.trades, self.quotes, self.executions, self.garbage)
        lst: list[Record | Garbage] = lists[code]  # type: ignore[assignment]
        self.rows.append(len(lst))
        lst.append(rec)
        return pos

    def _emit_fault(
        self,
        code: int,
        rec: Record,
        fault: Fault,
        reason: str | None,
        *,
        ref_pos: int | None = None,
        delay_us: int | None = None,
        magnitude: int | None = None,
        field: str | None = None,
        original: int | None = None,
    ) -> int:
        pos = self._append(code, rec)
        row = self.rows[pos]
        if code == CODE_EXECUTION:
            er: ExecutionReport = rec  # type: ignore[assignment]
            label = Label(
                pos, TOPIC_EXECUTIONS, row, "execution", fault.value, reason, er.symbol, None,
                None, er.ts_event, er.account_id, ref_pos, delay_us, magnitude, field, original,
            )  # fmt: skip
        else:
            tick: Trade | Quote = rec  # type: ignore[assignment]
            label = Label(
                pos, TOPICS[code], row, KIND_NAMES[code], fault.value, reason, tick.symbol,
                tick.venue, tick.seq, tick.ts_event, tick.symbol, ref_pos, delay_us, magnitude,
                field, original,
            )  # fmt: skip
        self.faults[pos] = label
        return pos

    def _emit_garbage(self, topic: str, key: str, rec: Record, ref_pos: int, rng: Random) -> None:
        variant = self.garbage_variants[int(rng.random() * len(self.garbage_variants))]
        truncated: Record | None = None
        cut = 0
        if variant == Reason.BAD_MAGIC:
            if rng.random() < 0.25:  # somebody produced JSON to an Avro topic
                raw = f'{{"symbol": "{rec.symbol}", "ts_event": {rec.ts_event}}}'.encode()
            else:
                n = 8 + int(rng.random() * 57)
                first = bytes([1 + int(rng.random() * 255)])
                raw = first + rng.getrandbits(8 * (n - 1)).to_bytes(n - 1, "big")
        elif variant == Reason.TOO_SHORT:
            n = int(rng.random() * 4)
            raw = b"\x00" + (rng.getrandbits(8 * n).to_bytes(n, "big") if n else b"")
        elif variant == Reason.UNKNOWN_SCHEMA_ID:
            n = 4 + int(rng.random() * 37)
            schema_id = 0x7FFF0000 | int(rng.random() * 0xFFFF)
            body = rng.getrandbits(8 * n).to_bytes(n, "big")
            raw = b"\x00" + schema_id.to_bytes(4, "big") + body
        else:
            raw = b""
            truncated = rec
            cut = 1 + int(rng.random() * 12)
        g = Garbage(topic, raw, key, variant, truncated, cut)
        pos = self._append(CODE_GARBAGE, g)
        venue = rec.venue if isinstance(rec, Trade | Quote) else None
        self.faults[pos] = Label(
            pos, topic, self.rows[pos], "garbage", Fault.GARBAGE.value, variant, rec.symbol, venue,
            None, rec.ts_event, key, ref_pos,
        )  # fmt: skip

    def _push(self, arrival: int, p: _Pending) -> None:
        self.n_pending += 1
        heapq.heappush(self.delayed, (arrival, self.n_pending, p))
        self.aux_next = min(self.aux_next, arrival)

    def _deliver(self, p: _Pending, arrival: int) -> None:
        """Emit a held-back record at `arrival`, judging it by what has arrived before it."""
        p.done = True
        rec = p.rec
        delay = arrival - rec.ts_event
        if p.code == CODE_EXECUTION:
            self._emit_fault(
                p.code, rec, p.fault, Reason.DUPLICATE_EXEC, ref_pos=p.ref_pos, delay_us=delay
            )
            return
        tick: Trade | Quote = rec  # type: ignore[assignment]
        vs = p.vs
        tops = self.ttop if p.code == CODE_TRADE else self.qtop
        top = tops[vs]
        if tick.seq <= top - SEQ_WINDOW:
            reason: str | None = Reason.SEQ_TOO_OLD
        elif p.fault is Fault.DUPLICATE_SEQ:
            reason = Reason.DUPLICATE_SEQ
        else:
            reason = None
        if tick.seq > top:
            tops[vs] = tick.seq
        self._emit_fault(p.code, rec, p.fault, reason, ref_pos=p.ref_pos, delay_us=delay)
        if (
            p.code == CODE_QUOTE
            and p.fault is Fault.OUT_OF_ORDER
            and tick.ts_event >= self.vq_ts[vs]
        ):
            quote: Quote = rec  # type: ignore[assignment]
            s = vs % self.n_sym
            tk = self.tick[s]
            self.vq_bid[vs] = quote.bid_px // tk
            self.vq_ask[vs] = quote.ask_px // tk
            self.vq_ts[vs] = quote.ts_event

    def _release(self, key: int, arrival: int) -> None:
        """Out-of-order ticks waiting for the next tick of stream `key` go right after it."""
        waiting = self.held.pop(key, None)
        if waiting:
            for p in waiting:
                if not p.done:
                    self._deliver(p, arrival)

    def _advance(self, t: int) -> None:
        """Run order steps and deliver held-back records due at or before `t`, in time order."""
        heap = self.delayed
        orders = self.orders
        while True:
            d = heap[0][0] if heap else INF
            a = orders.next_ts
            if d <= a:
                if d > t or not heap:
                    break
                _, _, p = heapq.heappop(heap)
                if not p.done:
                    if p.hold_key >= 0:
                        waiting = self.held.get(p.hold_key)
                        if waiting is not None:
                            waiting.remove(p)
                            if not waiting:
                                del self.held[p.hold_key]
                    self._deliver(p, d)
            else:
                if a > t:
                    break
                orders.run_next()
        self.aux_next = min(heap[0][0] if heap else INF, orders.next_ts)

    def _on_execution(self, er: ExecutionReport) -> None:
        rng = self.xrng
        if rng.random() >= self.spec.fault_rate:
            self._append(CODE_EXECUTION, er)
            return
        fault = self.exec_faults[int(rng.random() * len(self.exec_faults))]
        pos = self._append(CODE_EXECUTION, er)
        if fault is Fault.DUPLICATE_EXEC:
            p = _Pending(CODE_EXECUTION, er, fault, ref_pos=pos)
            self._push(er.ts_event + 1_000 + int(rng.random() * 1_999_000), p)
        else:
            self._emit_garbage(TOPIC_EXECUTIONS, er.account_id, er, pos, rng)

    # -- faults on ticks -----------------------------------------------------------------

    def _trade_fault(self, rec: Trade, s: int, vs: int) -> bool:
        """Inject a fault into a trade; True when a trade with its seq went out in place."""
        rng = self.frng
        table = self.trade_faults
        fault = table[int(rng.random() * len(table))]
        while fault is Fault.PRICE_SPIKE and self.n_clean_vs[vs] < _SPIKE_MIN_HISTORY:
            fault = table[int(rng.random() * len(table))]
        if fault is Fault.PRICE_SPIKE:
            tick = self.tick[s]
            clean = rec.price // tick
            bps = _SPIKE_BPS[int(rng.random() * len(_SPIKE_BPS))]
            move = max(-(-clean * abs(bps) // 10_000), 40 + 2 * self.spread_max[s])
            if bps < 0 and move >= clean:
                bps = -bps  # cannot go below zero: spike upwards instead
            spiked = clean + move if bps > 0 else clean - move
            fresh = 0 <= rec.ts_event - self.vq_ts[vs] <= QUOTE_MAX_AGE_US
            reason = Reason.OUTSIDE_QUOTE if fresh else Reason.PRICE_OUTLIER
            self._emit_fault(
                CODE_TRADE, rec._replace(price=spiked * tick), fault, reason,
                magnitude=bps, field="price", original=rec.price,
            )  # fmt: skip
        elif fault is Fault.ZERO_PRICE or fault is Fault.NEGATIVE_PRICE:
            bad = 0 if fault is Fault.ZERO_PRICE else -rec.price
            self._emit_fault(
                CODE_TRADE, rec._replace(price=bad), fault, Reason.NON_POSITIVE_PRICE,
                field="price", original=rec.price,
            )  # fmt: skip
        elif fault is Fault.ZERO_SIZE or fault is Fault.NEGATIVE_SIZE:
            bad = 0 if fault is Fault.ZERO_SIZE else -rec.size
            self._emit_fault(
                CODE_TRADE, rec._replace(size=bad), fault, Reason.NON_POSITIVE_SIZE,
                field="size", original=rec.size,
            )  # fmt: skip
        elif fault is Fault.OUT_OF_ORDER:
            self._hold(CODE_TRADE, rec, vs, vs, rng)
            return False
        elif fault is Fault.LATE:
            delay = 60_000_000 + int(rng.random() * 540_000_000)
            self._push(rec.ts_event + delay, _Pending(CODE_TRADE, rec, fault, vs))
            return False
        else:  # DUPLICATE_SEQ or GARBAGE: the clean tick goes out in its place first
            pos = self._append(CODE_TRADE, rec)
            self.ttop[vs] = rec.seq
            self.n_clean_vs[vs] += 1
            if fault is Fault.DUPLICATE_SEQ:
                delay = 1_000 + int(rng.random() * 1_999_000)
                self._push(rec.ts_event + delay, _Pending(CODE_TRADE, rec, fault, vs, ref_pos=pos))
            else:
                self._emit_garbage(TOPIC_TRADES, rec.symbol, rec, pos, rng)
        return True

    def _quote_fault(self, rec: Quote, s: int, vs: int) -> int:
        """Inject a fault into a quote. Returns `HELD` (nothing went out), `IN_PLACE` (a bad
        quote with its seq went out) or `VISIBLE` (the clean quote went out in place)."""
        rng = self.frng
        table = self.quote_faults
        fault = table[int(rng.random() * len(table))]
        if fault is Fault.CROSSED_QUOTE:
            by = (1 + int(rng.random() * 3)) * self.tick[s]
            if rng.random() < 0.5:
                bad, field, original = rec._replace(bid_px=rec.ask_px + by), "bid_px", rec.bid_px
            else:
                bad, field, original = rec._replace(ask_px=rec.bid_px - by), "ask_px", rec.ask_px
            self._emit_fault(
                CODE_QUOTE, bad, fault, Reason.CROSSED_QUOTE, field=field, original=original
            )
            self.qtop[vs] = rec.seq
            return _IN_PLACE
        if fault in (Fault.ZERO_PRICE, Fault.NEGATIVE_PRICE, Fault.ZERO_SIZE, Fault.NEGATIVE_SIZE):
            side = "bid" if rng.random() < 0.5 else "ask"
            is_price = fault is Fault.ZERO_PRICE or fault is Fault.NEGATIVE_PRICE
            field = f"{side}_px" if is_price else f"{side}_sz"
            original = getattr(rec, field)
            value = 0 if fault is Fault.ZERO_PRICE or fault is Fault.ZERO_SIZE else -original
            reason = Reason.NON_POSITIVE_PRICE if is_price else Reason.NON_POSITIVE_SIZE
            if field == "bid_px":
                bad = rec._replace(bid_px=value)
            elif field == "ask_px":
                bad = rec._replace(ask_px=value)
            elif field == "bid_sz":
                bad = rec._replace(bid_sz=value)
            else:
                bad = rec._replace(ask_sz=value)
            self._emit_fault(CODE_QUOTE, bad, fault, reason, field=field, original=original)
            self.qtop[vs] = rec.seq
            return _IN_PLACE
        if fault is Fault.OUT_OF_ORDER:
            self._hold(CODE_QUOTE, rec, vs, self.n_sym * len(self.spec.venues) + vs, rng)
            return _HELD
        pos = self._append(CODE_QUOTE, rec)
        self.qtop[vs] = rec.seq
        if fault is Fault.DUPLICATE_SEQ:
            delay = 1_000 + int(rng.random() * 1_999_000)
            self._push(rec.ts_event + delay, _Pending(CODE_QUOTE, rec, fault, vs, ref_pos=pos))
        else:
            self._emit_garbage(TOPIC_QUOTES, rec.symbol, rec, pos, rng)
        return _VISIBLE

    def _hold(self, code: int, rec: Trade | Quote, vs: int, key: int, rng: Random) -> None:
        p = _Pending(code, rec, Fault.OUT_OF_ORDER, vs, hold_key=key)
        self.held.setdefault(key, []).append(p)
        self._push(rec.ts_event + 500_000 + int(rng.random() * 2_500_000), p)

    # -- the hot loop ----------------------------------------------------------------------

    def run(self) -> Market:  # noqa: PLR0915 - one inlined loop on purpose: it runs per event
        spec = self.spec
        rnd = self.model_rng.random
        gauss = self.model_rng.gauss
        frnd = self.frng.random
        fault_rate = spec.fault_rate
        start = spec.start_us
        dur_us = spec.end_us - start
        max_trades = spec.max_trades if spec.max_trades is not None else INF
        venues = spec.venues
        symbols = [ins.symbol for ins in self.instruments]
        n_sym = self.n_sym
        quote_key_base = n_sym * len(venues)
        sym_table = self.sym_table
        n_st = len(sym_table)
        sv_table = self.sv_table
        n_sv = len(sv_table)
        venue_table = self.venue_table
        n_vt = len(venue_table)
        tick_l = self.tick
        center, spread_cur, spread_tab = self.center, self.spread_cur, self.spread_tab
        spread_max, sigma, p_move, p_move_burst = (
            self.spread_max,
            self.sigma,
            self.p_move,
            self.p_move_burst,
        )
        band_lo, band_hi = self.band_lo, self.band_hi
        qsize_tab, tsize_tab = self.qsize_tab, self.tsize_tab
        tseq, qseq, ttop, qtop = self.tseq, self.qseq, self.ttop, self.qtop
        vq_bid, vq_ask, vq_ts = self.vq_bid, self.vq_ask, self.vq_ts
        sq_bid, sq_ask = self.sq_bid, self.sq_ask
        n_clean_vs = self.n_clean_vs
        trades, quotes = self.trades, self.quotes
        codes_append, rows_append = self.codes.append, self.rows.append
        trades_append, quotes_append = trades.append, quotes.append
        held = self.held
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
            if ts >= self.aux_next:
                self._advance(ts)
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
                        self._release(quote_key_base + vs, ts)
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
                        self._release(vs, ts)
                elif self._trade_fault(rec, s, vs) and held:
                    self._release(vs, ts)
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
                    how = _VISIBLE
                else:
                    how = self._quote_fault(rec_q, s, vs)
                if how == _VISIBLE:
                    vq_bid[vs] = sq_bid[s] = bid
                    vq_ask[vs] = sq_ask[s] = ask
                    vq_ts[vs] = ts
                if how and held:
                    self._release(quote_key_base + vs, ts)

        # The market stopped: finish order steps up to then, then everything held back.
        stop = start + dur_us if n_trades < max_trades else ts
        self.orders.stop_after(stop)
        self._advance(INF)
        return Market(
            spec=spec,
            instruments=self.instruments,
            trades=self.trades,
            quotes=self.quotes,
            executions=self.executions,
            garbage=self.garbage,
            codes=self.codes,
            rows=self.rows,
            faults=self.faults,
            orders_created=self.orders.orders_created,
        )


__all__ = [
    "CODE_EXECUTION",
    "CODE_GARBAGE",
    "CODE_QUOTE",
    "CODE_TRADE",
    "DEFAULT_START_US",
    "EXECUTION_FAULTS",
    "GARBAGE_VARIANTS",
    "HEADER_LEN",
    "KIND_NAMES",
    "QUOTE_FAULTS",
    "QUOTE_MAX_AGE_US",
    "SEQ_WINDOW",
    "SESSION_CLOSE_US",
    "SESSION_OPEN_US",
    "TOPICS",
    "TOPIC_EXECUTIONS",
    "TOPIC_QUOTES",
    "TOPIC_TRADES",
    "TRADE_FAULTS",
    "Fault",
    "Garbage",
    "Instrument",
    "Label",
    "Labels",
    "Market",
    "MarketSpec",
    "Reason",
    "Record",
    "generate_market",
    "make_instruments",
    "paused_gc",
]
