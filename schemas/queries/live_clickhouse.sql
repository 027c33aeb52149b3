-- Market data for the live view's symbol page (tapeflow/web). Server-side bound parameters.

-- name: last_trade
SELECT price, ts_event
FROM trades FINAL
WHERE symbol = {symbol:String}
ORDER BY ts_event DESC, seq DESC
LIMIT 1;

-- name: rejects_by_reason
SELECT kind, reason, count() AS n
FROM rejected_ticks FINAL
WHERE symbol = {symbol:String}
GROUP BY kind, reason
ORDER BY n DESC, kind, reason;

-- name: symbols
SELECT DISTINCT symbol FROM candles_1m FINAL ORDER BY symbol;
