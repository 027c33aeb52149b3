"""Fault injection: what a broken venue, network or producer does to the clean records.

The tape decides *whether* a tick is faulty (one draw from the "faults" generator against
`fault_rate`, inlined in its hot loop); `FaultInjector` decides *which* fault, by the weights
below, and emits the bad record with its label. Execution reports take the same path from the
order simulator, drawing from their own generator ("execution-faults"), so the order flow
never changes the tape. A faulty tick keeps its sequence number (a venue sent it); duplicates
and garbage are extra messages. Records that arrive later go through `Schedule`.

Expected verdicts are computed from what the consumer will have seen when the record arrives:
a price spike is `outside_quote` when its venue's prevailing quote is at most 10 s old (that
rule comes first), else `price_outlier`. docs/synthetic.md tabulates faults and reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

from sources.synthetic.arrivals import Arrivals
from sources.synthetic.labels import QUOTE_MAX_AGE_US, Fault, Label, Reason
from sources.synthetic.records import (
    CODE_EXECUTION,
    CODE_GARBAGE,
    CODE_QUOTE,
    CODE_TRADE,
    TOPIC_EXECUTIONS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    Garbage,
    Record,
)
from sources.synthetic.schedule import Pending, Schedule
from sources.synthetic.spec import MarketSpec
from sources.synthetic.tape_model import TapeModel
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
_SPIKE_MIN_HISTORY = 20
"""Clean trades a (venue, symbol) must have printed before a spike is injected into it."""

# What became of a faulty quote (`FaultInjector.quote_fault`).
HELD = 0
"""Nothing went out: the quote was held back."""
IN_PLACE = 1
"""A bad quote with its seq went out; the venue's prevailing quote did not change."""
VISIBLE = 2
"""The clean quote went out in place (an extra message follows it later or right away)."""


def _fault_table(weights: Sequence[tuple[Fault, int]]) -> list[Fault]:
    return [fault for fault, w in weights for _ in range(w)]


class FaultInjector:
    """Turns a clean record the tape or the order flow drew into a faulty one, labelled."""

    def __init__(
        self, spec: MarketSpec, model: TapeModel, out: Arrivals, schedule: Schedule
    ) -> None:
        self.fault_rate = spec.fault_rate
        self.rng = spec.rng("faults")
        """Tick faults: the tape draws whether, `trade_fault`/`quote_fault` draw which."""
        self.xrng = spec.rng("execution-faults")
        self.model = model
        self.out = out
        self.schedule = schedule
        self.trade_faults = _fault_table(TRADE_FAULTS)
        self.quote_faults = _fault_table(QUOTE_FAULTS)
        self.exec_faults = _fault_table(EXECUTION_FAULTS)
        self.garbage_variants = [v for v, w in GARBAGE_VARIANTS for _ in range(w)]

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
        out = self.out
        pos = out.append(CODE_GARBAGE, g)
        venue = rec.venue if isinstance(rec, Trade | Quote) else None
        out.faults[pos] = Label(
            pos, topic, out.rows[pos], "garbage", Fault.GARBAGE.value, variant, rec.symbol, venue,
            None, rec.ts_event, key, ref_pos,
        )  # fmt: skip

    def _hold(self, code: int, rec: Trade | Quote, vs: int, key: int, rng: Random) -> None:
        """Out of order: after the next tick of its stream, or 0.5 to 3 s later."""
        p = Pending(code, rec, Fault.OUT_OF_ORDER, vs, hold_key=key)
        self.schedule.hold(p, rec.ts_event + 500_000 + int(rng.random() * 2_500_000))

    def on_execution(self, er: ExecutionReport) -> None:
        """Emit an execution report from the order flow, faulty at `fault_rate`."""
        rng = self.xrng
        out = self.out
        if rng.random() >= self.fault_rate:
            out.append(CODE_EXECUTION, er)
            return
        fault = self.exec_faults[int(rng.random() * len(self.exec_faults))]
        pos = out.append(CODE_EXECUTION, er)
        if fault is Fault.DUPLICATE_EXEC:
            p = Pending(CODE_EXECUTION, er, fault, ref_pos=pos)
            self.schedule.push(er.ts_event + 1_000 + int(rng.random() * 1_999_000), p)
        else:
            self._emit_garbage(TOPIC_EXECUTIONS, er.account_id, er, pos, rng)

    def trade_fault(self, rec: Trade, s: int, vs: int) -> bool:
        """Inject a fault into a trade; True when a trade with its seq went out in place."""
        rng = self.rng
        m = self.model
        out = self.out
        table = self.trade_faults
        fault = table[int(rng.random() * len(table))]
        while fault is Fault.PRICE_SPIKE and m.n_clean_vs[vs] < _SPIKE_MIN_HISTORY:
            fault = table[int(rng.random() * len(table))]
        if fault is Fault.PRICE_SPIKE:
            tick = m.tick[s]
            clean = rec.price // tick
            bps = _SPIKE_BPS[int(rng.random() * len(_SPIKE_BPS))]
            move = max(-(-clean * abs(bps) // 10_000), 40 + 2 * m.spread_max[s])
            if bps < 0 and move >= clean:
                bps = -bps  # cannot go below zero: spike upwards instead
            spiked = clean + move if bps > 0 else clean - move
            fresh = 0 <= rec.ts_event - m.vq_ts[vs] <= QUOTE_MAX_AGE_US
            reason = Reason.OUTSIDE_QUOTE if fresh else Reason.PRICE_OUTLIER
            out.emit_fault(
                CODE_TRADE, rec._replace(price=spiked * tick), fault, reason,
                magnitude=bps, field="price", original=rec.price,
            )  # fmt: skip
        elif fault is Fault.ZERO_PRICE or fault is Fault.NEGATIVE_PRICE:
            bad = 0 if fault is Fault.ZERO_PRICE else -rec.price
            out.emit_fault(
                CODE_TRADE, rec._replace(price=bad), fault, Reason.NON_POSITIVE_PRICE,
                field="price", original=rec.price,
            )  # fmt: skip
        elif fault is Fault.ZERO_SIZE or fault is Fault.NEGATIVE_SIZE:
            bad = 0 if fault is Fault.ZERO_SIZE else -rec.size
            out.emit_fault(
                CODE_TRADE, rec._replace(size=bad), fault, Reason.NON_POSITIVE_SIZE,
                field="size", original=rec.size,
            )  # fmt: skip
        elif fault is Fault.OUT_OF_ORDER:
            self._hold(CODE_TRADE, rec, vs, vs, rng)
            return False
        elif fault is Fault.LATE:
            delay = 60_000_000 + int(rng.random() * 540_000_000)
            self.schedule.push(rec.ts_event + delay, Pending(CODE_TRADE, rec, fault, vs))
            return False
        else:  # DUPLICATE_SEQ or GARBAGE: the clean tick goes out in its place first
            pos = out.append(CODE_TRADE, rec)
            m.ttop[vs] = rec.seq
            m.n_clean_vs[vs] += 1
            if fault is Fault.DUPLICATE_SEQ:
                delay = 1_000 + int(rng.random() * 1_999_000)
                p = Pending(CODE_TRADE, rec, fault, vs, ref_pos=pos)
                self.schedule.push(rec.ts_event + delay, p)
            else:
                self._emit_garbage(TOPIC_TRADES, rec.symbol, rec, pos, rng)
        return True

    def quote_fault(self, rec: Quote, s: int, vs: int) -> int:
        """Inject a fault into a quote. Returns `HELD` (nothing went out), `IN_PLACE` (a bad
        quote with its seq went out) or `VISIBLE` (the clean quote went out in place)."""
        rng = self.rng
        m = self.model
        out = self.out
        table = self.quote_faults
        fault = table[int(rng.random() * len(table))]
        if fault is Fault.CROSSED_QUOTE:
            by = (1 + int(rng.random() * 3)) * m.tick[s]
            if rng.random() < 0.5:
                bad, field, original = rec._replace(bid_px=rec.ask_px + by), "bid_px", rec.bid_px
            else:
                bad, field, original = rec._replace(ask_px=rec.bid_px - by), "ask_px", rec.ask_px
            out.emit_fault(
                CODE_QUOTE, bad, fault, Reason.CROSSED_QUOTE, field=field, original=original
            )
            m.qtop[vs] = rec.seq
            return IN_PLACE
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
            out.emit_fault(CODE_QUOTE, bad, fault, reason, field=field, original=original)
            m.qtop[vs] = rec.seq
            return IN_PLACE
        if fault is Fault.OUT_OF_ORDER:
            self._hold(CODE_QUOTE, rec, vs, m.n_streams + vs, rng)
            return HELD
        pos = out.append(CODE_QUOTE, rec)
        m.qtop[vs] = rec.seq
        if fault is Fault.DUPLICATE_SEQ:
            delay = 1_000 + int(rng.random() * 1_999_000)
            p = Pending(CODE_QUOTE, rec, fault, vs, ref_pos=pos)
            self.schedule.push(rec.ts_event + delay, p)
        else:
            self._emit_garbage(TOPIC_QUOTES, rec.symbol, rec, pos, rng)
        return VISIBLE
