"""Write a synthetic `Market` to Parquet, byte for byte the same on every run.

Files (in `out_dir`):

- trades.parquet, quotes.parquet, executions.parquet: the records in arrival order, columns
  named exactly as the Avro fields of `Trade`, `Quote`, `ExecutionReport`;
- instruments.parquet: symbol, tick_size, lot_size, session_open, session_close, ref_price,
  price_band_pct (the fields of `sources.synthetic.Instrument`);
- garbage.parquet: the undecodable values in arrival order: pos, topic, key, variant, raw
  (null for `truncated_body`, whose bytes depend on the codec), ref_pos, cut;
- labels.parquet: one row per stream position, the fields of `sources.synthetic.Label`.

Types: prices, sizes and money `decimal128(18, 8)`; `ts_event` `timestamp[us, tz=UTC]`;
`seq` int64; enums as their string values; session times `time64[us]` (UTC); in the labels,
`ts_event` is a timestamp too and `delay_us` / `magnitude_bps` / `original` stay integers
(`original` in scale-8 units, as the field it came from).

Byte-identical output: the writer's settings are fixed (`WRITE_OPTIONS`), there are no
timestamps or random ids in Parquet metadata, and the data are deterministic. The bytes do
depend on the pyarrow version (it is named in the file footer), so compare files written by
the same version. Each file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sources.synthetic import (
    CODE_GARBAGE,
    TOPIC_EXECUTIONS,
    TOPIC_QUOTES,
    TOPIC_TRADES,
    Instrument,
    Label,
    Market,
    paused_gc,
)
from tapeflow.core.models import ExecutionReport, Quote, Trade

DECIMAL = pa.decimal128(18, 8)
TIMESTAMP = pa.timestamp("us", tz="UTC")

WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
    "row_group_size": 1 << 20,
    "store_schema": True,
}
"""Fixed writer settings: part of the byte-identity promise."""

TRADE_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("venue", pa.string()),
        ("ts_event", TIMESTAMP),
        ("seq", pa.int64()),
        ("price", DECIMAL),
        ("size", DECIMAL),
        ("trade_id", pa.string()),
        ("conditions", pa.list_(pa.string())),
    ]
)
QUOTE_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("venue", pa.string()),
        ("ts_event", TIMESTAMP),
        ("seq", pa.int64()),
        ("bid_px", DECIMAL),
        ("bid_sz", DECIMAL),
        ("ask_px", DECIMAL),
        ("ask_sz", DECIMAL),
    ]
)
_EXEC_DECIMALS = (
    "order_qty",
    "limit_price",
    "stop_price",
    "last_qty",
    "last_px",
    "cum_qty",
    "leaves_qty",
    "avg_px",
    "commission",
)
EXECUTION_SCHEMA = pa.schema(
    [
        (
            name,
            TIMESTAMP if name == "ts_event" else DECIMAL if name in _EXEC_DECIMALS else pa.string(),
        )
        for name in ExecutionReport._fields
    ]
)
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


def decimals(units: Sequence[int | None]) -> pa.Array:
    """Scale-8 integers (None for null) as decimal128(18, 8), without a Decimal per value."""
    return pa.array(units, pa.int64()).cast(pa.decimal128(19, 0)).view(DECIMAL)


def _columns(records: Sequence[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    if not records:
        return [()] * width
    return list(zip(*records, strict=True))


def _table(schema: pa.Schema, columns: list[tuple[Any, ...]]) -> pa.Table:
    arrays = []
    for fld, values in zip(schema, columns, strict=True):
        if fld.type == DECIMAL:
            arrays.append(decimals(values))
        else:
            arrays.append(pa.array(values, fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def trades_table(trades: Sequence[Trade]) -> pa.Table:
    return _table(TRADE_SCHEMA, _columns(trades, len(TRADE_SCHEMA)))


def quotes_table(quotes: Sequence[Quote]) -> pa.Table:
    return _table(QUOTE_SCHEMA, _columns(quotes, len(QUOTE_SCHEMA)))


def executions_table(executions: Sequence[ExecutionReport]) -> pa.Table:
    cols = _columns(executions, len(EXECUTION_SCHEMA))
    # StrEnum members are str, but pyarrow wants plain str for a string column.
    cols = [
        tuple(map(str, col)) if name in ("side", "order_type", "exec_type", "ord_status") else col
        for name, col in zip(ExecutionReport._fields, cols, strict=True)
    ]
    return _table(EXECUTION_SCHEMA, cols)


def instruments_table(instruments: Sequence[Instrument]) -> pa.Table:
    return _table(INSTRUMENT_SCHEMA, _columns(instruments, len(INSTRUMENT_SCHEMA)))


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


def labels_table(
    market: Market, trades: pa.Table | None = None, quotes: pa.Table | None = None
) -> pa.Table:
    """One row per stream position; clean rows are gathered column-wise from the data tables."""
    n = len(market.codes)
    trades = trades_table(market.trades) if trades is None else trades
    quotes = quotes_table(market.quotes) if quotes is None else quotes
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


def write_table(table: pa.Table, path: Path) -> Path:
    """Write with `WRITE_OPTIONS`, atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **WRITE_OPTIONS)
    os.replace(tmp, path)
    return path


def write_parquet(market: Market, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the market's files into `out_dir` (created if needed); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Tables are built here (Python, under the GIL) while a worker thread encodes and writes
    # the previous ones (Arrow, without the GIL). Each file's bytes do not depend on this.
    with paused_gc(), ThreadPoolExecutor(max_workers=1) as pool:
        jobs = [pool.submit(write_table, instruments_table(market.instruments),
                            out / "instruments.parquet")]  # fmt: skip
        trades = trades_table(market.trades)
        jobs.append(pool.submit(write_table, trades, out / "trades.parquet"))
        quotes = quotes_table(market.quotes)
        jobs.append(pool.submit(write_table, quotes, out / "quotes.parquet"))
        executions = executions_table(market.executions)
        jobs.append(pool.submit(write_table, executions, out / "executions.parquet"))
        jobs.append(pool.submit(write_table, garbage_table(market), out / "garbage.parquet"))
        labels = labels_table(market, trades, quotes)
        jobs.append(pool.submit(write_table, labels, out / "labels.parquet"))
        return [job.result() for job in jobs]


__all__ = [
    "DECIMAL",
    "TIMESTAMP",
    "WRITE_OPTIONS",
    "decimals",
    "executions_table",
    "garbage_table",
    "instruments_table",
    "labels_table",
    "quotes_table",
    "trades_table",
    "write_parquet",
    "write_table",
]
