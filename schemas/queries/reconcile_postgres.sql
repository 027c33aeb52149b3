-- Statements of `tapeflow reconcile` (jobs/reconcile.py) on the operational store.
-- Tables are unqualified: the connection puts the configured schema first on the search_path.

-- name: positions
SELECT account_id, symbol, qty, avg_px, realised_pnl, commissions FROM positions;

-- name: accounts
SELECT account_id, cash, realised_pnl, commissions FROM accounts;

-- name: known_alerts
SELECT alert_id FROM alerts WHERE alert_id = ANY(%(alert_ids)s);

-- name: upsert_run
INSERT INTO reconciliation_runs (run_date, run_id, cutoff, reports, compared, skipped, breaks,
                                 outside_compared, outside_skipped)
VALUES (%(run_date)s, %(run_id)s, %(cutoff)s, %(reports)s, %(compared)s, %(skipped)s,
        %(breaks)s, %(outside_compared)s, %(outside_skipped)s)
ON CONFLICT (run_date, run_id) DO UPDATE SET last_run_at = now();

-- name: insert_break
INSERT INTO reconciliation_breaks (run_date, run_id, against, account_id, symbol, field,
                                   expected, actual, expected_text, actual_text, alert_id)
VALUES (%(run_date)s, %(run_id)s, %(against)s, %(account_id)s, %(symbol)s, %(field)s,
        %(expected)s, %(actual)s, %(expected_text)s, %(actual_text)s, %(alert_id)s)
ON CONFLICT (run_date, run_id, against, account_id, symbol, field) DO NOTHING;

-- name: orders
SELECT order_id, account_id, symbol, cum_qty, status, ts_last FROM orders;
