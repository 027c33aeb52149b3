"""What real venues do that the synthetic tape does not: applied to a generated market.

`apply_feed_effects(market, FeedEffects())` returns a new `Market` whose records are the same
records in the same arrival order, changed as real feeds change them; every change is genuine
market data, labelled with a new genuine kind so the filter's false rejections show per effect:

- `packet_member` (`FeedEffect`): on `packet_venue`, a symbol's trades travel in packets of
  1 to 3 that share one sequence number (CME MDP 3.0 style); every member of a packet but the
  first is labelled. Duplicates (exact re-sends) keep being exact copies; a late trade is a
  packet of its own.
- `seq_reset`: at `reset_at` (a fraction of the run) `reset_venue` restarts its numbering at 1,
  for trades and quotes of every symbol; the first `LABELLED` ticks of each stream after the
  reset are labelled.
- `reopening`: `halted` symbols stop at the middle of the run for `halt_s` seconds (every later
  tick moves later by that much) and reopen `reopen_move` away (every later price, bid and ask
  scaled and put back on the tick grid); the first `LABELLED` trades after the halt are
  labelled.
- `conditioned`: every late trade carries `Z` (sold out of sequence) and a share
  `condition_rate` of clean trades carries `Z`, `W` or `4`: prints that count volume but set no
  price (`tapeflow.core.market.conditions`). The filter judges them like any print; the candles
  and the marks use them for volume only.

Only the tick filter's view is relabelled: the expected verdict of every changed genuine tick is
acceptance; faulty records keep their labels (seq, time and price updated).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from random import Random

from sources.synthetic.labels import Fault, FeedEffect, Label
from sources.synthetic.market import Market
from sources.synthetic.records import CODE_QUOTE, CODE_TRADE, TOPICS
from tapeflow.core.models import Quote, Trade

LABELLED = 20
"""Ticks per stream labelled after a reset or a reopening."""
_CONDITIONS = (("Z",), ("W",), ("4",))


@dataclass(frozen=True, slots=True)
class FeedEffects:
    packet_venue: str | None = "XNAS"
    reset_venue: str | None = "XNYS"
    reset_at: float = 0.7
    halted: int = 2
    """The first this many symbols halt (the first up, the second down, ...)."""
    halt_s: float = 360.0
    reopen_move: float = 0.10
    condition_rate: float = 0.02
    seed: int = 1


def _round(units: int, factor: float, tick: int) -> int:
    if units <= 0:
        return units  # a zero or negative price stays what it was (a fault)
    return max(tick, round(units * factor / tick) * tick)


def _halt(tick: Trade | Quote, halts: dict[str, tuple[int, int, float]],
          ticks: dict[str, int]) -> Trade | Quote:
    plan = halts.get(tick.symbol)
    if plan is None or tick.ts_event < plan[0]:
        return tick
    _at, shift, factor = plan
    size = ticks[tick.symbol]
    if isinstance(tick, Trade):
        return tick._replace(ts_event=tick.ts_event + shift, price=_round(tick.price, factor, size))
    return tick._replace(ts_event=tick.ts_event + shift, bid_px=_round(tick.bid_px, factor, size),
                         ask_px=_round(tick.ask_px, factor, size))


def apply_feed_effects(market: Market, effects: FeedEffects = FeedEffects()) -> Market:  # noqa: PLR0915 - one pass per effect, in order
    spec = market.spec
    rng = Random(f"tapeflow/{spec.seed}/{effects.seed}/feed-effects")
    ticks = {i.symbol: i.tick_size for i in market.instruments}
    middle = spec.start_us + (spec.end_us - spec.start_us) // 2
    halts = {
        i.symbol: (middle, round(effects.halt_s * 1e6),
                   1 + effects.reopen_move if n % 2 == 0 else 1 - effects.reopen_move)
        for n, i in enumerate(market.instruments[:effects.halted])
    }
    trades = [_halt(t, halts, ticks) for t in market.trades]
    quotes = [_halt(q, halts, ticks) for q in market.quotes]  # type: ignore[misc]

    # Packets: per (venue, symbol), the sorted distinct trade numbers grouped 1-3 at a time.
    packet: dict[tuple[str, int], tuple[int, bool]] = {}
    if effects.packet_venue is not None:
        seqs: dict[str, set[int]] = defaultdict(set)
        for t in trades:
            if t.venue == effects.packet_venue:
                seqs[t.symbol].add(t.seq)
        # A late report is a message of its own on a real packet feed, never a member that
        # arrives minutes after the rest of its packet: it gets a packet alone.
        alone = {(lab.symbol, lab.seq) for lab in market.faults.values()
                 if lab.fault == Fault.LATE.value and lab.venue == effects.packet_venue}
        for symbol, numbers in seqs.items():
            number, left = 0, 0
            for s in sorted(numbers):
                if (symbol, s) in alone:
                    left = 0
                first = left == 0
                if first:
                    number += 1
                    left = 1 + int(rng.random() * 3)
                left = 0 if (symbol, s) in alone else left - 1
                packet[(symbol, s)] = (number, first)

    # Reset: per (symbol, kind) stream of the venue, the first number at or after the reset.
    restart: dict[tuple[str, int], int] = {}
    reset_us = spec.start_us + round((spec.end_us - spec.start_us) * effects.reset_at)
    if effects.reset_venue is not None:
        for code, records in ((CODE_TRADE, trades), (CODE_QUOTE, quotes)):
            for r in records:
                if r.venue == effects.reset_venue and r.ts_event >= reset_us:
                    key = (r.symbol, code)
                    restart[key] = min(restart.get(key, r.seq), r.seq)

    faults = dict(market.faults)
    lists: tuple[list[Trade], list[Quote]] = (trades, quotes)
    labelled: dict[tuple[str, str, int], int] = defaultdict(int)
    for pos, (code, row) in enumerate(zip(market.codes, market.rows, strict=True)):
        if code > CODE_QUOTE:
            continue
        rec = lists[code][row]
        label = faults.get(pos)
        genuine: FeedEffect | None = None
        new_seq = rec.seq
        if code == CODE_TRADE and rec.venue == effects.packet_venue:
            new_seq, first = packet[(rec.symbol, rec.seq)]
            if not first:
                genuine = FeedEffect.PACKET_MEMBER
        start = restart.get((rec.symbol, code))
        if start is not None and rec.seq >= start:
            new_seq = rec.seq - start + 1
            if labelled[(rec.symbol, rec.venue, code)] < LABELLED:
                labelled[(rec.symbol, rec.venue, code)] += 1
                genuine = FeedEffect.SEQ_RESET
        plan = halts.get(rec.symbol)
        if (code == CODE_TRADE and plan is not None and rec.ts_event >= plan[0] + plan[1]
                and labelled[(rec.symbol, "", code)] < LABELLED):
            labelled[(rec.symbol, "", code)] += 1
            genuine = FeedEffect.REOPENING
        if code == CODE_TRADE:
            assert isinstance(rec, Trade)
            late = label is not None and label.fault == Fault.LATE.value
            if late or (label is None and rng.random() < effects.condition_rate):
                rec = rec._replace(conditions=("Z",) if late else
                                   _CONDITIONS[int(rng.random() * len(_CONDITIONS))])
                genuine = genuine or FeedEffect.CONDITIONED
        rec = rec._replace(seq=new_seq)
        lists[code][row] = rec  # type: ignore[assignment]
        if label is None:
            if genuine is not None:
                faults[pos] = Label(pos, TOPICS[code], row, label_kind(code), genuine.value, None,
                                    rec.symbol, rec.venue, rec.seq, rec.ts_event, rec.symbol)
        else:
            original = label.original
            if original is not None and plan is not None and rec.ts_event >= plan[0] + plan[1]:
                original = _round(original, plan[2], ticks[rec.symbol])
            faults[pos] = label._replace(seq=rec.seq, ts_event=rec.ts_event, original=original)
    return Market(spec=spec, instruments=market.instruments, trades=trades, quotes=quotes,
                  executions=market.executions, garbage=market.garbage, codes=market.codes,
                  rows=market.rows, faults=faults, orders_created=market.orders_created)


def label_kind(code: int) -> str:
    return "trade" if code == CODE_TRADE else "quote"
