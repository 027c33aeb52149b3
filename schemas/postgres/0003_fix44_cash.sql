-- FIX 4.4 lifecycle, alert units, accounts with a currency and cash movements (issue 13).
-- Columns are added with defaults, so rows written before this migration stay valid.

-- The unit of an alert's observed and limit_value (RiskAlert.unit); NULL: no numbers.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS unit TEXT
    CHECK (unit IN ('bps', 'quantity', 'money', 'seconds', 'count'));

-- ExecRefID of a trade cancel or correct.
ALTER TABLE execution_log ADD COLUMN IF NOT EXISTS exec_ref_id TEXT;

-- An account's currency, its net capital (deposits - withdrawals) and the fees charged.
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS currency TEXT NOT NULL DEFAULT 'USD';
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS net_deposits NUMERIC(38, 8) NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS fees NUMERIC(38, 8) NOT NULL DEFAULT 0;

-- Reference data, maintained by operators: the currency of each account that is not in the
-- deployment's default (TAPEFLOW_TRADING_CURRENCY). Read by the trading flow with the limits.
CREATE TABLE IF NOT EXISTS account_currencies (
    account_id  TEXT PRIMARY KEY,
    currency    TEXT NOT NULL CHECK (currency ~ '^[A-Z][A-Z][A-Z]$'),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Append-only: one row per movement_id (oms.cash), with what the core made of it.
CREATE TABLE IF NOT EXISTS cash_movements (
    movement_id     TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('DEPOSIT', 'WITHDRAWAL', 'FEE')),
    amount          NUMERIC(18, 8) NOT NULL,
    currency        TEXT NOT NULL,
    ts_event        TIMESTAMPTZ NOT NULL,
    note            TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'invalid')),
    outcome_detail  TEXT NOT NULL DEFAULT '',
    logged_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cash_movements_account_idx ON cash_movements (account_id, ts_event);
