-- Current state in Postgres for the live view (tapeflow/web). Every value is a bound
-- parameter; a NULL parameter means "any". Rows changed since a time come with a margin: the
-- reader asks again from a little before its last answer and keeps the newest version of each
-- row, so a transaction that committed late is not missed.

-- name: accounts
SELECT a.account_id, a.cash, a.realised_pnl, a.unrealised_pnl, a.commissions, a.equity,
       a.peak_equity, trim_scale(COALESCE(x.gross_exposure, 0)) AS gross_exposure,
       COALESCE(x.open_positions, 0) AS open_positions, a.ts_last, a.version, a.updated_at
FROM accounts a
LEFT JOIN LATERAL (
    SELECT SUM(ABS(p.qty * COALESCE(p.mark, p.avg_px, 0))) AS gross_exposure,
           COUNT(*) FILTER (WHERE p.qty <> 0) AS open_positions
    FROM positions p
    WHERE p.account_id = a.account_id
) x ON TRUE
WHERE (%(accounts)s::text[] IS NULL OR a.account_id = ANY(%(accounts)s::text[]))
  AND a.updated_at >= %(since)s
ORDER BY a.account_id;

-- name: positions
SELECT account_id, symbol, qty, avg_px, mark, mark_ts, realised_pnl, unrealised_pnl,
       commissions, opened_ts, ts_last, version, updated_at
FROM positions
WHERE (%(accounts)s::text[] IS NULL OR account_id = ANY(%(accounts)s::text[]))
  AND (%(account)s::text IS NULL OR account_id = %(account)s::text)
  AND updated_at >= %(since)s
ORDER BY account_id, symbol;

-- name: alerts
SELECT alert_id, ts_event, rule, severity, account_id, symbol, observed, limit_value, message,
       source_event_id, acknowledged_at, acknowledged_by
FROM alerts
WHERE (%(accounts)s::text[] IS NULL OR account_id = ANY(%(accounts)s::text[]))
ORDER BY ts_event DESC, alert_id
LIMIT %(limit)s;
