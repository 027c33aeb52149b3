"""`tapeflow run market|trading`: pre-flight checks, recovery, workers and processes.

Why a wrapper and not `python -m bytewax.run` directly: an unreachable broker makes Bytewax hang
at start-up forever (DESIGN.md), recovery needs its partitions initialised once, and several
local processes need addresses handed out. This module does those three things and then calls
Bytewax's own `cli_main`, so the runtime behaves exactly as `bytewax.run` would.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from tapeflow.settings import Settings

log = logging.getLogger("tapeflow.run")
FLOW_MODULES = {"market": "flows.market", "trading": "flows.trading", "all": "flows.all"}


@dataclass(frozen=True)
class RunOptions:
    flow: str
    workers: int = 1
    processes: int = 1
    recovery: bool = True
    recovery_dir: Path | None = None
    recovery_partitions: int = 1
    snapshot_s: float = 10.0
    batch: bool = False
    process_id: int | None = None
    addresses: str | None = None
    shard: tuple[int, int] | None = None
    merge_wait_s: float | None = None
    """Market flow: how far (event time) trades may run ahead of quotes, or the reverse,
    before they are judged without them. Default 30 s; with `batch`, 1 h (see `build`)."""

    def recovery_path(self, settings: Settings) -> Path:
        """One recovery store per flow and shard: shards are independent dataflows."""
        name = self.flow
        if self.shard is not None:
            name += f"-shard{self.shard[0]}of{self.shard[1]}"
        return (self.recovery_dir or settings.home / "recovery" / name).resolve()


def preflight(settings: Settings, flow: str) -> None:
    """Fail fast, naming the service and its address, when a service does not answer.

    The broker for both flows (with the hint to start the local one); the market flow's one
    store here. The trading flow checks its stores itself when it is built
    (`flows.trading.check_services`: it reads the partition count and the risk limits anyway),
    so they are not asked twice.
    """
    from jobs.local.services import ensure_kafka
    from tapeflow.services.clickhouse import open_clickhouse

    ensure_kafka(settings, start=False, timeout_s=10.0)
    if flow == "market":  # "trading" and "all" check their stores when they are built
        client = open_clickhouse(settings.clickhouse_url(), settings.clickhouse_database)
        client.command("SELECT 1")


def ensure_recovery_dir(path: Path, partitions: int) -> None:
    """Create the recovery partitions once; their count is fixed forever after."""
    from bytewax.recovery import init_db_dir

    existing = sorted(path.glob("part-*.sqlite3")) if path.exists() else []
    if existing:
        if len(existing) != partitions:
            log.warning("recovery dir %s has %d partitions (not %d); keeping them", path,
                        len(existing), partitions)
        return
    path.mkdir(parents=True, exist_ok=True)
    init_db_dir(path, partitions)


BATCH_MERGE_WAIT_S = 3600.0


def market_config(settings: Settings, options: RunOptions) -> Any:
    """The market core's configuration: the state bounds from the settings, the merge wait
    from the options."""
    from tapeflow.core.market.candles import CandleConfig
    from tapeflow.core.market.filter_config import FilterConfig
    from tapeflow.core.market.symbol_step import DEFAULT_MARKET_CONFIG, MarketConfig

    # Reading a backlog, Bytewax polls each partition in turn and quotes are ~3x as dense as
    # trades, so trades run ahead of their quotes by about 2/3 of the backlog's span
    # (docs/flows.md). A batch run ends, and the end of input releases every held tick in
    # merge order, so it can afford to wait the whole retention horizon and judge every trade
    # against the quotes an uninterrupted live stream would have shown it.
    wait_s = options.merge_wait_s
    if wait_s is None:
        wait_s = BATCH_MERGE_WAIT_S if options.batch else None
    return MarketConfig(
        filter=FilterConfig(seq_window=settings.seq_window),
        candles=CandleConfig(allowed_lateness_us=round(settings.allowed_lateness_s * 1e6),
                             retention_us=round(settings.late_horizon_s * 1e6)),
        merge_max_wait_us=(DEFAULT_MARKET_CONFIG.merge_max_wait_us if wait_s is None
                           else round(wait_s * 1_000_000)),
    )


def shard_config(settings: Settings) -> Any:
    """The trading core's configuration: the order-state bounds from the settings."""
    from tapeflow.core.trading.order_book import OrderRetention
    from tapeflow.core.trading.shard_step import ShardConfig

    return ShardConfig(retention=OrderRetention(
        max_terminal=settings.order_max_terminal,
        terminal_ttl_us=round(settings.order_terminal_ttl_s * 1e6)))


def build(settings: Settings, options: RunOptions) -> Any:
    from sources.kafka.flow_source import consumer_group

    module = importlib.import_module(FLOW_MODULES[options.flow])
    group = consumer_group(settings, options.flow, options.shard)
    source = module.kafka_source(settings, tail=not options.batch, shard=options.shard,
                                 group=group)
    if options.flow == "trading":
        return module.build_flow(settings, source=source, shard_config=shard_config(settings))
    config = market_config(settings, options)
    if options.flow == "all":
        return module.build_flow(settings, source=source, config=config,
                                 shard_config=shard_config(settings))
    return module.build_flow(settings, source=source, config=config,
                             gap_alerts=_gap_alerts(settings))


def _gap_alerts(settings: Settings) -> Any:
    """Feed-gap alerts for `run market`, or None (with a warning) when Postgres cannot serve
    them: the gaps are seen here (DESIGN.md, risk rules), but the limits and the alerts table
    live in the trading store, and a market flow must not fail for the trading store."""
    if settings.postgres_dsn is None:
        return None
    from flows.trading import gap_alerts_for
    from schemas.codec import codec_for

    try:
        return gap_alerts_for(settings, codec_for(settings))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("feed-gap alerts are off (Postgres risk limits unavailable: %s); run "
                    "`tapeflow init` to turn them on", first)
        return None


def _spawn_local_cluster(settings: Settings, options: RunOptions) -> int:
    """Run `processes` local processes of one Bytewax cluster; stop them all together."""
    if options.recovery:
        from tapeflow.runtime.recovery import discard_uncommitted_snapshots

        ensure_recovery_dir(options.recovery_path(settings), options.recovery_partitions)
        discard_uncommitted_snapshots(options.recovery_path(settings))
    from jobs.local.ports import free_ports

    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(options.processes))
    base = [sys.executable, "-m", "tapeflow.cli", "run", options.flow,
            "--workers", str(options.workers), "--addresses", addresses,
            "--snapshot-interval", str(options.snapshot_s),
            "--recovery-partitions", str(options.recovery_partitions)]
    if not options.recovery:
        base.append("--no-recovery")
    if options.recovery_dir is not None:
        base += ["--recovery-dir", str(options.recovery_dir)]
    if options.batch:
        base.append("--batch")
    if options.merge_wait_s is not None:
        base += ["--merge-wait", str(options.merge_wait_s)]
    env = os.environ.copy()
    if settings.metrics_port is not None:  # each child serves port + its process id
        env["TAPEFLOW_METRICS_PORT"] = str(settings.metrics_port)
    children = [subprocess.Popen([*base, "--process-id", str(i)], env=env)
                for i in range(options.processes)]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes, key=abs)


def run(settings: Settings, options: RunOptions) -> int:
    """Run one flow until it ends (batch) or is stopped; returns the exit code."""
    if options.processes > 1 and options.process_id is None:
        return _spawn_local_cluster(settings, options)
    preflight(settings, options.flow)
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    recovery_config = None
    epoch = timedelta(seconds=options.snapshot_s)
    if options.recovery:
        path = options.recovery_path(settings)
        if options.process_id is None:
            from tapeflow.runtime.recovery import discard_uncommitted_snapshots

            ensure_recovery_dir(path, options.recovery_partitions)
            # Bytewax 0.21.1 keeps snapshots of an epoch a killed process never finished and
            # would load them over older offsets on the next resume (docs/flows.md).
            discard_uncommitted_snapshots(path)
        recovery_config = RecoveryConfig(path, timedelta(0))
    flow = build(settings, options)
    from flows.metrics import serve
    from sources.kafka.flow_source import request_stop, stop_requested

    serve(settings.metrics_port, options.process_id)

    def stop(signum: int, _frame: object) -> None:
        log.warning("%s: finishing the current epoch, snapshotting, then stopping",
                    signal.Signals(signum).name)
        # The sources end the dataflow by raising, which Bytewax reports as a panic; this is
        # the expected way out, not a crash, so no Rust backtrace.
        os.environ["RUST_BACKTRACE"] = "0"
        request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        cli_main(flow, workers_per_process=options.workers, process_id=options.process_id,
                 addresses=options.addresses.split(";") if options.addresses else None,
                 epoch_interval=epoch, recovery_config=recovery_config)
    except Exception:
        if stop_requested():  # the sources ended the dataflow after a snapshot, as asked
            log.warning("stopped after a snapshot; a restart resumes from it")
            return 0
        raise
    return 0
