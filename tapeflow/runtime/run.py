"""`tapeflow run FLOW`: pre-flight, recovery, a local cluster or one process, then Bytewax.

Why a wrapper and not `python -m bytewax.run` directly: an unreachable broker makes Bytewax hang
at start-up forever (docs/design.md, "Bytewax as measured"), recovery needs its partitions
initialised once, and several local processes need addresses handed out. This module does those
things and then calls Bytewax's own `cli_main`, so the runtime behaves exactly as `bytewax.run`
would. Which flow is run is the flow's business (`flows.spec`): nothing here branches on names.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
from dataclasses import dataclass
from datetime import timedelta

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main

from flows.metrics import serve as serve_metrics
from flows.spec import FlowRequest, spec
from jobs.local.services import ensure_kafka
from sources.kafka.flow_source import consumer_group, request_stop, stop_requested
from tapeflow.runtime.cluster import spawn_local_cluster
from tapeflow.runtime.recovery import (
    discard_uncommitted_snapshots,
    ensure_recovery_dir,
    recovery_path,
)
from tapeflow.settings import Settings
from tapeflow.web.server import LiveView

log = logging.getLogger("tapeflow.run")


@dataclass(frozen=True)
class RunOptions:
    """How one `tapeflow run` is laid out; every tuning knob is in the settings."""

    flow: str
    processes: int = 1
    """Local processes of one Bytewax cluster (this one starts them)."""
    process_id: int | None = None
    """This process's index in a cluster spread over machines (with `addresses`)."""
    addresses: str | None = None
    """"host:port;host:port": the cluster's processes."""
    recovery: bool = True
    batch: bool = False
    shard: tuple[int, int] | None = None
    serve: bool = False
    """Also serve the live view from this process (the one that holds an embedded store)."""

    def request(self, settings: Settings) -> FlowRequest:
        return FlowRequest(batch=self.batch, shard=self.shard,
                           group=consumer_group(settings, self.flow, self.shard))


def build(settings: Settings, options: RunOptions) -> Dataflow:
    """The dataflow a run of `options` runs (its flow's `FlowSpec.build`)."""
    return spec(options.flow).build(settings, options.request(settings))


def run(settings: Settings, options: RunOptions) -> int:
    """Run one flow until it ends (batch) or is stopped; returns the exit code."""
    if options.processes > 1 and options.process_id is None:
        return spawn_local_cluster(settings, options.flow, options.processes,
                                   child_args=_child_args(options), recovery=options.recovery,
                                   shard=options.shard)
    settings = ensure_kafka(settings, start=False, timeout_s=settings.runtime.service_timeout_s)
    recovery_config = None
    if options.recovery:
        path = recovery_path(settings, options.flow, options.shard)
        if options.process_id is None:
            ensure_recovery_dir(path, settings.runtime.recovery_partitions)
            # Bytewax 0.21.1 keeps snapshots of an epoch a killed process never finished and
            # would load them over older offsets on the next resume (docs/flows.md).
            discard_uncommitted_snapshots(path)
        recovery_config = RecoveryConfig(path, timedelta(0))
    flow = build(settings, options)
    tune_gc()
    serve_metrics(settings.runtime.metrics_port, options.process_id, settings.runtime.metrics_host)
    _stop_on_signals()
    view = LiveView(settings).start() if options.serve else None
    try:
        cli_main(flow, workers_per_process=settings.runtime.workers,
                 process_id=options.process_id,
                 addresses=options.addresses.split(";") if options.addresses else None,
                 epoch_interval=timedelta(seconds=settings.runtime.snapshot_interval_s),
                 recovery_config=recovery_config)
    except Exception:
        if stop_requested():  # the sources ended the dataflow after a snapshot, as asked
            log.warning("stopped after a snapshot; a restart resumes from it")
            return 0
        raise
    finally:
        if view is not None:
            view.stop()
    return 0


GC_THRESHOLDS = (50_000, 20, 100)
"""Python's cyclic collector runs after this many allocations (young generation) instead of
700: a flow allocates a few tuples per tick and frees them by reference counting, so the
default threshold ran a collection every few hundred ticks (measured with the market flow:
about a fifth of its CPU; bench/market_flow.py)."""


def tune_gc() -> None:
    """Fewer cyclic collections for a long-running flow: what was allocated while the flow
    was built (imports, settings, the dataflow) is frozen out of every collection, and the
    young generation collected less often (`GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _child_args(options: RunOptions) -> list[str]:
    """The flags a cluster's child needs beyond its settings (which travel in its env)."""
    args = [] if options.recovery else ["--no-recovery"]
    if options.batch:
        args.append("--batch")
    if options.shard is not None:
        args += ["--shard", f"{options.shard[0]}/{options.shard[1]}"]
    return args


def _stop_on_signals() -> None:
    """SIGTERM and SIGINT: finish the epoch, snapshot, stop (`sources.kafka.flow_source`)."""

    def stop(signum: int, _frame: object) -> None:
        log.warning("%s: finishing the current epoch, snapshotting, then stopping",
                    signal.Signals(signum).name)
        # The sources end the dataflow by raising, which Bytewax reports as a panic; this is
        # the expected way out, not a crash, so no Rust backtrace.
        os.environ["RUST_BACKTRACE"] = "0"
        request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
