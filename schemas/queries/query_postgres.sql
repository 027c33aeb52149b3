-- Current state in Postgres for `tapeflow query positions|alerts` (jobs/query_pg.py).
-- Every value is a bound parameter; a NULL parameter means "any".

-- name: positions
SELECT account_id, symbol, qty, avg_px, mark, mark_ts, realised_pnl, unrealised_pnl,
       commissions, opened_ts, ts_last, version
FROM positions
WHERE (%(account)s::text IS NULL OR account_id = %(account)s::text)
  AND (%(symbol)s::text IS NULL OR symbol = %(symbol)s::text)
  AND (NOT %(open_only)s OR qty <> 0)
ORDER BY account_id, symbol;

-- name: alerts
SELECT alert_id, ts_event, rule, severity, account_id, symbol, observed, limit_value, message,
       source_event_id, unit, acknowledged_at, acknowledged_by, ack_note
FROM alerts
WHERE (%(account)s::text IS NULL OR account_id = %(account)s::text)
  AND (cardinality(%(rules)s::text[]) = 0 OR rule = ANY(%(rules)s::text[]))
  AND severity = ANY(%(severities)s::text[])
  AND ts_event >= %(start)s AND ts_event < %(end)s
ORDER BY ts_event, alert_id;
