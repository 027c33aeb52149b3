"""Final candles of a whole history at once, with polars: equal to the core's fold, proven below.

The stream folds every clean trade into `tapeflow.core.market.candles` and writes every emission; a
ReplacingMergeTree(version) keeps the highest version of each (symbol, bucket). A backfill only
needs that last version, and it is a plain aggregate. From
`tapeflow.core.market.candles.add_trade_inplace`, for the
trades the tick filter accepted, in fold order, per symbol:

1. `too_late`: the builder's `max_ts` is the running maximum of the ts_event of the trades it
   took; a trade it refuses is below that maximum, so including it changes nothing: `max_ts`
   before trade i = max(ts_j, j < i, j accepted by the filter). Trade i is `too_late` iff
   ts_i < that maximum - allowed_lateness - retention (strictly), with detail
   "<max - lateness - ts> us behind the watermark". Hence `cum_max().shift(1)` per symbol.
2. Every other trade ends in its bucket's final version: a bucket is forgotten only once its
   end <= watermark - retention, and a trade for such a bucket has ts < end <= max - lateness -
   retention, i.e. is `too_late`; a trade for an open, emitted or never-seen bucket is folded
   into it and that bucket is (re-)emitted at the latest by `flush`.
3. The fold of a bucket is order-independent: open = the first trade by (ts_event, seq, venue,
   price), close = the last (`_tie`: a total tie has equal prices), high/low = max/min price,
   volume = sum of sizes, notional = sum of price x size (exact, scale 16; Int128 here),
   trade_count = version = the number of trades, vwap = notional / volume rounded half-even
   (`fixedpoint.div_round`, done here in Int128 with the same rule).

4. Trade conditions: the fold takes each trade's effect (`tapeflow.core.market.conditions`,
   column `_effect`, computed by the filter step with the core's table). Only prints with an
   effect reach the builder (the caller leaves `NO_EFFECT` ones out); a `VOLUME_ONLY` print
   counts in volume, notional and trade count and never sets open, high, low or close, so those
   come from the `REGULAR` prints alone (null when a bucket has none).

So the aggregate equals `tapeflow.core.market.candle_batch.final_candles(build_candles(...))` for
the same trades; tests/unit/test_backfill_candles.py checks it against the core on random tapes with
late and out-of-order trades, and the parity test against the stream's tables.
"""

from __future__ import annotations

import polars as pl

from tapeflow.core.market.candles import DEFAULT_CANDLE_CONFIG, CandleConfig
from tapeflow.core.market.conditions import PRICE_BIT
from tapeflow.core.market.rejections import Rejection, RejectReason, TickKind
from tapeflow.core.models import Trade

_ORDER = ["ts_event", "seq", "venue", "price"]
EFFECT = "_effect"
"""Column of each trade's condition effect; absent: every trade is regular."""


def split_too_late(accepted: pl.DataFrame,
                   config: CandleConfig = DEFAULT_CANDLE_CONFIG
                   ) -> tuple[pl.DataFrame, list[Rejection]]:
    """Accepted trades (rows in fold order per symbol) -> (the trades the candle builder takes,
    `too_late` rejections for the others). Step 1 of the module docstring."""
    horizon = config.allowed_lateness_us + config.retention_us
    marked = accepted.with_columns(
        pl.col("ts_event").cum_max().shift(1).over("symbol").alias("_top"))
    late = pl.col("ts_event") < pl.col("_top") - horizon
    late_rows = marked.filter(late)
    rejections = []
    for row in late_rows.iter_rows(named=True):
        trade = Trade(row["symbol"], row["venue"], row["ts_event"], row["seq"], row["price"],
                      row["size"], row["trade_id"], tuple(row["conditions"] or ()))
        detail = f"{row['_top'] - config.allowed_lateness_us - row['ts_event']} us behind " \
                 "the watermark"
        rejections.append(Rejection(TickKind.TRADE, RejectReason.TOO_LATE, trade, detail))
    kept = marked.filter(late.not_() | pl.col("_top").is_null()).drop("_top")
    return kept, rejections


def final_candles(trades: pl.DataFrame, width_us: int) -> pl.DataFrame:
    """The final candle of every (symbol, bucket) of `width_us` over clean trades (any row
    order): columns symbol, bucket, open, high, low, close, volume, notional, vwap (Int64 or
    Int128 units), trade_count, version. Steps 2 and 3 of the module docstring."""
    volume = pl.col("size").cast(pl.Int128).sum()
    notional = (pl.col("price").cast(pl.Int128) * pl.col("size").cast(pl.Int128)).sum()
    priced = ((pl.col(EFFECT) & PRICE_BIT) != 0) if EFFECT in trades.columns else pl.lit(True)
    # Prices of the print that may set them, null for volume-only prints (ignored by
    # first/last/max/min below).
    price = pl.when(priced).then(pl.col("price")).otherwise(None)
    out = (
        trades.lazy()
        .with_columns((pl.col("ts_event") // width_us * width_us).alias("bucket"),
                      price.alias("_priced_price"))
        .group_by("symbol", "bucket")
        .agg(
            pl.col("_priced_price").sort_by(_ORDER).drop_nulls().first().alias("open"),
            pl.col("_priced_price").max().alias("high"),
            pl.col("_priced_price").min().alias("low"),
            pl.col("_priced_price").sort_by(_ORDER).drop_nulls().last().alias("close"),
            volume.alias("volume"),
            notional.alias("notional"),
            pl.len().cast(pl.UInt64).alias("trade_count"),
        )
        .with_columns(
            (pl.col("notional") // pl.col("volume")).alias("_q"),
            (2 * (pl.col("notional") % pl.col("volume"))).alias("_twice"),
        )
        .with_columns(
            (pl.col("_q") + ((pl.col("_twice") > pl.col("volume"))
                             | ((pl.col("_twice") == pl.col("volume")) & (pl.col("_q") % 2 == 1))
                             ).cast(pl.Int128)).cast(pl.Int64).alias("vwap"),
            pl.col("trade_count").alias("version"),
        )
        .select("symbol", "bucket", "open", "high", "low", "close", "volume", "notional",
                "vwap", "trade_count", "version")
        .sort("symbol", "bucket")
    )
    return out.collect()
