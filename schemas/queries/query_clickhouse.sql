-- Analytics queries for `tapeflow query` and `tapeflow chart` (jobs/query.py, docs/query.md).
-- Every value comes in as a server-side bound parameter ({name:Type}); nothing is pasted in.
-- Times are bound as integer microseconds since the epoch (UTC), the core's unit, so no
-- time zone or sub-second rounding happens on the way. Every table is a ReplacingMergeTree,
-- read with FINAL so a replayed row or an older candle version is never counted.
-- vwap = notional / volume rounded half-even to scale 8, computed on the unscaled integers
-- (notional at scale 16, volume at scale 8) exactly as tapeflow.core.fixedpoint.div_round does.

-- name: candles_1s
SELECT symbol, bucket, open, high, low, close, volume, notional, vwap, trade_count, version
FROM candles_1s FINAL
WHERE has({symbols:Array(String)}, symbol)
  AND bucket >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND bucket < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
ORDER BY symbol, bucket;

-- name: candles_1m
SELECT symbol, bucket, open, high, low, close, volume, notional, vwap, trade_count, version
FROM candles_1m FINAL
WHERE has({symbols:Array(String)}, symbol)
  AND bucket >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND bucket < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
ORDER BY symbol, bucket;

-- Coarse candles rolled up from 1 min parts, the same rule as tapeflow/core/market/rollup.py: open of the
-- earliest part, close of the latest, extremes, sums (version = sum of the parts' versions =
-- trade count). The caller aligns start_us and end_us to the coarse width, so every coarse
-- bucket returned is built from all of its parts.
-- name: candles_rollup
SELECT
    symbol,
    fromUnixTimestamp64Micro(coarse_us, 'UTC') AS bucket,
    open, high, low, close, volume, notional,
    CAST(toDecimal256(vwap_units, 8) / 100000000 AS Decimal(18, 8)) AS vwap,
    trade_count, version
FROM
(
    SELECT
        *,
        toInt256(toDecimal256(notional, 16) * 10000000000000000) AS notional_units,
        toInt256(toDecimal256(volume, 8) * 100000000) AS volume_units,
        intDiv(notional_units, volume_units) AS q,
        notional_units - q * volume_units AS r,
        q + if(2 * r > volume_units OR (2 * r = volume_units AND q % 2 = 1), 1, 0) AS vwap_units
    FROM
    (
        SELECT
            symbol,
            intDiv(toUnixTimestamp64Micro(bucket), {width_us:Int64}) * {width_us:Int64} AS coarse_us,
            argMin(open, bucket) AS open,
            max(high) AS high,
            min(low) AS low,
            argMax(close, bucket) AS close,
            sum(volume) AS volume,
            sum(notional) AS notional,
            sum(trade_count) AS trade_count,
            sum(version) AS version
        FROM candles_1m FINAL
        WHERE has({symbols:Array(String)}, symbol)
          AND bucket >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
          AND bucket < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
        GROUP BY symbol, coarse_us
    )
)
ORDER BY symbol, bucket;

-- VWAP per symbol over [start, end) straight from the clean trades (any boundaries, to the
-- microsecond). An empty symbol list means every symbol. Products and sums in Decimal(76, 16):
-- price x size is exact at scale 16 and no sum can overflow.
-- name: vwap_range
SELECT
    symbol,
    first_trade,
    last_trade,
    CAST(toDecimal256(volume_units, 8) / 100000000 AS Decimal(38, 8)) AS volume,
    CAST(toDecimal256(notional_units, 16) / 10000000000000000 AS Decimal(38, 16)) AS notional,
    CAST(toDecimal256(vwap_units, 8) / 100000000 AS Decimal(18, 8)) AS vwap,
    trade_count
FROM
(
    SELECT
        *,
        intDiv(notional_units, volume_units) AS q,
        notional_units - q * volume_units AS r,
        q + if(2 * r > volume_units OR (2 * r = volume_units AND q % 2 = 1), 1, 0) AS vwap_units
    FROM
    (
        SELECT
            symbol,
            min(ts_event) AS first_trade,
            max(ts_event) AS last_trade,
            toInt256(sum(toDecimal256(price, 8) * size) * 10000000000000000) AS notional_units,
            toInt256(sum(toDecimal256(size, 8)) * 100000000) AS volume_units,
            count() AS trade_count
        FROM trades FINAL
        WHERE (empty({symbols:Array(String)}) OR has({symbols:Array(String)}, symbol))
          AND ts_event >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
          AND ts_event < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
        GROUP BY symbol
    )
)
ORDER BY symbol;

-- Symbols with 1 min candles in [start, end): for `vwap --interval` without --symbol.
-- name: candle_symbols
SELECT DISTINCT symbol
FROM candles_1m FINAL
WHERE bucket >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND bucket < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
ORDER BY symbol;

-- Rejected ticks counted by kind, reason and symbol over [start, end) of event time.
-- name: rejects
SELECT kind, reason, symbol, count() AS rejected
FROM rejected_ticks FINAL
WHERE (empty({symbols:Array(String)}) OR has({symbols:Array(String)}, symbol))
  AND ts_event >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND ts_event < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
GROUP BY kind, reason, symbol
ORDER BY rejected DESC, kind, reason, symbol;

-- P&L history of one account: the account-level rows (symbol '') or one symbol's rows.
-- name: pnl
SELECT account_id, symbol, ts, qty, avg_px, mark, realised_pnl, unrealised_pnl, cash, equity
FROM pnl_snapshots FINAL
WHERE account_id = {account:String}
  AND symbol = {symbol:String}
  AND ts >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND ts < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
ORDER BY ts;

-- Alerts with optional filters (an empty array or '' means "any").
-- name: alerts
SELECT alert_id, ts_event, rule, severity, account_id, symbol, observed, limit_value, message,
       source_event_id, unit
FROM alerts FINAL
WHERE ({account:String} = '' OR account_id = {account:String})
  AND (empty({rules:Array(String)}) OR has({rules:Array(String)}, rule))
  AND has({severities:Array(String)}, severity)
  AND ts_event >= fromUnixTimestamp64Micro({start_us:Int64}, 'UTC')
  AND ts_event < fromUnixTimestamp64Micro({end_us:Int64}, 'UTC')
ORDER BY ts_event, alert_id;
