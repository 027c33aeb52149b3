-- What the market and trading flows wrote to ClickHouse, for `tapeflow demo`'s summary.

-- name: tick_counts
SELECT
    (SELECT count() FROM trades FINAL) AS clean_trades,
    (SELECT count() FROM quotes FINAL) AS clean_quotes,
    (SELECT count() FROM rejected_ticks FINAL) AS rejected,
    (SELECT count() FROM candles_1s FINAL) AS candles_1s,
    (SELECT count() FROM candles_1m FINAL) AS candles_1m;

-- name: rejections_by_reason
SELECT kind, reason, count() AS n
FROM rejected_ticks FINAL
GROUP BY kind, reason
ORDER BY n DESC, kind, reason;
