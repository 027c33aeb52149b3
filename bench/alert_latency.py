"""Alert latency of the trading flow at a steady execution rate: from an execution report's
produce time to its alert being readable on `risk.alerts`.

Not a test: a measurement. Steps:

1. One synthetic order flow (default ~130k execution reports: 60 s of event time at 950
   orders/s over 40 accounts and 30 symbols, no garbage) and its marks (one per symbol per
   second of event time).
2. A fresh Postgres schema with the default `risk_limits` row plus, for every 4th account, a
   low fat-finger limit (`max_order_qty` = `--fat-finger`): so a known share of the reports
   raise an alert (order_size breach or clear; counted beforehand by the pure core fold over
   the same reports with the same limits). Fresh topics and embedded ClickHouse.
3. `tapeflow run trading` (continuous, not --batch; recovery on with the default snapshot
   interval, 10 s) is started and given time to come up.
4. A consumer thread reads risk.alerts from the beginning and records each record's read time.
   The main thread produces the reports (and the marks between them, in arrival order) at a
   steady `--rate` reports/s (paced every 1 ms), recording each report's produce time, for
   about `--seconds`; producer `linger.ms` = 5.
5. After the last report, waits until every expected alert arrived (or 60 s), stops the flow.

An alert is matched to its report by `source_event_id` (the exec_id for report-driven rules);
latency = read time - produce time (one clock: both threads are in this process). Printed:
p50/p90/p99/max of all alerts and of those after the first `--traffic-warm-up` seconds of
traffic (10 s: the first epochs, lazy imports, the stores' first writes), the achieved produce
rate, and the latency per 10 s of the run: if the flow
does not keep up, latency grows with the run (the backlog) and the last alert arrives long
after the last report ("drain").

What bounds the latency, by design (docs/flows.md, "Alert latency"): the alert sink's
producer lingers 5 ms; Bytewax hands the stateful step's output to the sinks in the same
activation, after the step applied its batch (at most 100 reports per partition poll); the
ClickHouse and Postgres writers run on threads of their own, so only the checkpoints (every
epoch, the snapshot interval: the writers finish what they were handed, the shard states are
pickled) hold the worker. A flow that does not keep up adds its backlog.

`--stub-core` (BENCH ONLY, NOT THE REAL FLOW): the flow runs with the core replaced by a replay
of its precomputed outputs (bench/stub_core.py), to show the latency the flow around the core
gives when the core is fast (issue 12, phase 2).

Run:  uv run python bench/alert_latency.py [--rate 2000] [--seconds 60]
      [--fat-finger 400] [--partitions 4] [--stub-core]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_kafka import bench_broker
from confluent_kafka import Consumer, TopicPartition
from scale_market import _dataflow_running
from stub_core import precompute
from trading_common import REPO, bench_settings, flow_env, order_flow, postgres_dsn
from trading_common import prepare as prepare_stores

from schemas.catalogue import TOPIC_ALERTS, TOPIC_EXECUTIONS, LocalCatalogue
from schemas.codec import Codec
from sinks.kafka.producer import KafkaWriter
from sources.postgres.limits import load_trading_config
from sources.synthetic import MarketSpec
from tapeflow.core.models import ExecutionReport, Trade
from tapeflow.core.trading.shard_step import (
    ShardState,
    mark_of,
    on_market_inplace,
    on_report_inplace,
)
from tapeflow.services.postgres import connect_postgres
from tapeflow.settings import Settings


class AlertReader(threading.Thread):
    """Reads risk.alerts from the beginning; keeps (raw value, read time) per record."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.topic = settings.topic(TOPIC_ALERTS)
        self.consumer = Consumer({**settings.kafka_config(), "group.id": "tapeflow-latency",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        parts = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in parts])
        self.seen: list[tuple[bytes, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            msg = self.consumer.poll(0.05)
            if msg is None or msg.error() is not None:
                continue
            self.seen.append((msg.value() or b"", time.time()))
        self.consumer.close()


def expected_alerts(settings: Settings, dsn: str, reports: list[ExecutionReport],
                    arrivals: list[object], accounts: set[str]) -> set[str]:
    """exec_ids of `accounts` that the pure core alerts on (the known share). Only the
    fat-finger accounts are folded (their alerts depend on their own reports and the marks),
    to keep this step short."""
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        config = load_trading_config(conn)
    shard = ShardState()
    sources: set[str] = set()
    exec_ids = {r.exec_id for r in reports}
    for event in arrivals:
        if isinstance(event, ExecutionReport):
            if event.account_id not in accounts:
                continue
            for out in on_report_inplace(shard, event, config):
                alerts = getattr(getattr(out, "output", None), "alerts", ())
                sources.update(a.source_event_id for a in alerts if a.source_event_id in exec_ids)
        else:
            on_market_inplace(shard, mark_of(event), config)  # type: ignore[arg-type]
    return sources


def flow_command(settings: Settings, dsn: str, arrivals: list[ExecutionReport | Trade],
                 tmpdir: Path, *, stub: bool) -> list[str]:
    """`tapeflow run trading`, or with `stub` its bench-only variant whose core is a replay
    of the outputs the real core gives over `arrivals` (bench/stub_core.py)."""
    if not stub:
        return [sys.executable, "-m", "tapeflow.cli", "run", "trading"]
    with connect_postgres(dsn, settings.postgres.schema) as conn:
        config = load_trading_config(conn)
    precompute(arrivals, config, tmpdir / "stub.pickle")
    print("BENCH ONLY: the flow runs with its core STUBBED (a replay of its outputs)")
    return [sys.executable, str(REPO / "bench" / "stub_core.py"), str(tmpdir / "stub.pickle"),
            "run", "trading"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="reports per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="event time generated")
    parser.add_argument("--order-rate", type=float, default=950.0)
    parser.add_argument("--fat-finger", type=int, default=400,
                        help="max_order_qty of every 4th account")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--warm-up", type=float, default=5.0,
                        help="seconds between the flow's start and the first report")
    parser.add_argument("--traffic-warm-up", type=float, default=10.0,
                        help="seconds of traffic left out of the 'after warm-up' figures")
    parser.add_argument("--stub-core", action="store_true",
                        help="BENCH ONLY, NOT THE REAL FLOW: the core replaced by a replay of "
                             "its precomputed outputs (bench/stub_core.py)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tapeflow-latency-") as tmp:
        tmpdir = Path(tmp)
        with bench_broker(tmpdir) as bootstrap:
            bench(bootstrap, tmpdir, opts)


def bench(bootstrap: str, tmpdir: Path, opts: argparse.Namespace) -> None:
    dsn = postgres_dsn()
    codec = Codec(LocalCatalogue.load())
    spec = MarketSpec(seed=5, n_symbols=30, n_accounts=40, duration_s=opts.seconds,
                      order_rate=opts.order_rate, trade_rate=200.0, quote_rate=200.0,
                      fault_rate=0.0)
    flow = order_flow(spec, codec)
    accounts = sorted({r.account_id for r in flow.reports})
    fat = accounts[::4]
    settings = bench_settings(bootstrap, dsn, tmpdir, opts.partitions)
    limits = [f"INSERT INTO risk_limits (account_id, max_order_qty) VALUES ('{a}', "
              f"{int(opts.fat_finger)})" for a in fat]  # bench-only constants
    chdb = prepare_stores(settings, dsn, limits)
    want = expected_alerts(settings, dsn, flow.reports, list(flow.arrivals), set(fat))
    assert chdb.wait(timeout=300) == 0, "ClickHouse init failed"
    print(f"input: {len(flow.reports):,} reports, {len(flow.marks):,} marks; fat-finger limit "
          f"{opts.fat_finger} on {len(fat)} of {len(accounts)} accounts: "
          f"{len(want):,} of their reports ({len(want) / len(flow.reports):.1%} of all) raise an "
          f"alert; broker {bootstrap}, {opts.partitions} partitions")
    print(f"cpus: {os.cpu_count()}; load average before: {os.getloadavg()}")

    cmd = flow_command(settings, dsn, list(flow.arrivals), tmpdir, stub=opts.stub_core)
    with (tmpdir / "flow.log").open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=flow_env(settings), stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _dataflow_running(proc.pid):
            assert proc.poll() is None, f"the flow exited: {(tmpdir / 'flow.log').read_text()}"
            assert time.monotonic() < deadline, "the flow did not start"
            time.sleep(0.05)
        time.sleep(opts.warm_up)
        reader = AlertReader(settings)
        reader.start()
        produced = produce_paced(settings, flow.records, opts.rate)
        last_produce = max(produced.values())
        wait_until = time.monotonic() + 60
        while time.monotonic() < wait_until:
            got = {codec.decode(v, expect="RiskAlert").source_event_id for v, _ in reader.seen}
            if want <= got:
                break
            time.sleep(0.5)
        reader.stop.set()
        reader.join()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    print(f"load average after: {os.getloadavg()}")
    report(produced, reader.seen, codec, want, last_produce=last_produce, rate=opts.rate,
           warm_up_s=opts.traffic_warm_up)


def produce_paced(settings: Settings, records: list[tuple[str, str | None, bytes]],
                  rate: float) -> dict[str, float]:
    """Produce in order, reports at `rate`/s (marks in between, not counted); returns the
    produce time of every exec_id (first produce of a re-sent one)."""
    codec = Codec(LocalCatalogue.load())
    writer = KafkaWriter(settings.kafka_config(), **{"linger.ms": 5})
    exec_ids = [codec.decode(v, expect="ExecutionReport").exec_id
                if t == TOPIC_EXECUTIONS else None for t, _, v in records]
    produced: dict[str, float] = {}
    start = time.monotonic()
    n = 0
    for (topic, key, value), exec_id in zip(records, exec_ids, strict=True):
        if exec_id is not None:
            target = start + n / rate
            delay = target - time.monotonic()
            if delay > 0.001:
                time.sleep(delay)
            n += 1
            produced.setdefault(exec_id, time.time())
        writer.send(settings.topic(topic), value, key=key)
        if n % 50 == 0:
            writer._producer.poll(0)  # serve delivery callbacks while pacing
    writer.flush()
    elapsed = time.monotonic() - start
    print(f"produced {n:,} reports in {elapsed:.1f} s = {n / elapsed:,.0f} reports/s "
          f"(target {rate:,.0f})")
    return produced


def report(produced: dict[str, float], seen: list[tuple[bytes, float]], codec: Codec,
           want: set[str], *, last_produce: float, rate: float, warm_up_s: float) -> None:
    first_read: dict[str, float] = {}
    for value, read_at in seen:
        source = codec.decode(value, expect="RiskAlert").source_event_id
        if source in produced:
            first_read[source] = min(first_read.get(source, read_at), read_at)
    latencies = {s: (t - produced[s]) * 1000 for s, t in first_read.items()}
    if not latencies:
        print("no alert matched a report")
        return
    values = list(latencies.values())
    print(f"alerts matched to reports: {len(latencies):,}: {len(set(first_read) & want):,} of "
          f"the {len(want):,} expected, {len(set(first_read) - want):,} from other rules or "
          f"accounts; {len(seen):,} records on risk.alerts")
    print(f"latency produce -> readable on risk.alerts at {rate:,.0f} reports/s: "
          f"p50 {pct(values, 0.5):.0f} ms, p90 {pct(values, 0.9):.0f} ms, "
          f"p99 {pct(values, 0.99):.0f} ms, max {max(values):.0f} ms, "
          f"mean {statistics.fmean(values):.0f} ms")
    start = min(produced.values())
    warm = [ms for source, ms in latencies.items() if produced[source] - start >= warm_up_s]
    if warm:
        print(f"after the first {warm_up_s:g} s of traffic (warm-up): {len(warm):,} alerts, "
              f"p50 {pct(warm, 0.5):.0f} ms, p99 {pct(warm, 0.99):.0f} ms, "
              f"max {max(warm):.0f} ms")
    windows: dict[int, list[float]] = {}
    for source, ms in latencies.items():
        windows.setdefault(int((produced[source] - start) // 10), []).append(ms)
    for w in sorted(windows):
        vals = windows[w]
        print(f"  produced {w * 10:3d}-{w * 10 + 10:3d} s: {len(vals):5,} alerts, "
              f"p50 {pct(vals, 0.5):7.0f} ms, p99 {pct(vals, 0.99):7.0f} ms")
    order = {s: i for i, s in enumerate(sorted(produced, key=produced.__getitem__))}
    by_read = sorted(first_read, key=first_read.__getitem__)
    span = first_read[by_read[-1]] - first_read[by_read[0]]
    if span > 0:
        done = order[by_read[-1]] - order[by_read[0]]
        print(f"the flow's progress, from the alerts' read times: ~{done / span:,.0f} reports/s")
    drain = max(first_read.values()) - last_produce
    print(f"last alert read {drain:.1f} s after the last report was produced "
          f"({'kept up' if drain < 2 else 'did not keep up: backlog at the end'})")


if __name__ == "__main__":
    main()
