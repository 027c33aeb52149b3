"""The trading flow's store writes alone: every state row by row (before issue 12) against the
latest state per key in batches, Postgres by COPY + upsert or by pipelined executemany,
ClickHouse by row tuples or by Arrow tables.

Not a test: a measurement. The input is the pure core's outputs over a synthetic order flow
(default 20 s of event time at 300 orders/s, 40 accounts, 30 symbols, marks one per symbol per
second, every risk rule on), computed once and not timed. Each variant then writes the same
outputs into a fresh Postgres schema / chDB database, cut into flushes of `--batch` outputs (a
flush is what the flow's writer thread writes at once: what accumulated while the previous
write ran, at most a second's worth), and the time from the first record handed over to the
last flush's commit is taken (mapping included), best of `--repeat`. Printed as execution
reports per second of the writes, so the figures compare with the flow's.

Variants:
- `pg every state (before)`: every output's rows mapped at once (`_postgres_rows`) and
  buffered row by row (the writer's buffer already kept one row per key), executemany;
- `pg latest, executemany` / `pg latest, copy`: `PostgresWriter.add_output` (states kept per
  key, rows built at the flush), the two methods;
- `ch rows (before)`: every record through the row mapper, one insert per table per flush;
- `ch arrow latest`: `TradingClickHouseWriter` (Arrow, latest snapshot per key).

Run:  uv run python bench/trading_writes.py [--seconds 20] [--batch 200 --batch 2000]
      [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trading_common import REPO, order_flow, postgres_dsn

from flows.trading import _clickhouse_records
from jobs.init import init_clickhouse, init_postgres
from schemas.catalogue import LocalCatalogue
from schemas.codec import Codec
from sinks.clickhouse.flow_sink import clickhouse_trading_mapper
from sinks.clickhouse.trading_rows import TABLE_COLUMNS as CH_COLUMNS
from sinks.clickhouse.trading_writer import TradingClickHouseWriter
from sinks.clickhouse.writer import ClickHouseWriter
from sinks.postgres.flow_sink import _postgres_rows
from sinks.postgres.writer import PostgresWriter
from sources.synthetic import MarketSpec
from tapeflow.core.models import ExecutionReport
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import (
    ExecutionResult,
    ShardOutput,
    ShardState,
    StateChange,
    mark_of,
    on_finish_inplace,
    on_market_inplace,
    on_report_inplace,
    on_tick_inplace,
)
from tapeflow.services.clickhouse import open_clickhouse
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings

BASE = 1 << 40


def outputs_of(seconds: float, order_rate: float) -> tuple[int, list[ShardOutput]]:
    codec = Codec(LocalCatalogue.load())
    spec = MarketSpec(seed=21, n_symbols=30, n_accounts=40, duration_s=seconds,
                      order_rate=order_rate, trade_rate=200.0, quote_rate=200.0, fault_rate=0.01)
    flow = order_flow(spec, codec)
    shards = [ShardState() for _ in range(4)]
    keys = {a: i % 4 for i, a in enumerate(sorted({r.account_id for r in flow.reports}))}
    config = TradingConfig()
    out: list[ShardOutput] = []
    for n, event in enumerate(flow.arrivals):
        if isinstance(event, ExecutionReport):
            out += on_report_inplace(shards[keys[event.account_id]], event, config)
        else:
            mark = mark_of(event)
            for shard in shards:
                out += on_market_inplace(shard, mark, config)
        if n % 5_000 == 4_999:
            for shard in shards:
                out += on_tick_inplace(shard, shard.clock_us, config)
    for shard in shards:
        out += on_finish_inplace(shard)
    return len(flow.reports), out


def chunks(items: list[ShardOutput], size: int) -> Iterator[list[ShardOutput]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def pg_writer(dsn: str, tmp: Path, method: str) -> PostgresWriter:
    schema = f"tf_bw_{uuid.uuid4().hex[:8]}"
    init_postgres(Settings(home=tmp / "home", postgres_dsn=dsn, postgres_schema=schema), dsn)
    return PostgresWriter(lambda: connect_postgres(dsn, schema), method=method,
                          max_rows=10**9, max_age_s=10**9)


def pg_before(writer: PostgresWriter, batches: list[list[ShardOutput]]) -> None:
    for batch in batches:
        for item in batch:
            if isinstance(item, ExecutionResult | StateChange):
                writer.add_many(_postgres_rows(item, BASE))
        writer.flush()


def pg_latest(writer: PostgresWriter, batches: list[list[ShardOutput]]) -> None:
    for batch in batches:
        for item in batch:
            if isinstance(item, ExecutionResult):
                writer.add_output(item.output, item.report, version_base=BASE)
            elif isinstance(item, StateChange):
                writer.add_output(item.output, version_base=BASE)
        writer.flush()


def ch_before(client: Any, batches: list[list[ShardOutput]]) -> None:
    mapper = clickhouse_trading_mapper(BASE)
    writer = ClickHouseWriter(client, columns=CH_COLUMNS, max_rows=10**9, max_age_s=10**9)
    for batch in batches:
        for record in (r for o in batch for r in _clickhouse_records(o)):
            writer.add(*mapper(record))
        writer.flush()


def ch_arrow(client: Any, batches: list[list[ShardOutput]]) -> None:
    writer = TradingClickHouseWriter(client, version_base=BASE, max_rows=10**9,
                                     max_age_s=10**9)
    for batch in batches:
        for record in (r for o in batch for r in _clickhouse_records(o)):
            writer.add_record(record)
        writer.flush()


def timed(setup: Callable[[], Any], write: Callable[[Any, Any], None],
          batches: list[list[ShardOutput]]) -> float:
    """Seconds of `write(setup(), batches)`, the setup (a fresh schema or database) left out."""
    target = setup()
    t = time.perf_counter()
    write(target, batches)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--order-rate", type=float, default=300.0)
    parser.add_argument("--batch", type=int, action="append",
                        help="outputs per flush (repeatable; default 200 and 2000)")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    reports, outs = outputs_of(opts.seconds, opts.order_rate)
    dsn = postgres_dsn()
    print(f"input: {reports:,} execution reports -> {len(outs):,} core outputs; "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="tapeflow-writes-") as tmp:
        tmpdir = Path(tmp)
        url = f"chdb://{tmpdir / 'chdb'}"
        for size in opts.batch or [200, 2000]:
            batches = list(chunks(outs, size))
            print(f"flushes of {size:,} outputs ({len(batches)} flushes):")
            def pg(method: str) -> Callable[[], Any]:
                return lambda: pg_writer(dsn, tmpdir, method)

            def ch() -> Any:
                database = f"tf_bw_{uuid.uuid4().hex[:8]}"
                init_clickhouse(Settings(clickhouse_dsn=url, clickhouse_database=database))
                return open_clickhouse(url, database)

            variants: dict[str, tuple[Callable[[], Any], Callable[[Any, Any], None]]] = {
                "pg every state (before), executemany": (pg("executemany"), pg_before),
                "pg latest state, executemany": (pg("executemany"), pg_latest),
                "pg latest state, copy + upsert": (pg("copy"), pg_latest),
                "ch every record, row tuples (before)": (ch, ch_before),
                "ch arrow, latest snapshot": (ch, ch_arrow),
            }
            for name, (setup, write) in variants.items():
                best = min(timed(setup, write, batches) for _ in range(opts.repeat))
                print(f"  {name:40s} {best:7.3f} s = {reports / best:9,.0f} reports/s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
