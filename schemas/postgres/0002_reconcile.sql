-- End-of-day reconciliation records (`tapeflow reconcile --date D`, docs/reconcile.md).
-- A run is identified by (run_date, run_id); run_id is a digest of the date and what the run
-- found, so re-running over unchanged stores rewrites the same run (idempotent) and a
-- different result is a new run. Breaks belong to their run.

CREATE TABLE IF NOT EXISTS reconciliation_runs (
    run_date            DATE NOT NULL,
    run_id              TEXT NOT NULL,
    cutoff              TIMESTAMPTZ NOT NULL,      -- exclusive: reports before it count
    reports             BIGINT NOT NULL,           -- audit-trail reports replayed
    compared            INTEGER NOT NULL,          -- positions and accounts compared
    skipped             INTEGER NOT NULL,          -- with fills after the cutoff
    breaks              INTEGER NOT NULL,
    first_run_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_run_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (run_date, run_id)
);

-- symbol '' is an account-level value (cash, account P&L). expected/actual NULL: the row is
-- missing on that side (audit trail or store).
CREATE TABLE IF NOT EXISTS reconciliation_breaks (
    run_date    DATE NOT NULL,
    run_id      TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    field       TEXT NOT NULL,
    expected    NUMERIC(38, 8),
    actual      NUMERIC(38, 8),
    alert_id    TEXT NOT NULL,
    PRIMARY KEY (run_date, run_id, account_id, symbol, field),
    FOREIGN KEY (run_date, run_id) REFERENCES reconciliation_runs (run_date, run_id)
        ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS reconciliation_breaks_account_idx
    ON reconciliation_breaks (account_id, run_date);
