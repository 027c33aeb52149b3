"""Core records as Arrow tables, and Parquet files written byte for byte the same on every run.

Why a writer of its own: Parquet files are compared by their bytes (the same synthetic market
must give the same files, `tapeflow generate --output`), so the writer's settings are fixed
here (`WRITE_OPTIONS`) and every file goes through `write_table`. Tables come in through
`write_tables` as (name, table) pairs; the synthetic market's files are composed in
`jobs.generate.write_market_parquet` (its instruments, garbage and labels tables are the
simulator's: `sources.synthetic.tables`).

Tables: `trades_table`, `quotes_table` and `executions_table` hold the records in the order
given, columns named exactly as the Avro fields of `Trade`, `Quote`, `ExecutionReport`.
Types: prices, sizes and money `decimal128(18, 8)`; `ts_event` `timestamp[us, tz=UTC]`; `seq`
int64; enums as their string values.

Byte-identical output: the writer's settings are fixed, there are no timestamps or random ids
in Parquet metadata, and the data are deterministic. The bytes do depend on the pyarrow
version (it is named in the file footer), so compare files written by the same version. Each
file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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


def write_table(table: pa.Table, path: Path) -> Path:
    """Write with `WRITE_OPTIONS`, atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **WRITE_OPTIONS)
    os.replace(tmp, path)
    return path


def write_tables(
    tables: Mapping[str, pa.Table] | Iterable[tuple[str, pa.Table]],
    out_dir: str | os.PathLike[str],
) -> list[Path]:
    """Write each table to `out_dir/<name>.parquet` with `write_table`, in the order given;
    `out_dir` is created if needed. Returns the paths in that order.

    A worker thread encodes and writes one table (Arrow, without the GIL) while the caller's
    iterable builds the next (Python, under the GIL): pass a generator of (name, table) pairs
    to overlap the two. Each file's bytes do not depend on this.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = tables.items() if isinstance(tables, Mapping) else tables
    with ThreadPoolExecutor(max_workers=1) as pool:
        jobs = [pool.submit(write_table, table, out / f"{name}.parquet") for name, table in pairs]
        return [job.result() for job in jobs]


__all__ = [
    "DECIMAL",
    "EXECUTION_SCHEMA",
    "QUOTE_SCHEMA",
    "TIMESTAMP",
    "TRADE_SCHEMA",
    "WRITE_OPTIONS",
    "decimals",
    "executions_table",
    "quotes_table",
    "trades_table",
    "write_table",
    "write_tables",
]
