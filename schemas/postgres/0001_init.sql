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

-- Limits per account; the row with account_id '*' is the default for accounts without one.
-- A NULL limit means "not checked".
CREATE TABLE IF NOT EXISTS risk_limits (
    account_id            TEXT PRIMARY KEY,
    max_order_qty         NUMERIC(18, 8),
    max_order_notional    NUMERIC(38, 8),
    price_collar_pct      NUMERIC(9, 4),
    max_position_qty      NUMERIC(18, 8),
    buying_power          NUMERIC(38, 8),
    daily_loss_limit      NUMERIC(38, 8),
    max_drawdown_pct      NUMERIC(9, 4),
    max_concentration_pct NUMERIC(9, 4),
    max_gross_exposure    NUMERIC(38, 8),
    turnover_window_s     INTEGER,
    max_turnover_notional NUMERIC(38, 8),
    stale_after_s         INTEGER,
    warning_pct           NUMERIC(9, 4) NOT NULL DEFAULT 80,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS accounts (
    account_id      TEXT PRIMARY KEY,
    cash            NUMERIC(38, 8) NOT NULL DEFAULT 0,
    realised_pnl    NUMERIC(38, 8) NOT NULL DEFAULT 0,
    unrealised_pnl  NUMERIC(38, 8) NOT NULL DEFAULT 0,
    commissions     NUMERIC(38, 8) NOT NULL DEFAULT 0,
    equity          NUMERIC(38, 8) NOT NULL DEFAULT 0,
    peak_equity     NUMERIC(38, 8) NOT NULL DEFAULT 0,
    version         BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS positions (
    account_id      TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    qty             NUMERIC(18, 8) NOT NULL,  -- signed: negative is short
    avg_px          NUMERIC(18, 8) NOT NULL,
    realised_pnl    NUMERIC(38, 8) NOT NULL,
    unrealised_pnl  NUMERIC(38, 8) NOT NULL,
    mark            NUMERIC(18, 8),
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
