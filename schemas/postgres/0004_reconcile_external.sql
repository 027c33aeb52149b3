-- Reconciliation against outside records (issue 13): a break now says what it compares
-- (`against`: 'store' = the audit trail's replay with Postgres, as before; 'statement' = a
-- broker/clearing statement with the replay; 'oms' = the OMS's final order state with
-- Postgres `orders`), and a value that is text (an order status, a currency) is kept in the
-- *_text columns. Rows recorded before this migration are 'store' breaks.

ALTER TABLE reconciliation_breaks ADD COLUMN IF NOT EXISTS against TEXT NOT NULL
    DEFAULT 'store' CHECK (against IN ('store', 'statement', 'oms'));
ALTER TABLE reconciliation_breaks ADD COLUMN IF NOT EXISTS expected_text TEXT;
ALTER TABLE reconciliation_breaks ADD COLUMN IF NOT EXISTS actual_text TEXT;
ALTER TABLE reconciliation_breaks DROP CONSTRAINT IF EXISTS reconciliation_breaks_pkey;
ALTER TABLE reconciliation_breaks
    ADD PRIMARY KEY (run_date, run_id, against, account_id, symbol, field);

-- How many outside records a run compared, and how many orders it skipped (changed after
-- the cutoff).
ALTER TABLE reconciliation_runs ADD COLUMN IF NOT EXISTS outside_compared INTEGER NOT NULL
    DEFAULT 0;
ALTER TABLE reconciliation_runs ADD COLUMN IF NOT EXISTS outside_skipped INTEGER NOT NULL
    DEFAULT 0;
