-- Statements of `tapeflow reconcile` (jobs/reconcile.py) on the operational store.
-- Tables are unqualified: the connection puts the configured schema first on the search_path.

-- name: positions
SELECT account_id, symbol, qty, avg_px, realised_pnl, commissions FROM positions;

-- name: accounts
SELECT account_id, cash, realised_pnl, commissions FROM accounts;

-- name: known_alerts
SELECT alert_id FROM alerts WHERE alert_id = ANY(%(alert_ids)s);

-- name: upsert_run
INSERT INTO reconciliation_runs (run_date, run_id, cutoff, reports, compared, skipped, breaks)
VALUES (%(run_date)s, %(run_id)s, %(cutoff)s, %(reports)s, %(compared)s, %(skipped)s,
        %(breaks)s)
ON CONFLICT (run_date, run_id) DO UPDATE SET last_run_at = now();

-- name: insert_break
INSERT INTO reconciliation_breaks (run_date, run_id, account_id, symbol, field, expected,
                                   actual, alert_id)
VALUES (%(run_date)s, %(run_id)s, %(account_id)s, %(symbol)s, %(field)s, %(expected)s,
        %(actual)s, %(alert_id)s)
ON CONFLICT (run_date, run_id, account_id, symbol, field) DO NOTHING;
