-- Tapeflow operational store (Postgres): current state and operations.
-- Applied by `tapeflow init` with search_path set to the configured schema.
-- Every state table carries a monotonic `version`; sinks upsert with
-- `... ON CONFLICT DO UPDATE ... WHERE table.version < excluded.version`, so a replayed
-- (older or equal) write never moves state backwards.

CREATE TABLE IF NOT EXISTS instruments (
    symbol          TEXT PRIMARY KEY,
    tick_size       NUMERIC(18, 8) NOT NULL CHECK (tick_size > 0),
    lot_size        NUMERIC(18, 8) NOT NULL CHECK (lot_size > 0),
    session_open    TIME NOT NULL,            -- UTC
    session_close   TIME NOT NULL,            -- UTC
    price_band_pct  NUMERIC(9, 4) NOT NULL DEFAULT 10,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Limits per account, one column per field of `tapeflow.risk_limits.RiskLimits`, same name and
-- unit: quantities and money in units (NUMERIC, at most 8 decimals), ratios in basis points,
-- durations in microseconds. The row with account_id '*' is the default for accounts without
-- a row of their own; an account's row replaces the default whole (no per-column inheritance).
-- A NULL limit means "rule off". Column defaults are RiskLimits' defaults, so a row inserted
-- with only an account_id holds exactly `RiskLimits()`.
CREATE TABLE IF NOT EXISTS risk_limits (
    account_id             TEXT PRIMARY KEY,
    warn_bps               INTEGER NOT NULL DEFAULT 8000 CHECK (warn_bps BETWEEN 1 AND 10000),
    max_order_qty          NUMERIC(18, 8) DEFAULT 100000 CHECK (max_order_qty >= 0),
    max_order_notional     NUMERIC(38, 8) DEFAULT 1000000 CHECK (max_order_notional >= 0),
    price_collar_bps       INTEGER DEFAULT 500 CHECK (price_collar_bps >= 0),
    max_position_qty       NUMERIC(18, 8) DEFAULT 500000 CHECK (max_position_qty >= 0),
    max_leverage           NUMERIC(18, 8) DEFAULT 1 CHECK (max_leverage >= 0),
    max_daily_loss         NUMERIC(38, 8) DEFAULT 50000 CHECK (max_daily_loss >= 0),
    max_drawdown_bps       INTEGER DEFAULT 2000 CHECK (max_drawdown_bps >= 0),
    max_concentration_bps  INTEGER DEFAULT 5000 CHECK (max_concentration_bps >= 0),
    max_gross_exposure     NUMERIC(38, 8) DEFAULT 5000000 CHECK (max_gross_exposure >= 0),
    turnover_window_us     BIGINT NOT NULL DEFAULT 60000000 CHECK (turnover_window_us > 0),
    max_turnover_notional  NUMERIC(38, 8) DEFAULT 2000000 CHECK (max_turnover_notional >= 0),
    turnover_buckets       INTEGER NOT NULL DEFAULT 60 CHECK (turnover_buckets > 0),
    max_mark_age_us        BIGINT DEFAULT 60000000 CHECK (max_mark_age_us >= 0),
    gap_critical_missing   BIGINT NOT NULL DEFAULT 100 CHECK (gap_critical_missing > 0),
    gap_clear_after_us     BIGINT NOT NULL DEFAULT 60000000 CHECK (gap_clear_after_us >= 0),
    session_order_severity TEXT NOT NULL DEFAULT 'WARNING'
        CHECK (session_order_severity IN ('INFO', 'WARNING', 'CRITICAL')),
    session_fill_severity  TEXT NOT NULL DEFAULT 'CRITICAL'
        CHECK (session_fill_severity IN ('INFO', 'WARNING', 'CRITICAL')),
    updated_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- RiskLimits.symbol_position_qty: per-symbol overrides of max_position_qty for one row of
-- risk_limits (the default row's apply to accounts that use the default row).
CREATE TABLE IF NOT EXISTS risk_symbol_limits (
    account_id       TEXT NOT NULL REFERENCES risk_limits (account_id) ON DELETE CASCADE,
    symbol           TEXT NOT NULL,
    max_position_qty NUMERIC(18, 8) NOT NULL CHECK (max_position_qty >= 0),
    PRIMARY KEY (account_id, symbol)
);

CREATE TABLE IF NOT EXISTS accounts (
    account_id      TEXT PRIMARY KEY,
    cash            NUMERIC(38, 8) NOT NULL DEFAULT 0,
    realised_pnl    NUMERIC(38, 8) NOT NULL DEFAULT 0,
    unrealised_pnl  NUMERIC(38, 8) NOT NULL DEFAULT 0,
    commissions     NUMERIC(38, 8) NOT NULL DEFAULT 0,
    equity          NUMERIC(38, 8) NOT NULL DEFAULT 0,
    peak_equity     NUMERIC(38, 8) NOT NULL DEFAULT 0,
    ts_last         TIMESTAMPTZ NOT NULL,     -- event time of the last change
    version         BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS positions (
    account_id      TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    qty             NUMERIC(18, 8) NOT NULL,  -- signed: negative is short
    avg_px          NUMERIC(18, 8),           -- NULL when flat
    realised_pnl    NUMERIC(38, 8) NOT NULL,
    unrealised_pnl  NUMERIC(38, 8) NOT NULL,
    commissions     NUMERIC(38, 8) NOT NULL DEFAULT 0,
    mark            NUMERIC(18, 8),
    mark_ts         TIMESTAMPTZ,              -- NULL: valued at its fill price, no mark yet
    opened_ts       TIMESTAMPTZ,              -- NULL when flat
    ts_last         TIMESTAMPTZ NOT NULL,
    version         BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, symbol)
);

CREATE TABLE IF NOT EXISTS orders (
    order_id        TEXT PRIMARY KEY,
    client_order_id TEXT,
    account_id      TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type      TEXT NOT NULL,
    order_qty       NUMERIC(18, 8) NOT NULL,
    limit_price     NUMERIC(18, 8),
    stop_price      NUMERIC(18, 8),
    cum_qty         NUMERIC(18, 8) NOT NULL,
    leaves_qty      NUMERIC(18, 8) NOT NULL,
    avg_px          NUMERIC(18, 8),
    status          TEXT NOT NULL,
    last_exec_id    TEXT NOT NULL,
    ts_created      TIMESTAMPTZ NOT NULL,
    ts_last         TIMESTAMPTZ NOT NULL,
    version         BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_account_idx ON orders (account_id, status);

-- Append-only: one row per exec_id, whatever happened to it.
CREATE TABLE IF NOT EXISTS execution_log (
    exec_id         TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    exec_type       TEXT NOT NULL,
    ord_status      TEXT NOT NULL,
    last_qty        NUMERIC(18, 8) NOT NULL,
    last_px         NUMERIC(18, 8),
    commission      NUMERIC(18, 8),
    outcome         TEXT NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'invalid')),
    outcome_detail  TEXT NOT NULL DEFAULT '',
    ts_event        TIMESTAMPTZ NOT NULL,
    logged_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS execution_log_account_idx ON execution_log (account_id, ts_event);

CREATE TABLE IF NOT EXISTS alerts (
    alert_id         TEXT PRIMARY KEY,
    rule             TEXT NOT NULL,
    severity         TEXT NOT NULL CHECK (severity IN ('INFO', 'WARNING', 'CRITICAL')),
    account_id       TEXT,
    symbol           TEXT,
    ts_event         TIMESTAMPTZ NOT NULL,
    observed         NUMERIC(38, 8),
    limit_value      NUMERIC(38, 8),
    message          TEXT NOT NULL,
    source_event_id  TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    acknowledged_at  TIMESTAMPTZ,
    acknowledged_by  TEXT,
    ack_note         TEXT
);
CREATE INDEX IF NOT EXISTS alerts_account_idx ON alerts (account_id, ts_event);

INSERT INTO risk_limits (account_id) VALUES ('*') ON CONFLICT (account_id) DO NOTHING;
