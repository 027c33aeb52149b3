-- Tapeflow analytics store (ClickHouse). Applied by `tapeflow init` into the configured
-- database, one statement at a time (split on ';'; keep ';' out of comments).
-- Every table is a ReplacingMergeTree keyed so a replayed record is one row: sinks may
-- deliver a record twice (recovery replays), the table must not care. Query with FINAL
-- (or argMax by version) to see the settled rows before background merges.

CREATE TABLE IF NOT EXISTS trades
(
    symbol      String,
    venue       LowCardinality(String),
    ts_event    DateTime64(6, 'UTC'),
    seq         Int64,
    price       Decimal(18, 8),
    size        Decimal(18, 8),
    trade_id    Nullable(String),
    conditions  Array(String),
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (symbol, ts_event, venue, seq);

CREATE TABLE IF NOT EXISTS quotes
(
    symbol      String,
    venue       LowCardinality(String),
    ts_event    DateTime64(6, 'UTC'),
    seq         Int64,
    bid_px      Decimal(18, 8),
    bid_sz      Decimal(18, 8),
    ask_px      Decimal(18, 8),
    ask_sz      Decimal(18, 8),
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (symbol, ts_event, venue, seq);

-- Every rejected tick with its reason: nothing is dropped silently. The tick is kept whole
-- (the fields its kind does not have are NULL, `conditions` empty) so a rejection can be audited.
-- The key is the whole tick plus the reason: a replayed rejection is one row, and two ticks that
-- differ in any field (a re-sent seq with another price) are two rows. Identical content that
-- arrived twice with the same reason is one row: no replay-safe identity tells such arrivals
-- apart from a replay (docs/stores.md). `detail` is an explanation, not identity: not in the key.
CREATE TABLE IF NOT EXISTS rejected_ticks
(
    kind        LowCardinality(String),   -- 'trade' or 'quote'
    reason      LowCardinality(String),
    symbol      String,
    venue       LowCardinality(String),
    ts_event    DateTime64(6, 'UTC'),
    seq         Int64,
    price       Nullable(Decimal(18, 8)),
    size        Nullable(Decimal(18, 8)),
    trade_id    Nullable(String),
    conditions  Array(String),
    bid_px      Nullable(Decimal(18, 8)),
    bid_sz      Nullable(Decimal(18, 8)),
    ask_px      Nullable(Decimal(18, 8)),
    ask_sz      Nullable(Decimal(18, 8)),
    detail      String,
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (kind, symbol, venue, ts_event, seq, reason,
          price, size, trade_id, conditions, bid_px, bid_sz, ask_px, ask_sz)
SETTINGS allow_nullable_key = 1;

-- Final candles. `version` rises with each late correction; the highest wins.
-- volume and notional are exact sums (notional = sum(price * size) at scale 16).
CREATE TABLE IF NOT EXISTS candles_1s
(
    symbol      String,
    bucket      DateTime64(6, 'UTC'),
    open        Decimal(18, 8),
    high        Decimal(18, 8),
    low         Decimal(18, 8),
    close       Decimal(18, 8),
    volume      Decimal(38, 8),
    notional    Decimal(38, 16),
    vwap        Decimal(18, 8),
    trade_count UInt64,
    version     UInt64,
    ingested_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (symbol, bucket);

CREATE TABLE IF NOT EXISTS candles_1m AS candles_1s
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (symbol, bucket);

-- The audit trail of execution reports as received, with what the order book made of each.
CREATE TABLE IF NOT EXISTS executions
(
    exec_id         String,
    order_id        String,
    client_order_id Nullable(String),
    account_id      String,
    symbol          String,
    side            LowCardinality(String),
    order_type      LowCardinality(String),
    exec_type       LowCardinality(String),
    ord_status      LowCardinality(String),
    order_qty       Decimal(18, 8),
    limit_price     Nullable(Decimal(18, 8)),
    stop_price      Nullable(Decimal(18, 8)),
    last_qty        Decimal(18, 8),
    last_px         Nullable(Decimal(18, 8)),
    cum_qty         Decimal(18, 8),
    leaves_qty      Decimal(18, 8),
    avg_px          Nullable(Decimal(18, 8)),
    commission      Nullable(Decimal(18, 8)),
    reject_reason   Nullable(String),
    ts_event        DateTime64(6, 'UTC'),
    outcome         LowCardinality(String),   -- applied, duplicate, invalid
    outcome_detail  String,
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY (account_id, exec_id);

CREATE TABLE IF NOT EXISTS pnl_snapshots
(
    account_id     String,
    symbol         String,                   -- '' for the account-level row
    ts             DateTime64(6, 'UTC'),
    qty            Decimal(18, 8),
    avg_px         Decimal(18, 8),
    mark           Nullable(Decimal(18, 8)),
    realised_pnl   Decimal(38, 8),
    unrealised_pnl Decimal(38, 8),
    cash           Decimal(38, 8),
    equity         Decimal(38, 8),
    version        UInt64,
    ingested_at    DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (account_id, symbol, ts);

CREATE TABLE IF NOT EXISTS alerts
(
    alert_id        String,
    rule            LowCardinality(String),
    severity        LowCardinality(String),
    account_id      Nullable(String),
    symbol          Nullable(String),
    ts_event        DateTime64(6, 'UTC'),
    observed        Nullable(Decimal(38, 8)),
    limit_value     Nullable(Decimal(38, 8)),
    message         String,
    source_event_id String,
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts_event)
ORDER BY alert_id;
