"""The simulator's own Arrow tables: instruments, garbage and labels, for the Parquet files.

Why here and not beside the record tables (`sinks.files.parquet`): these tables are made of
the simulator's types (`Instrument`, `Garbage`, `Label`, the `Market`'s stream positions),
and sinks may not import sources. `jobs.generate.write_market_parquet` writes them beside the
trades, quotes and executions, with the same writer. Columns:

- instruments: symbol, tick_size, lot_size, session_open, session_close, ref_price,
  price_band_pct (the fields of `Instrument`);
- garbage: the undecodable values in arrival order: pos, topic, key, variant, raw (null for
  `truncated_body`, whose bytes depend on the codec), ref_pos, cut;
- labels: one row per stream position, the fields of `Label`.

Types are those of the record tables: prices and sizes `decimal128(18, 8)`, `ts_event`
`timestamp[us, tz=UTC]`; session times `time64[us]` (UTC); in the labels, `delay_us` /
`magnitude_bps` / `original` stay integers (`original` in scale-8 units, as the field it came
from).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sources.synthetic.instruments import Instrument
from sources.synthetic.labels import Label
from sources.synthetic.market import Market
from sources.synthetic.records import CODE_GARBAGE, TOPIC_EXECUTIONS, TOPIC_QUOTES, TOPIC_TRADES

DECIMAL = pa.decimal128(18, 8)
"""Scale-8 units, as in the record tables (`sinks.files.parquet.DECIMAL`)."""
TIMESTAMP = pa.timestamp("us", tz="UTC")

INSTRUMENT_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("tick_size", DECIMAL),
        ("lot_size", DECIMAL),
        ("session_open", pa.time64("us")),
        ("session_close", pa.time64("us")),
        ("ref_price", DECIMAL),
        ("price_band_pct", DECIMAL),
    ]
)
GARBAGE_SCHEMA = pa.schema(
    [
        ("pos", pa.int64()),
        ("topic", pa.string()),
        ("key", pa.string()),
        ("variant", pa.string()),
        ("raw", pa.binary()),
        ("ref_pos", pa.int64()),
        ("cut", pa.int64()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("pos", pa.int64()),
        ("topic", pa.string()),
        ("row", pa.int64()),
        ("kind", pa.string()),
        ("fault", pa.string()),
        ("expected_reason", pa.string()),
        ("symbol", pa.string()),
        ("venue", pa.string()),
        ("seq", pa.int64()),
        ("ts_event", TIMESTAMP),
        ("key", pa.string()),
        ("ref_pos", pa.int64()),
        ("delay_us", pa.int64()),
        ("magnitude_bps", pa.int64()),
        ("field", pa.string()),
        ("original", pa.int64()),
    ]
)


def _decimals(units: Sequence[int]) -> pa.Array:
    """Scale-8 integers as decimal128(18, 8), without a Decimal per value."""
    return pa.array(units, pa.int64()).cast(pa.decimal128(19, 0)).view(DECIMAL)


def instruments_table(instruments: Sequence[Instrument]) -> pa.Table:
    columns: list[tuple[Any, ...]] = (
        list(zip(*instruments, strict=True)) if instruments else [()] * len(INSTRUMENT_SCHEMA)
    )
    arrays = [
        _decimals(values) if fld.type == DECIMAL else pa.array(values, fld.type)
        for fld, values in zip(INSTRUMENT_SCHEMA, columns, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=INSTRUMENT_SCHEMA)


def garbage_table(market: Market) -> pa.Table:
    labels = [market.faults[pos] for pos in _positions(market, CODE_GARBAGE)]
    rows: list[tuple[Any, ...]] = []
    for g, lab in zip(market.garbage, labels, strict=True):
        raw = None if g.truncated is not None else g.raw
        rows.append((lab.pos, g.topic, g.key, g.variant, raw, lab.ref_pos, g.cut))
    return pa.Table.from_pylist(
        [dict(zip(GARBAGE_SCHEMA.names, r, strict=True)) for r in rows], schema=GARBAGE_SCHEMA
    )


def _positions(market: Market, code: int) -> list[int]:
    """Stream positions of one kind, in arrival order."""
    target = bytes([code])
    codes = bytes(market.codes)
    out = []
    i = codes.find(target)
    while i >= 0:
        out.append(i)
        i = codes.find(target, i + 1)
    return out


def labels_table(market: Market, trades: pa.Table, quotes: pa.Table) -> pa.Table:
    """One row per stream position; clean rows are gathered column-wise from the data tables.

    `trades` and `quotes` are the market's trades and quotes as Arrow tables (as
    `sinks.files.parquet` builds them: `symbol`, `venue`, `seq` and `ts_event` columns are
    read), so the labels reuse their columns instead of building them again.
    """
    n = len(market.codes)
    n_t, n_q, n_e = len(market.trades), len(market.quotes), len(market.executions)
    garbage_labels: list[Label] = [market.faults[p] for p in _positions(market, CODE_GARBAGE)]
    n_g = len(garbage_labels)
    ex = market.executions

    codes = pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(bytes(market.codes))])
    rows = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(market.rows.tobytes())])
    offsets = pa.array([0, n_t, n_t + n_q, n_t + n_q + n_e], pa.int64())
    index = pc.add(pc.take(offsets, codes), rows)

    def gather(blocks: list[pa.Array], typ: pa.DataType) -> pa.Array:
        whole = pa.concat_arrays([b.cast(typ) for b in blocks])
        return pc.take(whole, index)

    def strings(values: Sequence[str | None]) -> pa.Array:
        return pa.array(values, pa.string())

    topic_names = [TOPIC_TRADES, TOPIC_QUOTES, TOPIC_EXECUTIONS]
    kind_names = ["trade", "quote", "execution", "garbage"]
    sizes = [n_t, n_q, n_e]
    topic = gather(
        [pa.repeat(topic_names[i], sizes[i]) for i in range(3)]
        + [strings([lab.topic for lab in garbage_labels])],
        pa.string(),
    )
    kind = pc.take(pa.array(kind_names, pa.string()), codes)
    symbol = gather(
        [
            trades.column("symbol").combine_chunks(),
            quotes.column("symbol").combine_chunks(),
            strings([e.symbol for e in ex]),
            strings([lab.symbol for lab in garbage_labels]),
        ],
        pa.string(),
    )
    venue = gather(
        [
            trades.column("venue").combine_chunks(),
            quotes.column("venue").combine_chunks(),
            pa.nulls(n_e, pa.string()),
            strings([lab.venue for lab in garbage_labels]),
        ],
        pa.string(),
    )
    seq = gather(
        [
            trades.column("seq").combine_chunks(),
            quotes.column("seq").combine_chunks(),
            pa.nulls(n_e + n_g, pa.int64()),
        ],
        pa.int64(),
    )
    ts_event = gather(
        [
            trades.column("ts_event").combine_chunks().cast(pa.int64()),
            quotes.column("ts_event").combine_chunks().cast(pa.int64()),
            pa.array([e.ts_event for e in ex], pa.int64()),
            pa.array([lab.ts_event for lab in garbage_labels], pa.int64()),
        ],
        pa.int64(),
    ).cast(TIMESTAMP)
    key = gather(
        [
            trades.column("symbol").combine_chunks(),
            quotes.column("symbol").combine_chunks(),
            strings([e.account_id for e in ex]),
            strings([lab.key for lab in garbage_labels]),
        ],
        pa.string(),
    )

    # The sparse columns: gathered from a small table of the faulty positions' values, with
    # index 0 (the clean default) everywhere else.
    fault_positions = sorted(market.faults)
    faults = [market.faults[p] for p in fault_positions]
    sparse = array("q", bytes(8 * n))
    for i, pos in enumerate(fault_positions, start=1):
        sparse[pos] = i
    sparse_index = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(sparse.tobytes())])

    def sparse_column(values: list[Any], default: Any, typ: pa.DataType) -> pa.Array:
        return pc.take(pa.array([default, *values], typ), sparse_index)

    positions = array("q", range(n))
    return pa.Table.from_arrays(
        [
            pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(positions.tobytes())]),
            topic,
            rows,
            kind,
            sparse_column([f.fault for f in faults], "clean", pa.string()),
            sparse_column([f.expected_reason for f in faults], None, pa.string()),
            symbol,
            venue,
            seq,
            ts_event,
            key,
            sparse_column([f.ref_pos for f in faults], None, pa.int64()),
            sparse_column([f.delay_us for f in faults], None, pa.int64()),
            sparse_column([f.magnitude_bps for f in faults], None, pa.int64()),
            sparse_column([f.field for f in faults], None, pa.string()),
            sparse_column([f.original for f in faults], None, pa.int64()),
        ],
        schema=LABEL_SCHEMA,
    )



__all__ = [
    "GARBAGE_SCHEMA",
    "INSTRUMENT_SCHEMA",
    "LABEL_SCHEMA",
    "garbage_table",
    "instruments_table",
    "labels_table",
]
