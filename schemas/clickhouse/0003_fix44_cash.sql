-- FIX 4.4 lifecycle, alert units and cash movements (issue 13). Columns are added with
-- defaults (NULL), so parts written before this migration read as before.

ALTER TABLE executions ADD COLUMN IF NOT EXISTS exec_ref_id Nullable(String);

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS unit LowCardinality(Nullable(String));

-- The audit trail of cash movements as received (oms.cash), with the core's outcome:
-- with `executions`, what the reconciliation replays.
CREATE TABLE IF NOT EXISTS cash_movements
(
    movement_id     String,
    account_id      String,
    kind            LowCardinality(String),
    amount          Decimal(18, 8),
    currency        LowCardinality(String),
    ts_event        DateTime64(6, 'UTC'),
    note            Nullable(String),
    outcome         LowCardinality(String),
    outcome_detail  String,
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (account_id, movement_id)
