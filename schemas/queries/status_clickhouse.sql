-- Freshness of what the flows wrote, for `tapeflow status` (jobs/status.py).
-- An empty table gives NULL (the aggregate over no rows, not 1970).

-- name: latest_times
SELECT
    (SELECT if(count() = 0, NULL, max(ts_event)) FROM trades) AS latest_trade,
    (SELECT if(count() = 0, NULL, max(bucket)) FROM candles_1m) AS latest_candle_1m,
    (SELECT if(count() = 0, NULL, max(bucket)) FROM candles_1s) AS latest_candle_1s,
    (SELECT if(count() = 0, NULL, max(ts_event)) FROM executions) AS latest_execution;
