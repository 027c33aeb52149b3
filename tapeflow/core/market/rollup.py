"""Coarser candles from finer ones, exactly (docs/design.md: 5m, 15m, 1h, 1d from 1m).

Exact because every field of a candle is either a sum (volume, notional, trade count), an
extreme (high, low) or taken from the earliest or latest part (open, close), and finer
epoch-aligned buckets nest inside coarser ones when the coarse width is a multiple of the
fine one. The parts' buckets do not overlap, so the earliest part's open is the first trade of
the coarse bucket and the latest part's close its last. vwap is recomputed from the summed
notional and volume, so it is the same number a direct build gives (no average of averages).

Version of a rolled-up candle = sum of its parts' versions. A candle's version is its
trade_count (`tapeflow.core.market.candles`, "Versions"), so this is the rolled-up candle's
trade_count: it grows whenever any part is corrected or a late part appears, which is what a
ReplacingMergeTree of roll-ups needs, and the rolled-up candle equals a direct build of the
coarse width in every field, version included. The stores add a writer's base to every
version they write (`sinks.versions.candle_version_base`, so a rewrite by a later run wins);
the sum then counts each part's base once and still grows with every rewrite of any part.

Parts without prices (only volume-only prints, `tapeflow.core.market.candles`) add volume and
count, and no price: open is the earliest priced part's, close the latest's, high and low the
extremes of the priced parts; all None when no part has a price.
"""

from __future__ import annotations

from collections.abc import Iterable

from tapeflow.core.fixedpoint import div_round
from tapeflow.core.market.candle_batch import final_candles
from tapeflow.core.market.candles import Candle


def rollup(candles: Iterable[Candle], width_us: int) -> list[Candle]:
    """Combine final candles of one width into `width_us` buckets, sorted by (symbol, bucket).

    Several versions of a part may be given; the highest one counts (`final_candles`).
    """
    parts = final_candles(candles)
    if not parts:
        return []
    widths = {c.width_us for c in parts}
    if len(widths) != 1:
        raise ValueError(f"rollup needs candles of one width, got {sorted(widths)}")
    fine = widths.pop()
    if width_us <= 0 or width_us % fine:
        raise ValueError(f"{width_us} us is not a positive multiple of {fine} us")
    out: list[Candle] = []
    acc: list[int | None] = []
    key: tuple[str, int] | None = None
    # parts are sorted by (symbol, width, bucket), so each coarse bucket is a contiguous run.
    for c in parts:
        bucket = c.bucket - c.bucket % width_us
        if key != (c.symbol, bucket):
            if key is not None:
                out.append(_emit(key, width_us, acc))
            key = (c.symbol, bucket)
            acc = [c.open, c.high, c.low, c.close, c.volume, c.notional, c.trade_count, c.version]
            continue
        if c.open is not None:
            if acc[0] is None:
                acc[0:4] = [c.open, c.high, c.low, c.close]
            else:
                acc[1] = max(acc[1], c.high)  # type: ignore[type-var]
                acc[2] = min(acc[2], c.low)  # type: ignore[type-var]
                acc[3] = c.close
        acc[4] += c.volume  # type: ignore[operator]
        acc[5] += c.notional  # type: ignore[operator]
        acc[6] += c.trade_count  # type: ignore[operator]
        acc[7] += c.version  # type: ignore[operator]
    assert key is not None
    out.append(_emit(key, width_us, acc))
    return out


def _emit(key: tuple[str, int], width_us: int, acc: list[int | None]) -> Candle:
    o, h, lo, c, volume, notional, count, version = acc
    assert volume is not None and notional is not None and count is not None
    assert version is not None
    vwap = div_round(notional, volume)
    return Candle(key[0], key[1], width_us, o, h, lo, c, volume, notional, vwap, count, version)
