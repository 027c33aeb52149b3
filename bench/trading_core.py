"""Throughput of the pure trading core: execution reports per CPU second, every risk rule on.

Not a test: a measurement. Generates a synthetic order flow in memory (sources.synthetic,
re-sends and garbage-free decoded reports; marks = the first clean trade per symbol per
second of event time, as the market flow publishes them), then folds it through the shard
steps (`shard_step.on_report_inplace` / `on_market_inplace`, 4 shards, each mark to every
shard, as the flow does) in arrival order, in this process, no I/O, no decoding.

Limits: `RiskLimits()` defaults (every rule on) and session hours for every symbol (the
synthetic instruments' session), so the session rule runs too.

Sizes: `--size 40x30` (accounts x symbols) and `--size 2000x500` by default: the second shows
whether a report's cost grows with the book. Rate = decoded execution reports / best CPU
seconds of `--rounds` folds (the machine may be shared: CPU time, not wall time).

Baseline in the same run: `--baseline REF` folds the same input with the core at git
revision REF (e.g. main), exported with `git archive` into a temporary directory and run as a
subprocess of this script with that tree first on the path; the input is generated there by
the same seeded generator.

Run:  uv run python bench/trading_core.py [--size 40x30 --size 2000x500] [--baseline main]
      [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sources.synthetic import SESSION_CLOSE_US, SESSION_OPEN_US, MarketSpec, generate_market
from tapeflow.core.models import ExecutionReport, Trade
from tapeflow.core.risk.limits import RiskLimitBook, SessionHours
from tapeflow.core.trading.account_step import TradingConfig
from tapeflow.core.trading.shard_step import (
    ShardState,
    mark_of,
    on_market_inplace,
    on_report_inplace,
)

REPO = Path(__file__).resolve().parent.parent
MARK_EVERY_US = 1_000_000
SHARDS = 4
TOPIC_EXECUTIONS = "oms.executions"


def arrivals(accounts: int, symbols: int, seconds: float, order_rate: float
             ) -> list[ExecutionReport | Trade]:
    """Reports and marks in the order the generator produces them (garbage left out)."""
    spec = MarketSpec(seed=21, n_symbols=symbols, n_accounts=accounts, duration_s=seconds,
                      order_rate=order_rate, trade_rate=max(200.0, 2.0 * symbols),
                      quote_rate=200.0, fault_rate=0.01)
    market = generate_market(spec)
    labels = market.labels
    out: list[ExecutionReport | Trade] = []
    last_mark: dict[str, int] = {}
    for pos, (topic, _key, record) in enumerate(market.stream()):
        if topic == TOPIC_EXECUTIONS:
            if isinstance(record, ExecutionReport):
                out.append(record)
        elif (isinstance(record, Trade) and labels[pos].expected_reason is None
              and record.ts_event - last_mark.get(record.symbol, -MARK_EVERY_US)
              >= MARK_EVERY_US):
            last_mark[record.symbol] = record.ts_event
            out.append(record)
    return out


def config_for(events: list[ExecutionReport | Trade]) -> TradingConfig:
    symbols = {e.symbol for e in events}
    hours = SessionHours(SESSION_OPEN_US, SESSION_CLOSE_US, frozenset(range(7)))
    return TradingConfig(limits=RiskLimitBook(), sessions=dict.fromkeys(symbols, hours))


def fold(events: list[ExecutionReport | Trade], config: TradingConfig) -> int:
    """One fold over the input; returns the number of outputs (a checksum of sorts)."""
    keys: dict[str, int] = {}
    states = [ShardState() for _ in range(SHARDS)]
    marks = {id(e): mark_of(e) for e in events if isinstance(e, Trade)}
    outputs = 0
    for event in events:
        if isinstance(event, ExecutionReport):
            shard = keys.setdefault(event.account_id, len(keys) % SHARDS)
            outputs += len(on_report_inplace(states[shard], event, config))
        else:
            mark = marks[id(event)]
            for state in states:
                outputs += len(on_market_inplace(state, mark, config))
    return outputs


def measure(accounts: int, symbols: int, *, seconds: float, order_rate: float, rounds: int,
            profile: bool) -> dict[str, float]:
    events = arrivals(accounts, symbols, seconds, order_rate)
    config = config_for(events)
    n_reports = sum(isinstance(e, ExecutionReport) for e in events)
    best_cpu = best_wall = float("inf")
    outputs = 0
    for _ in range(rounds):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        outputs = fold(events, config)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    if profile:
        profiler = cProfile.Profile()
        profiler.runcall(fold, events, config)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return {"reports": n_reports, "marks": len(events) - n_reports, "outputs": outputs,
            "cpu": best_cpu, "wall": best_wall}


def baseline(ref: str, size: str, opts: argparse.Namespace) -> dict[str, float]:
    """The same measurement with the core at `ref`, in a subprocess."""
    with tempfile.TemporaryDirectory(prefix="tapeflow-core-base-") as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "--size", size,
               "--seconds", str(opts.seconds), "--order-rate", str(opts.order_rate),
               "--rounds", str(opts.rounds)]
        out = subprocess.run(cmd, cwd=tmp, env=env, check=True, capture_output=True,
                             text=True).stdout
        result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return result


def line(name: str, r: dict[str, float]) -> str:
    rate = r["reports"] / r["cpu"]
    return (f"{name:<34} {rate:>9,.0f} reports per CPU s  {1e6 / rate:7.1f} us/report  "
            f"({r['reports']:,.0f} reports, {r['marks']:,.0f} marks, outputs {r['outputs']:,.0f}; "
            f"cpu {r['cpu']:.2f} s, wall {r['wall']:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", metavar="AxS",
                        help="accounts x symbols (repeatable; default 40x30 and 2000x500)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--order-rate", type=float, default=600.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="REF", help="also measure the core at REF")
    parser.add_argument("--profile", action="store_true", help="cProfile one fold (stderr)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    sizes = opts.size or ["40x30", "2000x500"]
    if opts.json:
        accounts, symbols = (int(x) for x in sizes[0].split("x"))
        print(json.dumps(measure(accounts, symbols, seconds=opts.seconds,
                                 order_rate=opts.order_rate, rounds=opts.rounds, profile=False)))
        return
    print(f"python {sys.version.split()[0]}; cpus {os.cpu_count()}; "
          f"load average {os.getloadavg()}")
    for size in sizes:
        accounts, symbols = (int(x) for x in size.split("x"))
        print(f"{accounts} accounts x {symbols} symbols, {opts.seconds:g} s of event time, "
              f"{opts.order_rate:g} orders/s, every rule on")
        if opts.baseline:
            print(line(f"  baseline: core at {opts.baseline}", baseline(opts.baseline, size, opts)))
        r = measure(accounts, symbols, seconds=opts.seconds, order_rate=opts.order_rate,
                    rounds=opts.rounds, profile=opts.profile)
        rate = r["reports"] / r["cpu"]
        print(line("  this tree", r))
        print(f"  target 50,000 reports/s: {'meets' if rate >= 50_000 else 'BELOW'}")
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
