"""Throughput of the market flow in one process, Kafka in -> ClickHouse + md.marks out, beside a
bare confluent-kafka consume loop of the same messages, measured in the same run.

Not a test: a measurement. Generates one synthetic market (default ~300k ticks: 120 symbols,
25 s of event time, trades and quotes, 1 % faults and garbage), produces it once to fresh
topics (a new topic prefix) on the local test broker, then, in interleaved rounds:

- bare loop: a subprocess assigns every partition of md.trades and md.quotes and consumes them
  to their end with `Consumer.consume(1000)`, touching each value (no decode): what reading the
  messages costs at all;
- flow: `tapeflow run market --batch --no-recovery` into a fresh embedded ClickHouse (chDB),
  writing md.marks and tapeflow.dlq too.

For each: ticks per second and CPU seconds (user + sys) per million ticks, both counted from
the moment the reading started (the loop after its `assign`; the flow once its Kafka source
runs, see bench/scale_market.py), so imports and start-up are left out. The flow's CPU includes
the embedded ClickHouse's own threads (parts written and merged in-process). Medians of the
rounds; the machine is shared, so expect noise (the load average is printed).

`--profile` runs the flow once more in this process (Bytewax's `run_main`, same input, a fresh
chDB) with a CPU timer (the worker thread's) around each stage: the source polls (Kafka, in
Bytewax), decoding, the partition step (the core per tick, the adapter to it), the ClickHouse
sink (Arrow tables, inserts) and the Kafka sinks; what is left of the worker thread is Bytewax
itself, and the process's other threads are the embedded ClickHouse's and librdkafka's.
Per-batch timers, so they barely change the figures they measure.

Run:  uv run python bench/market_flow.py [--rounds 3] [--symbols 120] [--seconds 25]
      [--trade-rate 3000] [--quote-rate 9000] [--partitions 4] [--fault-rate 0.01]
      [--batch-size 1000] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench_kafka import bench_broker
from bytewax.testing import run_main
from scale_market import DATABASE, REPO, run_setup

from flows import market, market_logic
from jobs.generate import produce_market
from jobs.init import create_topics, init_clickhouse
from schemas.catalogue import TOPIC_QUOTES, TOPIC_TRADES, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.flow_sink import _KafkaPartition
from sinks.partition import WriterPartition
from sources.kafka import flow_source
from sources.synthetic import MarketSpec, generate_market
from tapeflow.runtime.run import tune_gc
from tapeflow.settings import Settings

BARE = r"""
import json, sys, time
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
bootstrap, *parts = sys.argv[1:]
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-bare",
                     "enable.auto.commit": False, "enable.partition.eof": True})
assigned = [TopicPartition(t, int(p), OFFSET_BEGINNING)
            for t, p in (part.rsplit(":", 1) for part in parts)]
consumer.assign(assigned)
wall, cpu = time.perf_counter(), time.process_time()
left, n, size = len(assigned), 0, 0
while left:
    for msg in consumer.consume(1000, 1.0):
        err = msg.error()
        if err is not None:
            left -= err.code() == KafkaError._PARTITION_EOF
            continue
        n += 1
        size += len(msg.value())
print(json.dumps({"messages": n, "bytes": size, "wall_s": time.perf_counter() - wall,
                  "cpu_s": time.process_time() - cpu}))
consumer.close()
"""


def bare_loop(settings: Settings) -> dict[str, Any]:
    parts = [f"{settings.topic(t)}:{p}" for t in (TOPIC_TRADES, TOPIC_QUOTES)
             for p in range(settings.kafka.partitions)]
    done = subprocess.run([sys.executable, "-c", BARE, settings.kafka.bootstrap, *parts],
                          check=True, capture_output=True, text=True, cwd=REPO)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--trade-rate", type=float, default=3000.0)
    parser.add_argument("--quote-rate", type=float, default=9000.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.01,
                        help="faults of the synthetic market, garbage frames included")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="TAPEFLOW_KAFKA_SOURCE_BATCH_SIZE of the flow (default: the "
                        "setting's default)")
    parser.add_argument("--profile", action="store_true",
                        help="also run the flow once in-process with a timer per stage")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapeflow-mflow-") as tmp, \
            bench_broker(Path(tmp)) as bootstrap:
        settings = Settings(home=Path(tmp) / "home", kafka_bootstrap=bootstrap,
                            clickhouse_database=DATABASE, kafka_partitions=opts.partitions,
                            kafka_topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
        bench(settings, Path(tmp), opts)


def bench(settings: Settings, tmpdir: Path, opts: argparse.Namespace) -> None:
    create_topics(settings)
    spec = MarketSpec(seed=11, n_symbols=opts.symbols, duration_s=opts.seconds,
                      trade_rate=opts.trade_rate, quote_rate=opts.quote_rate,
                      fault_rate=opts.fault_rate, n_accounts=0)
    market = generate_market(spec)
    counts = produce_market(settings, market, Codec(LocalCatalogue.load()))
    ticks = counts[settings.topic(TOPIC_TRADES)] + counts[settings.topic(TOPIC_QUOTES)]
    print(f"input: {ticks:,} ticks ({counts[settings.topic(TOPIC_TRADES)]:,} trades), "
          f"{opts.symbols} symbols, {opts.seconds:g} s of market, {opts.partitions} "
          f"partitions, faults {opts.fault_rate:g} ({len(market.garbage)} garbage frames); "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()}")
    env = {} if opts.batch_size is None else {
        "TAPEFLOW_KAFKA_SOURCE_BATCH_SIZE": str(opts.batch_size)}
    bare: list[dict[str, Any]] = []
    flow: list[tuple[float, float]] = []
    for r in range(opts.rounds):
        loop = bare_loop(settings)
        assert loop["messages"] == ticks, loop
        bare.append(loop)
        root = tmpdir / f"r{r}"
        root.mkdir()
        _wall, dataflow_s, cpu = run_setup(settings, root, [[]], env=env)
        flow.append((dataflow_s, cpu[0]))
        print(f"round {r + 1}: bare loop {ticks / loop['wall_s']:10,.0f} ticks/s, "
              f"{loop['cpu_s'] / ticks * 1e6:6.2f} CPU s per M ticks | flow "
              f"{ticks / dataflow_s:9,.0f} ticks/s, {cpu[0] / ticks * 1e6:6.2f} CPU s per M")
    loop_s = statistics.median(b["wall_s"] for b in bare)
    loop_cpu = statistics.median(b["cpu_s"] for b in bare)
    flow_s = statistics.median(f for f, _ in flow)
    flow_cpu = statistics.median(c for _, c in flow)
    print(f"median bare loop: {ticks / loop_s:,.0f} ticks/s, "
          f"{loop_cpu / ticks * 1e6:.2f} CPU s per million ticks")
    print(f"median flow:      {ticks / flow_s:,.0f} ticks/s, "
          f"{flow_cpu / ticks * 1e6:.2f} CPU s per million ticks "
          f"(CPU-bound rate {ticks / flow_cpu:,.0f} ticks/s); load average {os.getloadavg()}")
    if opts.profile:
        profile(settings, tmpdir, ticks, opts.batch_size)


@contextmanager
def _timed(owner: Any, name: str, totals: dict[str, float], stage: str) -> Iterator[None]:
    real: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return real(*args, **kwargs)
        finally:
            totals[stage] += time.thread_time() - started

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, real)


def profile(settings: Settings, tmpdir: Path, ticks: int, batch_size: int | None) -> None:
    """The flow once in this process, with a timer per stage (see the module docstring)."""
    run = settings.with_overrides(clickhouse_dsn=f"chdb://{tmpdir / 'profile'}",
                                  **({} if batch_size is None else
                                     {"kafka_source_batch_size": batch_size}))
    init_clickhouse(run)
    totals: dict[str, float] = defaultdict(float)
    patches = [
        (flow_source._BatchPartition, "next_batch", "Kafka source polls"),
        (market_logic.TickBatchDecoder, "__call__", "decode (Avro blocks)"),
        (market_logic.PartitionLogic, "on_batch", "partition step (core per tick)"),
        (market_logic, "symbol_arrivals", "  of which: columns -> core ticks"),
        (WriterPartition, "write_batch", "ClickHouse sink (Arrow, inserts)"),
        (WriterPartition, "snapshot", "ClickHouse sink (Arrow, inserts)"),
        (_KafkaPartition, "write_batch", "Kafka sinks (marks, dead letters)"),
        (_KafkaPartition, "snapshot", "Kafka sinks (marks, dead letters)"),
    ]
    flow = market.build_flow(run, tail=False, config=run.market.core_config(batch=True))
    tune_gc()  # as `tapeflow run` does
    started = time.perf_counter()
    started_cpu, started_thread = time.process_time(), time.thread_time()
    with _all(_timed(owner, name, totals, stage) for owner, name, stage in patches):
        run_main(flow)
    wall = time.perf_counter() - started
    cpu = time.process_time() - started_cpu
    thread = time.thread_time() - started_thread
    print(f"profile (in-process run_main, one worker): {wall:.2f} s wall, {cpu:.2f} CPU s in "
          f"all threads, {thread:.2f} in the worker thread; CPU s per million ticks:")
    staged = sum(v for k, v in totals.items() if not k.startswith("  "))
    for stage in dict.fromkeys(stage for _, _, stage in patches):  # in the order listed
        seconds = totals[stage]
        print(f"  {stage:38} {seconds / ticks * 1e6:6.2f}  ({seconds / cpu:5.1%})")
    rest = thread - staged
    print(f"  {'Bytewax and the rest of the worker':38} {rest / ticks * 1e6:6.2f}  "
          f"({rest / cpu:5.1%})")
    others = cpu - thread
    print(f"  {'other threads (chDB, librdkafka)':38} {others / ticks * 1e6:6.2f}  "
          f"({others / cpu:5.1%})")


@contextmanager
def _all(managers: Iterator[Any]) -> Iterator[None]:
    with ExitStack() as stack:
        for manager in managers:
            stack.enter_context(manager)
        yield


if __name__ == "__main__":
    main()
