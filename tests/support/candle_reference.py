"""A deliberately simple candle builder (sort, group, loop) to test the real one against."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction

from tapeflow.core.market.candles import Candle, CandleConfig, CandleState, add_trade_inplace
from tapeflow.core.models import Trade

Market = tuple[str, int, int, int, int, int, int, int, int, int, int]
"""A candle without its version: (symbol, bucket, width, o, h, l, c, vol, notional, vwap, n)."""


def reference(trades: Iterable[Trade], width: int) -> list[Market]:
    groups: dict[tuple[str, int], list[Trade]] = defaultdict(list)
    for t in trades:
        groups[(t.symbol, t.ts_event - t.ts_event % width)].append(t)
    out = []
    for symbol, bucket in sorted(groups):
        ts = sorted(groups[(symbol, bucket)], key=lambda t: (t.ts_event, t.seq, t.venue, t.price))
        volume = sum(t.size for t in ts)
        notional = sum(t.price * t.size for t in ts)
        vwap = round(Fraction(notional, volume))  # round() on a Fraction is half-even
        out.append(
            (
                symbol,
                bucket,
                width,
                ts[0].price,
                max(t.price for t in ts),
                min(t.price for t in ts),
                ts[-1].price,
                volume,
                notional,
                vwap,
                len(ts),
            )
        )
    return out


def market(candles: Iterable[Candle], width: int | None = None) -> list[Market]:
    """Candles without version, optionally of one width, sorted."""
    rows = [tuple(c[:-1]) for c in candles if width is None or c.width_us == width]
    return sorted(rows)  # type: ignore[arg-type]


def classify(trades: Iterable[Trade], config: CandleConfig) -> list[tuple[str, ...]]:
    """Per trade and width: 'on_time', 'corrected' (its bucket was already out) or 'too_late'."""
    state = CandleState()
    out = []
    for t in trades:
        state, emitted, rejection = add_trade_inplace(state, t, None, config)
        if rejection is not None:
            out.append(("too_late",) * len(config.widths_us))
            continue
        row = []
        for w in config.widths_us:
            hit = any(c.width_us == w and c.bucket <= t.ts_event < c.bucket + w for c in emitted)
            row.append("corrected" if hit else "on_time")
        out.append(tuple(row))
    return out
