-- The execution audit trail for `tapeflow reconcile` (jobs/reconcile.py).
-- FINAL: one row per (account_id, exec_id) even before ClickHouse merges the replays.
-- The core decides duplicates and invalid reports again; the stored `outcome` is not used.

-- name: audit_trail
SELECT
    exec_id, order_id, client_order_id, account_id, symbol, side, order_type, exec_type,
    ord_status, order_qty, limit_price, stop_price, last_qty, last_px, cum_qty, leaves_qty,
    avg_px, commission, reject_reason, ts_event, exec_ref_id
FROM executions FINAL
ORDER BY account_id, ts_event, exec_id;

-- The cash movements the flow received (oms.cash); the core decides their outcome again.
-- name: cash_movements
SELECT movement_id, account_id, kind, amount, currency, ts_event, note
FROM cash_movements FINAL
ORDER BY account_id, ts_event, movement_id
