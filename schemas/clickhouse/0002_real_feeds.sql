-- Real feeds (docs/market-core.md, "Sequence numbers", "Trade conditions").
--
-- A candle whose prints are all volume-only (odd lots, out-of-sequence and average-price
-- prints) has volume but no prices: open, high, low and close become nullable.
ALTER TABLE candles_1s
    MODIFY COLUMN open Nullable(Decimal(18, 8)),
    MODIFY COLUMN high Nullable(Decimal(18, 8)),
    MODIFY COLUMN low Nullable(Decimal(18, 8)),
    MODIFY COLUMN close Nullable(Decimal(18, 8));

ALTER TABLE candles_1m
    MODIFY COLUMN open Nullable(Decimal(18, 8)),
    MODIFY COLUMN high Nullable(Decimal(18, 8)),
    MODIFY COLUMN low Nullable(Decimal(18, 8)),
    MODIFY COLUMN close Nullable(Decimal(18, 8));

-- Several genuine ticks may share (symbol, ts_event, venue, seq): the trades of one CME packet
-- carry its sequence number and transact time. A duplicate is the same venue, sequence and
-- content, so the clean-tick tables are keyed by the whole tick; a re-sent tick is still one
-- row. The sorting key of a MergeTree cannot take existing columns, so the tables are rebuilt.
CREATE TABLE trades_0002
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
ORDER BY (symbol, ts_event, venue, seq, price, size, trade_id, conditions)
SETTINGS allow_nullable_key = 1;

INSERT INTO trades_0002 SELECT * FROM trades;

RENAME TABLE trades TO trades_0001;

RENAME TABLE trades_0002 TO trades;

DROP TABLE trades_0001;

CREATE TABLE quotes_0002
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
ORDER BY (symbol, ts_event, venue, seq, bid_px, bid_sz, ask_px, ask_sz);

INSERT INTO quotes_0002 SELECT * FROM quotes;

RENAME TABLE quotes TO quotes_0001;

RENAME TABLE quotes_0002 TO quotes;

DROP TABLE quotes_0001
