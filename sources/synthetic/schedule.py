"""What is due besides the tape: held-back records and the order flow's steps, in event time.

Some faults do not go out where they happen: a re-sent tick or execution report, a late trade,
a tick held back out of order. They wait here (`Pending`) until their arrival time, or, for an
out-of-order tick, until the next tick of its (venue, symbol) stream has gone out. The order
simulator keeps its own schedule; `advance` merges both in time order, and `next_due` tells
the tape's hot loop when it must stop and call `advance` (one comparison per event).

A held-back record is labelled when it arrives, by what the consumer will have seen by then:
a re-sent tick 4096+ sequence numbers behind its stream's highest is `seq_too_old`, not
`duplicate_seq`, and an out-of-order quote becomes its venue's prevailing quote if it is the
newest one.
"""

from __future__ import annotations

import heapq

from sources.synthetic.arrivals import Arrivals
from sources.synthetic.labels import SEQ_WINDOW, Fault, Reason
from sources.synthetic.orders import INF, OrderSim
from sources.synthetic.records import CODE_EXECUTION, CODE_QUOTE, CODE_TRADE, Record
from sources.synthetic.tape_model import TapeModel
from tapeflow.core.models import Quote, Trade


class Pending:
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
        """Out-of-order ticks: the stream whose next tick releases it (see `Schedule.held`)."""
        self.done = False


class Schedule:
    """Held-back records (a heap by arrival time) merged with the order simulator's steps."""

    def __init__(self, model: TapeModel, out: Arrivals, orders: OrderSim) -> None:
        self.model = model
        self.out = out
        self.orders = orders
        self.delayed: list[tuple[int, int, Pending]] = []
        self.held: dict[int, list[Pending]] = {}
        """Out-of-order ticks by the stream whose next tick releases them: `vs` for a trade
        stream, `model.n_streams + vs` for a quote stream."""
        self.n_pending = 0
        self.next_due = orders.next_ts
        """The earliest time anything here is due (`INF`: nothing is)."""

    def push(self, arrival: int, p: Pending) -> None:
        """Deliver `p` at `arrival` (event time, int micros)."""
        self.n_pending += 1
        heapq.heappush(self.delayed, (arrival, self.n_pending, p))
        self.next_due = min(self.next_due, arrival)

    def hold(self, p: Pending, arrival: int) -> None:
        """Deliver `p` right after the next tick of stream `p.hold_key`, at `arrival` latest."""
        self.held.setdefault(p.hold_key, []).append(p)
        self.push(arrival, p)

    def _deliver(self, p: Pending, arrival: int) -> None:
        """Emit a held-back record at `arrival`, judging it by what has arrived before it."""
        p.done = True
        rec = p.rec
        delay = arrival - rec.ts_event
        out = self.out
        if p.code == CODE_EXECUTION:
            out.emit_fault(
                p.code, rec, p.fault, Reason.DUPLICATE_EXEC, ref_pos=p.ref_pos, delay_us=delay
            )
            return
        tick: Trade | Quote = rec  # type: ignore[assignment]
        vs = p.vs
        m = self.model
        tops = m.ttop if p.code == CODE_TRADE else m.qtop
        top = tops[vs]
        if tick.seq <= top - SEQ_WINDOW:
            reason: str | None = Reason.SEQ_TOO_OLD
        elif p.fault is Fault.DUPLICATE_SEQ:
            reason = Reason.DUPLICATE_SEQ
        else:
            reason = None
        if tick.seq > top:
            tops[vs] = tick.seq
        out.emit_fault(p.code, rec, p.fault, reason, ref_pos=p.ref_pos, delay_us=delay)
        if p.code == CODE_QUOTE and p.fault is Fault.OUT_OF_ORDER and tick.ts_event >= m.vq_ts[vs]:
            quote: Quote = rec  # type: ignore[assignment]
            s = vs % m.n_sym
            tk = m.tick[s]
            m.vq_bid[vs] = quote.bid_px // tk
            m.vq_ask[vs] = quote.ask_px // tk
            m.vq_ts[vs] = quote.ts_event

    def release(self, key: int, arrival: int) -> None:
        """Out-of-order ticks waiting for the next tick of stream `key` go right after it."""
        waiting = self.held.pop(key, None)
        if waiting:
            for p in waiting:
                if not p.done:
                    self._deliver(p, arrival)

    def advance(self, t: int) -> None:
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
        self.next_due = min(heap[0][0] if heap else INF, orders.next_ts)
