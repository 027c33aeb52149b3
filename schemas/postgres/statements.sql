-- Statements of the Postgres sinks and loaders (tapeflow/services/postgres_sql.py reads this file).
-- Not a migration: jobs/migrate.py applies only files named NNNN_name.sql.
--
-- Each statement starts with a line `-- name: <name>` and runs to the next one. Parameters
-- are bound by psycopg (named placeholders, one per column of the row mappers in
-- sinks/postgres/rows.py); tables are unqualified: the connection puts the configured
-- schema first on the search_path (tapeflow/services/postgres.py, connect_postgres).
--
-- State tables are upserts guarded by the monotonic version: a row replaces the stored one
-- only when its version is higher, so a replay (older or equal version) never moves state
-- backwards. The append-only tables keep the first row written for a key.

-- name: upsert_orders
INSERT INTO orders (
    order_id, client_order_id, account_id, symbol, side, order_type, order_qty,
    limit_price, stop_price, cum_qty, leaves_qty, avg_px, status, last_exec_id,
    ts_created, ts_last, version, updated_at
) VALUES (
    %(order_id)s, %(client_order_id)s, %(account_id)s, %(symbol)s, %(side)s, %(order_type)s,
    %(order_qty)s, %(limit_price)s, %(stop_price)s, %(cum_qty)s, %(leaves_qty)s, %(avg_px)s,
    %(status)s, %(last_exec_id)s, %(ts_created)s, %(ts_last)s, %(version)s, now()
)
ON CONFLICT (order_id) DO UPDATE SET
    client_order_id = EXCLUDED.client_order_id,
    account_id = EXCLUDED.account_id,
    symbol = EXCLUDED.symbol,
    side = EXCLUDED.side,
    order_type = EXCLUDED.order_type,
    order_qty = EXCLUDED.order_qty,
    limit_price = EXCLUDED.limit_price,
    stop_price = EXCLUDED.stop_price,
    cum_qty = EXCLUDED.cum_qty,
    leaves_qty = EXCLUDED.leaves_qty,
    avg_px = EXCLUDED.avg_px,
    status = EXCLUDED.status,
    last_exec_id = EXCLUDED.last_exec_id,
    ts_created = EXCLUDED.ts_created,
    ts_last = EXCLUDED.ts_last,
    version = EXCLUDED.version,
    updated_at = now()
WHERE orders.version < EXCLUDED.version;

-- name: upsert_positions
INSERT INTO positions (
    account_id, symbol, qty, avg_px, realised_pnl, unrealised_pnl, commissions, mark,
    mark_ts, opened_ts, ts_last, version, updated_at
) VALUES (
    %(account_id)s, %(symbol)s, %(qty)s, %(avg_px)s, %(realised_pnl)s, %(unrealised_pnl)s,
    %(commissions)s, %(mark)s, %(mark_ts)s, %(opened_ts)s, %(ts_last)s, %(version)s, now()
)
ON CONFLICT (account_id, symbol) DO UPDATE SET
    qty = EXCLUDED.qty,
    avg_px = EXCLUDED.avg_px,
    realised_pnl = EXCLUDED.realised_pnl,
    unrealised_pnl = EXCLUDED.unrealised_pnl,
    commissions = EXCLUDED.commissions,
    mark = EXCLUDED.mark,
    mark_ts = EXCLUDED.mark_ts,
    opened_ts = EXCLUDED.opened_ts,
    ts_last = EXCLUDED.ts_last,
    version = EXCLUDED.version,
    updated_at = now()
WHERE positions.version < EXCLUDED.version;

-- name: upsert_accounts
INSERT INTO accounts (
    account_id, cash, realised_pnl, unrealised_pnl, commissions, equity, peak_equity,
    ts_last, version, currency, net_deposits, fees, updated_at
) VALUES (
    %(account_id)s, %(cash)s, %(realised_pnl)s, %(unrealised_pnl)s, %(commissions)s,
    %(equity)s, %(peak_equity)s, %(ts_last)s, %(version)s, %(currency)s, %(net_deposits)s,
    %(fees)s, now()
)
ON CONFLICT (account_id) DO UPDATE SET
    currency = EXCLUDED.currency,
    net_deposits = EXCLUDED.net_deposits,
    fees = EXCLUDED.fees,
    cash = EXCLUDED.cash,
    realised_pnl = EXCLUDED.realised_pnl,
    unrealised_pnl = EXCLUDED.unrealised_pnl,
    commissions = EXCLUDED.commissions,
    equity = EXCLUDED.equity,
    peak_equity = EXCLUDED.peak_equity,
    ts_last = EXCLUDED.ts_last,
    version = EXCLUDED.version,
    updated_at = now()
WHERE accounts.version < EXCLUDED.version;

-- name: insert_execution_log
INSERT INTO execution_log (
    exec_id, order_id, account_id, symbol, exec_type, ord_status, last_qty, last_px,
    commission, outcome, outcome_detail, ts_event, exec_ref_id
) VALUES (
    %(exec_id)s, %(order_id)s, %(account_id)s, %(symbol)s, %(exec_type)s, %(ord_status)s,
    %(last_qty)s, %(last_px)s, %(commission)s, %(outcome)s, %(outcome_detail)s, %(ts_event)s,
    %(exec_ref_id)s
)
ON CONFLICT (exec_id) DO NOTHING;

-- name: insert_cash_movements
INSERT INTO cash_movements (
    movement_id, account_id, kind, amount, currency, ts_event, note, outcome, outcome_detail
) VALUES (
    %(movement_id)s, %(account_id)s, %(kind)s, %(amount)s, %(currency)s, %(ts_event)s,
    %(note)s, %(outcome)s, %(outcome_detail)s
)
ON CONFLICT (movement_id) DO NOTHING;

-- Acknowledgement columns are written by operators only: never listed here.
-- name: insert_alerts
INSERT INTO alerts (
    alert_id, rule, severity, account_id, symbol, ts_event, observed, limit_value, message,
    source_event_id, unit
) VALUES (
    %(alert_id)s, %(rule)s, %(severity)s, %(account_id)s, %(symbol)s, %(ts_event)s,
    %(observed)s, %(limit_value)s, %(message)s, %(source_event_id)s, %(unit)s
)
ON CONFLICT (alert_id) DO NOTHING;

-- name: select_risk_limits
SELECT
    account_id, warn_bps, max_order_qty, max_order_notional, price_collar_bps,
    max_position_qty, max_leverage, max_daily_loss, max_drawdown_bps, max_concentration_bps,
    max_gross_exposure, turnover_window_us, max_turnover_notional, turnover_buckets,
    max_mark_age_us, gap_critical_missing, gap_clear_after_us, session_order_severity,
    session_fill_severity
FROM risk_limits
ORDER BY account_id;

-- name: select_risk_symbol_limits
SELECT account_id, symbol, max_position_qty
FROM risk_symbol_limits
ORDER BY account_id, symbol;

-- name: select_account_currencies
SELECT account_id, currency
FROM account_currencies
ORDER BY account_id;

-- name: select_instruments
SELECT symbol, tick_size, lot_size, session_open, session_close, price_band_pct
FROM instruments
ORDER BY symbol;

-- name: insert_dlq_replay
INSERT INTO dlq_replays (letter_id, reason, source, target, dlq_partition, dlq_offset)
VALUES (%(letter_id)s, %(reason)s, %(source)s, %(target)s, %(dlq_partition)s, %(dlq_offset)s)
ON CONFLICT (letter_id) DO NOTHING;

-- name: select_dlq_replays
SELECT letter_id FROM dlq_replays;

-- The COPY path of the trading writer (sinks/postgres/writer.py, method "copy"): per table, a
-- temporary stage table shaped like it (created once per session, emptied at every commit),
-- COPY of the batch's rows into it, and one INSERT ... SELECT with the same conflict rule and
-- version guard as the upsert above. The writer keeps one row per key in a batch, so no
-- statement meets a key twice.

-- name: stage_orders
CREATE TEMP TABLE IF NOT EXISTS stage_orders (LIKE orders INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;

-- name: copy_orders
COPY stage_orders (
    order_id, client_order_id, account_id, symbol, side, order_type, order_qty,
    limit_price, stop_price, cum_qty, leaves_qty, avg_px, status, last_exec_id,
    ts_created, ts_last, version
) FROM STDIN;

-- name: merge_orders
INSERT INTO orders (
    order_id, client_order_id, account_id, symbol, side, order_type, order_qty,
    limit_price, stop_price, cum_qty, leaves_qty, avg_px, status, last_exec_id,
    ts_created, ts_last, version, updated_at
)
SELECT
    order_id, client_order_id, account_id, symbol, side, order_type, order_qty,
    limit_price, stop_price, cum_qty, leaves_qty, avg_px, status, last_exec_id,
    ts_created, ts_last, version, now()
FROM stage_orders
ON CONFLICT (order_id) DO UPDATE SET
    client_order_id = EXCLUDED.client_order_id,
    account_id = EXCLUDED.account_id,
    symbol = EXCLUDED.symbol,
    side = EXCLUDED.side,
    order_type = EXCLUDED.order_type,
    order_qty = EXCLUDED.order_qty,
    limit_price = EXCLUDED.limit_price,
    stop_price = EXCLUDED.stop_price,
    cum_qty = EXCLUDED.cum_qty,
    leaves_qty = EXCLUDED.leaves_qty,
    avg_px = EXCLUDED.avg_px,
    status = EXCLUDED.status,
    last_exec_id = EXCLUDED.last_exec_id,
    ts_created = EXCLUDED.ts_created,
    ts_last = EXCLUDED.ts_last,
    version = EXCLUDED.version,
    updated_at = now()
WHERE orders.version < EXCLUDED.version;

-- name: stage_positions
CREATE TEMP TABLE IF NOT EXISTS stage_positions (LIKE positions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;

-- name: copy_positions
COPY stage_positions (
    account_id, symbol, qty, avg_px, realised_pnl, unrealised_pnl, commissions, mark,
    mark_ts, opened_ts, ts_last, version
) FROM STDIN;

-- name: merge_positions
INSERT INTO positions (
    account_id, symbol, qty, avg_px, realised_pnl, unrealised_pnl, commissions, mark,
    mark_ts, opened_ts, ts_last, version, updated_at
)
SELECT
    account_id, symbol, qty, avg_px, realised_pnl, unrealised_pnl, commissions, mark,
    mark_ts, opened_ts, ts_last, version, now()
FROM stage_positions
ON CONFLICT (account_id, symbol) DO UPDATE SET
    qty = EXCLUDED.qty,
    avg_px = EXCLUDED.avg_px,
    realised_pnl = EXCLUDED.realised_pnl,
    unrealised_pnl = EXCLUDED.unrealised_pnl,
    commissions = EXCLUDED.commissions,
    mark = EXCLUDED.mark,
    mark_ts = EXCLUDED.mark_ts,
    opened_ts = EXCLUDED.opened_ts,
    ts_last = EXCLUDED.ts_last,
    version = EXCLUDED.version,
    updated_at = now()
WHERE positions.version < EXCLUDED.version;

-- name: stage_accounts
CREATE TEMP TABLE IF NOT EXISTS stage_accounts (LIKE accounts INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;

-- name: copy_accounts
COPY stage_accounts (
    account_id, cash, realised_pnl, unrealised_pnl, commissions, equity, peak_equity,
    ts_last, version, currency, net_deposits, fees
) FROM STDIN;

-- name: merge_accounts
INSERT INTO accounts (
    account_id, cash, realised_pnl, unrealised_pnl, commissions, equity, peak_equity,
    ts_last, version, currency, net_deposits, fees, updated_at
)
SELECT
    account_id, cash, realised_pnl, unrealised_pnl, commissions, equity, peak_equity,
    ts_last, version, currency, net_deposits, fees, now()
FROM stage_accounts
ON CONFLICT (account_id) DO UPDATE SET
    currency = EXCLUDED.currency,
    net_deposits = EXCLUDED.net_deposits,
    fees = EXCLUDED.fees,
    cash = EXCLUDED.cash,
    realised_pnl = EXCLUDED.realised_pnl,
    unrealised_pnl = EXCLUDED.unrealised_pnl,
    commissions = EXCLUDED.commissions,
    equity = EXCLUDED.equity,
    peak_equity = EXCLUDED.peak_equity,
    ts_last = EXCLUDED.ts_last,
    version = EXCLUDED.version,
    updated_at = now()
WHERE accounts.version < EXCLUDED.version;

-- name: stage_execution_log
CREATE TEMP TABLE IF NOT EXISTS stage_execution_log (LIKE execution_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;

-- name: copy_execution_log
COPY stage_execution_log (
    exec_id, order_id, account_id, symbol, exec_type, ord_status, last_qty, last_px,
    commission, outcome, outcome_detail, ts_event, exec_ref_id
) FROM STDIN;

-- name: merge_execution_log
INSERT INTO execution_log (
    exec_id, order_id, account_id, symbol, exec_type, ord_status, last_qty, last_px,
    commission, outcome, outcome_detail, ts_event, exec_ref_id
)
SELECT
    exec_id, order_id, account_id, symbol, exec_type, ord_status, last_qty, last_px,
    commission, outcome, outcome_detail, ts_event, exec_ref_id
FROM stage_execution_log
ON CONFLICT (exec_id) DO NOTHING;

-- name: stage_cash_movements
CREATE TEMP TABLE IF NOT EXISTS stage_cash_movements (LIKE cash_movements INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;

-- name: copy_cash_movements
COPY stage_cash_movements (
    movement_id, account_id, kind, amount, currency, ts_event, note, outcome, outcome_detail
) FROM STDIN;

-- name: merge_cash_movements
INSERT INTO cash_movements (
    movement_id, account_id, kind, amount, currency, ts_event, note, outcome, outcome_detail
)
SELECT
    movement_id, account_id, kind, amount, currency, ts_event, note, outcome, outcome_detail
FROM stage_cash_movements
ON CONFLICT (movement_id) DO NOTHING;

-- Acknowledgement columns are written by operators only: never listed here.
-- name: stage_alerts
CREATE TEMP TABLE IF NOT EXISTS stage_alerts (LIKE alerts INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;

-- name: copy_alerts
COPY stage_alerts (
    alert_id, rule, severity, account_id, symbol, ts_event, observed, limit_value, message,
    source_event_id, unit
) FROM STDIN;

-- name: merge_alerts
INSERT INTO alerts (
    alert_id, rule, severity, account_id, symbol, ts_event, observed, limit_value, message,
    source_event_id, unit
)
SELECT
    alert_id, rule, severity, account_id, symbol, ts_event, observed, limit_value, message,
    source_event_id, unit
FROM stage_alerts
ON CONFLICT (alert_id) DO NOTHING;
